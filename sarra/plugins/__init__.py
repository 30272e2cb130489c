"""Hooks (plugins): Python classes or external commands called at four
stages of the flow, on_message, on_part, on_file and on_post.

``base`` has the protocol, ``loader`` the loading and the chains, the other
modules the built-ins (log, move_to, exec, size, age, set_complete).
See doc/hooks.md.
"""
from .base import PASS, SKIP, STAGES, verdict
from .loader import BUILTINS, Bound, Hooks, load_hook, load_hooks

__all__ = ["BUILTINS", "Bound", "Hooks", "PASS", "SKIP", "STAGES", "load_hook",
           "load_hooks", "verdict"]
