"""Watchers: OS events through watchdog (inotify on Linux), or polling.

The only module that imports watchdog. Either watcher runs in its own
thread and only puts ``Change`` values on a ``queue.Queue``; the flow drains
and coalesces them. ``start_watcher`` falls back to polling, with a warning,
when OS events are not available or the inotify watch limit is reached.
"""
import inspect
import logging
import queue
import threading
from typing import Iterable

from .snapshot import CLOSED, CREATED, DELETED, MODIFIED, MOVED, Change, diff, scan

log = logging.getLogger(__name__)


class PollingWatcher:
    """Lists the trees every ``interval`` seconds and queues the differences."""

    name = "polling"

    def __init__(self, roots: list[str], changes: queue.Queue, interval: float,
                 follow_symlinks: bool = False):
        self.roots, self.changes, self.interval = roots, changes, interval
        self.follow = follow_symlinks
        self._stop = threading.Event()
        self._last = scan(roots, follow_symlinks)
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            listing = scan(self.roots, self.follow)
            for change in diff(self._last, listing):
                self.changes.put(change)
            self._last = listing

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


class EventWatcher:
    """watchdog's native observer; events become ``Change`` values."""

    name = "inotify"

    def __init__(self, roots: list[str], changes: queue.Queue, follow_symlinks: bool = False):
        import watchdog.events as ev
        from watchdog.observers import Observer

        watcher = self

        class Handler(ev.FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                change = watcher.convert(event)
                if change is not None:
                    changes.put(change)

        self._observer = Observer()
        self._roots = roots
        self._handler = Handler()
        self._follow = follow_symlinks
        # only what we act upon: the kernel then leaves out opens, reads and
        # the parent directory's own changes, a good part of the events
        self._wanted = [ev.FileCreatedEvent, ev.DirCreatedEvent, ev.FileModifiedEvent,
                        ev.FileClosedEvent, ev.FileDeletedEvent, ev.DirDeletedEvent,
                        ev.FileMovedEvent, ev.DirMovedEvent]

    KINDS = {"created": CREATED, "modified": MODIFIED, "closed": CLOSED,
             "deleted": DELETED, "moved": MOVED}

    @classmethod
    def convert(cls, event) -> Change | None:
        kind = cls.KINDS.get(event.event_type)
        if kind is None or (kind == MODIFIED and event.is_directory):
            return None   # opened, closed_no_write, attrib; a directory's own mtime
        if kind == CLOSED and event.is_directory:
            return None
        dest = event.dest_path if kind == MOVED else None
        src = event.src_path
        if isinstance(src, bytes):
            src = src.decode("utf-8", "surrogateescape")
        if isinstance(dest, bytes):
            dest = dest.decode("utf-8", "surrogateescape")
        return Change(kind, src, dest or None, event.is_directory,
                      bool(getattr(event, "is_synthetic", False)))

    def start(self) -> None:
        """Schedule every root and start; OSError when the OS refuses
        (no inotify, watch or instance limit reached)."""
        try:
            for root in self._roots:
                self._observer.schedule(self._handler, root, recursive=True,
                                        **self._schedule_options())
            self._observer.start()
        except BaseException:
            self.stop()
            raise

    def _schedule_options(self) -> dict:
        """What this watchdog accepts: ``follow_symlink`` and ``event_filter``
        came in 2.3 and 7.0 (Debian 12 has 2.2, which watches all events)."""
        params = inspect.signature(self._observer.schedule).parameters
        options = {"follow_symlink": self._follow, "event_filter": self._wanted}
        return {k: v for k, v in options.items() if k in params}

    def stop(self) -> None:
        try:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join(10)
        except RuntimeError:
            pass  # never started


def start_watcher(roots: Iterable[str], changes: queue.Queue, force_polling: bool,
                  interval: float, follow_symlinks: bool = False):
    """A started watcher: OS events unless polling is forced or they fail."""
    roots = list(roots)
    if not force_polling:
        try:
            watcher = EventWatcher(roots, changes, follow_symlinks)
            watcher.start()
            return watcher
        except (OSError, ImportError) as exc:
            log.warning("cannot watch with OS events (%s): polling every %.1fs instead; "
                        "raise fs.inotify.max_user_watches to watch with events", exc, interval)
    watcher = PollingWatcher(roots, changes, interval, follow_symlinks)
    watcher.start()
    return watcher
