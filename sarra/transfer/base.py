"""The copy loop every transfer shares, and the Transfer protocol.

A transfer module only opens a byte stream for a URL (and a byte range);
reading in chunks, checksumming while streaming, keeping the broker alive
and writing to the inflight file happen here, once.
"""
import logging
import os
import time
from typing import Callable, Protocol

from ..errors import TransferError

log = logging.getLogger(__name__)


class Stream(Protocol):
    def read(self, n: int) -> bytes: ...
    def close(self) -> None: ...


class Transfer(Protocol):
    """One per URL scheme; opened once per flow and reused."""
    def open(self, url: str, offset: int = 0, length: int | None = None) -> Stream: ...
    def close(self) -> None: ...


def copy(stream: Stream, out, length: int | None, summers: list, bufsize: int,
         tick: Callable[[int], None] | None = None) -> int:
    """Copy ``stream`` to the open binary file ``out``; return bytes copied.

    Every chunk goes to each summer (checksums computed while streaming);
    ``tick(total)`` is called about once a second (broker heartbeats, throttle).
    Stops at ``length`` bytes when given; a short stream raises TransferError.
    """
    total, last = 0, time.monotonic()
    while length is None or total < length:
        want = bufsize if length is None else min(bufsize, length - total)
        chunk = stream.read(want)
        if not chunk:
            break
        for s in summers:
            s.update(chunk)
        out.write(chunk)
        total += len(chunk)
        if tick is not None and time.monotonic() - last >= 1.0:
            tick(total)
            last = time.monotonic()
    if length is not None and total < length:
        raise TransferError(f"short read: {total} of {length} bytes")
    return total


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
