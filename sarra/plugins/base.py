"""The hook protocol: what a plugin class looks like to the flow.

A hook is a class named in a configuration (``on_file package.module:Class
ARGS...``). The flow constructs it once, ``Class(cfg, *args)`` (the words
after its name, split like a shell does), and calls the method named after
the stage for each message:

* ``on_message(msg)``: before any work; SKIP rejects the message (nothing
  downloaded, nothing reported);
* ``on_part(msg)``: after each block of a file sent in parts;
* ``on_file(msg)``: after a whole file has arrived (``msg.local_path``);
* ``on_post(msg)``: before each publish downstream; SKIP: not published.

A method answers True or ``"PASS"`` (None counts as PASS) to let the message
go on, False or ``"SKIP"`` to end the chain for it. Raising is a failure:
logged, reported (503) to the data's source, and the flow goes on with the
next message. A class may implement several stages, and ``close()`` to
release what it holds when the flow stops.
"""
from typing import Any, Protocol

from ..errors import PluginError
from ..message import Message

STAGES = ("on_message", "on_part", "on_file", "on_post")
PASS, SKIP = "PASS", "SKIP"

Verdict = bool | str | None


class HookClass(Protocol):
    """What a configuration names: called once per flow with the
    configuration and the hook's arguments (strings)."""

    def __call__(self, cfg: Any, *args: str) -> Any: ...


class OnMessage(Protocol):
    def on_message(self, msg: Message) -> Verdict: ...


class OnPart(Protocol):
    def on_part(self, msg: Message) -> Verdict: ...


class OnFile(Protocol):
    def on_file(self, msg: Message) -> Verdict: ...


class OnPost(Protocol):
    def on_post(self, msg: Message) -> Verdict: ...


def verdict(result: Verdict) -> bool:
    """True for PASS (True, 'PASS', None), False for SKIP (False, 'SKIP');
    anything else is a hook's mistake (PluginError)."""
    if result is None or result is True:
        return True
    if result is False:
        return False
    if isinstance(result, str) and result.upper() in (PASS, SKIP):
        return result.upper() == PASS
    raise PluginError(f"returned {result!r} (expected True/'PASS', False/'SKIP' or None)")
