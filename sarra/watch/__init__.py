"""Watching a directory tree: OS events (watchdog) or polling, as plain
``Change`` values on a queue, and the persistent record of what was posted."""
from .snapshot import Change

__all__ = ["Change"]
