"""Reading a RabbitMQ stream: where to start, and where we are.

A stream is an append-only log with a retention (x-max-age): a switch keeps
its announcements in one (dd_audit, ``stream:`` in the switch description)
and a subscriber reads it from a chosen point (``replay_from``) instead of
a queue of its own, then follows it live. Every message of a stream carries
its offset (the ``x-stream-offset`` header, a number that grows by one per
message).

A stream does not remember what a consumer has read (acknowledgements only
pace deliveries), so the subscriber does: ``Position`` keeps, in the state
directory, the highest offset below which every message has been settled
(handled, posted, reported: acknowledged by the flow). A restarted
subscriber starts right after it: not at the start, and not past a
message it had not finished.

Instances of one configuration all read the whole stream; each handles the
offsets that fall to it (offset modulo the number of instances) and settles
the others at once.
"""
import logging
import os
import re
import time
from datetime import datetime, timezone
from typing import Any

from ..config.variables import parse_signed_duration
from ..errors import ConfigError
from .durable import replace_synced

log = logging.getLogger(__name__)

OFFSET_HEADER = "x-stream-offset"
_WORDS = ("first", "last", "next")


def parse_replay_from(raw: str | None, now: float | None = None) -> Any:
    """``replay_from``: first | last | next | a duration ago (``1h``, ``2d``)
    | an ISO 8601 time (UTC unless it says) | an offset number. Returns what
    the broker takes as x-stream-offset: a word, an int or a datetime."""
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() in _WORDS:
        return text.lower()
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?[smhdw]?", text, re.I) and not text.isdigit():
        ago = parse_signed_duration(text)
        return datetime.fromtimestamp((now or time.time()) - ago, timezone.utc)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"replay_from {raw!r}: expected first, last, next, a duration "
                          f"ago (1h, 2d), an ISO time (2026-12-03T10:00:00Z) or an "
                          f"offset number", option="replay_from") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


class Position:
    """The settled position of one instance in a stream (see the module)."""

    def __init__(self, path: str, fsync: bool = True):
        self.path = path
        self.fsync = fsync
        self.settled: int | None = self._read()     # every offset <= this is done
        self._open: dict[int, bool] = {}            # delivered offset -> settled
        self._saved = self.settled

    def _read(self) -> int | None:
        try:
            with open(self.path, encoding="ascii") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        if not text.lstrip("-").isdigit():
            log.warning("%s: not an offset (%r); starting from replay_from", self.path,
                        text[:40])
            return None
        return int(text)

    def resume(self, replay_from: Any) -> Any:
        """Where to start: right after what was settled, else replay_from."""
        if self.settled is not None:
            return self.settled + 1
        return replay_from if replay_from is not None else "next"

    def delivered(self, offset: int) -> None:
        self._open.setdefault(offset, False)

    def forget(self) -> None:
        """A lost channel: what it delivered and we did not settle comes again."""
        self._open = {o: True for o, done in self._open.items() if done}

    def settle(self, offsets: list[int]) -> None:
        """These offsets are done; move the position over every settled run
        and write it (before the flow acknowledges: written, then acked)."""
        for o in offsets:
            if o in self._open:
                self._open[o] = True
        pending = sorted(self._open)
        top = self.settled
        for o in pending:
            if not self._open[o]:
                break
            top = o
            del self._open[o]
        if top is not None and top != self._saved:
            self._write(top)
        self.settled = top

    def _write(self, offset: int) -> None:
        replace_synced(self.path, lambda f: f.write(f"{offset}\n"), self.fsync, "ascii")
        self._saved = offset
