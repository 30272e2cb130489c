"""What every listing produces, and the pure decision of dd_poll.

An ``Entry`` is one name of a remote directory: its size and modification
time as the listing gives them (``exact``: the size is in bytes, not
rounded as Apache's '1.2K'), and whether it is a directory. ``verdict``
says what a poller does with a file given what it announced before and
what it is waiting for: nothing, wait, or announce. No I/O here.
"""
from typing import NamedTuple

from ..errors import TransferError

HEAD_LINES = 5          # lines of a listing not understood shown in the log


class Entry(NamedTuple):
    name: str                 # one path component, decoded (never '/', '.', '..')
    size: int | None          # bytes (None: not given)
    mtime: float | None       # seconds since the epoch, UTC (None: not given)
    is_dir: bool = False
    exact: bool = True        # the size is exact (else rounded: not posted)


class ListingError(TransferError):
    """A listing that could not be understood; ``head`` holds its first lines."""

    def __init__(self, message: str, head: list[str] | None = None):
        self.head = list(head or [])[:HEAD_LINES]
        shown = "".join(f"\n    | {line[:200]}" for line in self.head)
        super().__init__(f"{message}{shown}", code=499, recoverable=True)


def refusal(name: str) -> str | None:
    """Why ``name`` cannot be a file of the listed directory (None: it can)."""
    if name in ("", ".", ".."):
        return f"'{name}' names no file of the directory"
    if "/" in name:
        return f"'{name}' holds a '/'"
    if any(c in name for c in "\r\n\x00"):
        return f"{name!r} holds a line break or a NUL"
    if any("\udc80" <= c <= "\udcff" for c in name):
        return f"{name!r} is not UTF-8"
    return None


class Key(NamedTuple):
    """What tells two states of a remote file apart: size and time as listed."""
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, e: Entry) -> "Key":
        return cls(-1 if e.size is None else e.size,
                   -1 if e.mtime is None else int(round(e.mtime * 1e9)))


class Waiting(NamedTuple):
    """A file seen new or changed, not announced yet: its key, and since when
    (the poller's clock) it has been listed with that key."""
    key: Key
    since: float


SKIP, WAIT, ANNOUNCE = "skip", "wait", "announce"


def verdict(listed: Key, announced: Key | None, waiting: Waiting | None, now: float,
            age_min: float) -> tuple[str, Waiting | None]:
    """(what to do, what to keep waiting for) for a file listed as ``listed``.

    Unchanged since it was announced: skip. New or changed: announce at once
    when ``age_min`` is 0; otherwise wait until it has been listed unchanged
    for ``age_min`` seconds (a file still being written changes size or time
    from one listing to the next, and starts waiting again each time).
    """
    if announced == listed:
        return SKIP, None
    if age_min <= 0:
        return ANNOUNCE, None
    if waiting is None or waiting.key != listed:
        return WAIT, Waiting(listed, now)
    if now - waiting.since >= age_min:
        return ANNOUNCE, None
    return WAIT, waiting
