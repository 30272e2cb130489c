"""The copy loop every transfer shares, and the Transfer protocol.

A transfer module only opens a byte stream for a URL (and a byte range);
reading in chunks, checksumming while streaming, keeping the broker alive
and writing to the inflight file happen here, once.
"""
import errno
import fcntl
import logging
import os
import queue
import threading
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
         tick: Callable[[int], None] | None = None, throttle=None) -> int:
    """Copy ``stream`` to the open binary file ``out``; return bytes copied.

    Every chunk goes to each summer (checksums computed while streaming);
    ``tick(total)`` is called about once a second (broker heartbeats);
    ``throttle.consume(n)`` after each chunk holds the byte rate.
    Stops at ``length`` bytes when given; a short stream raises TransferError.
    Big copies hash in a second thread while this one reads and writes, so
    the transfer runs at the speed of the slower of the two, not their sum.
    """
    big = summers and (length is None or length > PIPELINE_MIN)
    feed = _Hasher(summers) if big else None
    total, last = 0, time.monotonic()
    try:
        while length is None or total < length:
            want = bufsize if length is None else min(bufsize, length - total)
            chunk = stream.read(want)
            if not chunk:
                break
            if feed is not None:
                feed.put(chunk)
            else:
                for s in summers:
                    s.update(chunk)
            out.write(chunk)
            total += len(chunk)
            if throttle:
                throttle.consume(len(chunk))
            if tick is not None and time.monotonic() - last >= 1.0:
                tick(total)
                last = time.monotonic()
    finally:
        if feed is not None:
            feed.finish()
    if length is not None and total < length:
        raise TransferError(f"short read: {total} of {length} bytes")
    return total


PIPELINE_MIN = 8 << 20   # below this, hashing inline is cheaper than a thread


class _Hasher:
    """Feeds chunks to summers in a worker thread (hashlib releases the GIL),
    through a bounded queue: at most ``depth`` chunks are held in memory."""

    def __init__(self, summers: list, depth: int = 8):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._summers = summers
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hasher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._q.get()
            if chunk is None:
                return
            try:
                for s in self._summers:
                    s.update(chunk)
            except BaseException as exc:  # reported by finish()
                self._error = exc

    def put(self, chunk: bytes) -> None:
        self._q.put(chunk)

    def finish(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def open_inflight(path: str, timeout: float, mode: int = 0o644):
    """Open ``path`` (an inflight name) for writing, truncated, holding an
    exclusive lock on it, and return the file object.

    Several writers of the same file (instances given duplicate posts) take
    turns: the lock is held until the file is renamed into place and closed,
    and a writer that got the lock on a name already renamed away opens the
    name again. A symlink planted at the name is removed, never written
    through; a file left by a killed writer is simply taken over.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            remove_quietly(path)   # a symlink: never follow it
            continue
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TransferError(f"{path} is being written by another "
                                            f"process", code=499) from None
                    time.sleep(0.02)
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                return os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)   # renamed away by the writer before us: open the name again
