"""The copy loop every transfer shares, and the Transfer protocol.

A transfer module only opens a byte stream for a URL (and a byte range);
reading in chunks, checksumming while streaming, keeping the broker alive,
writing to the inflight file and holding a transfer to its limits (Limits:
a minimum rate, a size ceiling, a disk reserve) happen here, once.
"""
import errno
import fcntl
import logging
import os
import queue
import threading
import time
from typing import Callable, NamedTuple, Protocol

from ..errors import TransferError

log = logging.getLogger(__name__)


class Stream(Protocol):
    """``read(n)`` returns at most ``n`` bytes, and b"" only at the end: it
    may return fewer (what has arrived), so that a slow source gives the
    copy loop back its hand often enough to judge the transfer's rate. A
    ``size`` attribute, when there is one, is the length the source
    announces (an HTTP Content-Length; None: not said)."""
    def read(self, n: int) -> bytes: ...
    def close(self) -> None: ...


def host_port(hostport: str, default: int, scheme: str) -> tuple[str, int]:
    """(host, port) of a URL's ``host[:port]`` or ``[v6 address][:port]``;
    TransferError (503, not recoverable) when there is no host or a bad port."""
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise TransferError(f"{scheme} URL without a host", code=503, recoverable=False)
    try:
        return host, int(port) if port else default
    except ValueError:
        raise TransferError(f"bad port '{port}' in {scheme} URL", code=503,
                            recoverable=False) from None


class Transfer(Protocol):
    """One per URL scheme; opened once per flow and reused. ``remove``
    deletes the file at ``url`` (the ``delete`` option): True when it was
    removed, False when it was not there; TransferError otherwise."""
    def open(self, url: str, offset: int = 0, length: int | None = None) -> Stream: ...
    def remove(self, url: str) -> bool: ...
    def close(self) -> None: ...


DISK_CHECK = 4 << 20      # bytes written between two looks at the free space
RATE_MIN = 1024           # bytes/s: the transfer_rate_min option's default


class Limits(NamedTuple):
    """What one copy may take; each 0 (or None) is no limit.

    ``window``: seconds over which the rate is measured (the ``timeout``
    option); ``rate_min``: bytes per second the copy must keep up, averaged
    over each ``window`` (the first one is the grace period: nothing is
    judged before it is over; time spent in the byte-rate throttle and the
    broker keepalive does not count); ``size_max``: bytes the copy may write
    at most; ``reserve``: bytes to leave free on the file system written to
    (an int), or the share of its size (a float below 1, from 'N%'),
    checked before the copy and every DISK_CHECK bytes; ``disk``: a file
    descriptor on that file system (None: ``out.fileno()``, if ``out`` has
    one).
    """
    window: float = 0.0
    rate_min: float = 0.0
    size_max: int = 0
    reserve: int | float = 0
    disk: int | None = None

    @classmethod
    def of(cls, cfg, disk: int | None = None, sized: bool = True) -> "Limits":
        """The limits of a download by configuration ``cfg`` (options
        timeout, transfer_rate_min, download_size_max, disk_reserve);
        ``sized``: the post announces the size (then it is the ceiling, and
        download_size_max does not apply)."""
        return cls(window=cfg.timeout, rate_min=cfg.transfer_rate_min,
                   size_max=0 if sized else cfg.download_size_max,
                   reserve=cfg.disk_reserve, disk=disk)


def copy(stream: Stream, out, length: int | None, summers: list, bufsize: int,
         tick: Callable[[int], None] | None = None, throttle=None,
         limits: Limits | None = None) -> int:
    """Copy ``stream`` to the open binary file ``out``; return bytes copied.

    Every chunk goes to each summer (checksums computed while streaming);
    ``tick(total)`` is called about once a second (broker heartbeats);
    ``throttle.consume(n)`` after each chunk holds the byte rate.
    Stops at ``length`` bytes when given; a short stream raises TransferError.
    ``limits`` (see Limits) cut a copy that is too slow, too big, or would
    leave too little free space, with a TransferError saying which limit:
    too slow (499) and short of space (507) are worth retrying, too big
    (413) is not. Nothing is undone here: the caller removes what was written.
    Big copies hash in a second thread while this one reads and writes, so
    the transfer runs at the speed of the slower of the two, not their sum.
    """
    window, rate_min, size_max, reserve, disk = limits or _NO_LIMITS
    if not (window > 0 and rate_min > 0):
        window = 0.0
    if reserve:
        if disk is None:
            try:
                disk = out.fileno()
            except (AttributeError, OSError, ValueError):   # no file system to look at
                reserve = 0
        if reserve:
            _check_space(disk, reserve, length or 0)
    if size_max and length is None and (getattr(stream, "size", None) or 0) > size_max:
        raise _too_big(size_max, f"announced by the server: {stream.size} bytes")
    big = summers and (length is None or length > PIPELINE_MIN)
    feed = _Hasher(summers) if big else None
    total = 0
    last = mark = time.monotonic()      # last tick; start of the rate window
    marked, paused = 0, 0.0             # bytes at the window's start; time not ours in it
    space_at = DISK_CHECK
    done = False
    try:
        while length is None or total < length:
            want = bufsize if length is None else min(bufsize, length - total)
            chunk = stream.read(want)
            if not chunk:
                break
            n = len(chunk)
            if size_max and total + n > size_max:
                raise _too_big(size_max, f"cut off after {total} bytes")
            if feed is not None:
                feed.put(chunk)
            else:
                for s in summers:
                    s.update(chunk)
            out.write(chunk)
            total += n
            if throttle:
                t = time.monotonic()
                throttle.consume(n)
                paused += time.monotonic() - t
            now = time.monotonic()
            if tick is not None and now - last >= 1.0:
                tick(total)
                last = time.monotonic()
                paused += last - now
            if window and now - mark - paused >= window:
                spent = now - mark - paused
                if total - marked < rate_min * spent:
                    raise TransferError(
                        f"too slow: {total - marked} bytes in {spent:.1f}s "
                        f"({(total - marked) / spent:.1f} B/s, below transfer_rate_min "
                        f"{rate_min:.0f} B/s over timeout {window:g}s)")
                mark, marked, paused = now, total, 0.0
            if reserve and total >= space_at:
                _check_space(disk, reserve, 0 if length is None else length - total)
                space_at = total + DISK_CHECK
        done = True
    finally:
        if feed is not None:
            feed.finish(abandon=not done)
    if length is not None and total < length:
        raise TransferError(f"short read: {total} of {length} bytes")
    return total


_NO_LIMITS = Limits()


def _too_big(size_max: int, what: str) -> TransferError:
    return TransferError(f"larger than download_size_max ({size_max} bytes) and the size "
                         f"not announced: {what}", code=413, recoverable=False)


def _check_space(disk: int, reserve: int | float, coming: int) -> None:
    """TransferError (507, worth retrying) when the file system of ``disk``
    (a file descriptor) has less than ``reserve`` free, or would have once
    ``coming`` more bytes are written."""
    try:
        st = os.fstatvfs(disk)
    except OSError as exc:      # no such information here: nothing to hold to
        log.debug("free space not known (%s): disk_reserve not checked", exc)
        return
    keep = int(reserve * st.f_blocks * st.f_frsize) if isinstance(reserve, float) else reserve
    free = st.f_bavail * st.f_frsize
    if free - coming < keep:
        need = f", {coming} more bytes to write" if coming else ""
        raise TransferError(f"disk_reserve: {free} bytes free on the file system{need}, "
                            f"{keep} to be kept free", code=507)


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

    def finish(self, abandon: bool = False) -> None:
        """Wait for the summers to have seen every chunk; ``abandon``: the
        copy failed, the chunks still queued are dropped, not hashed."""
        if abandon:
            try:
                while True:
                    self._q.get_nowait()
            except queue.Empty:
                pass
        self._q.put(None)
        self._thread.join()
        if self._error is not None and not abandon:
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
