"""The inflight files a configuration made: recorded, so that the stale sweep
removes those and nothing else.

A file is swept (``InflightFiles.sweep``) only when this configuration
recorded it as an inflight file it created, and it is still that file: the
same path *and* the same inode (a delivered file that happens to have an
inflight-looking name, ``x.tmp``, is another inode, and was never
recorded). The record is kept in memory and, so that the successor of a
killed process finds its leftovers, appended to a small file in the
configuration's state directory, ``inflight.NN.list`` (NN: the instance),
one line per event, without fsync:

    + DEV INO PATH      an inflight file was created (or taken over)
    - PATH              it was renamed into place or removed

Each process holds an exclusive lock (flock) on its own file while it runs.
When it first needs the record, it takes over the files of the
configuration that nobody holds locked (their processes are gone: a
killed instance, an instance no longer started, a foreground run): their
entries join its own, and the files are removed. The file is rewritten
(compacted) when it holds many more lines than live entries.
"""
import fcntl
import logging
import os
import re
import stat
import time
from typing import Callable

from ..errors import SarraError

log = logging.getLogger(__name__)

COMPACT_MIN = 1000          # lines before the record file is worth compacting
RECORD = re.compile(r"^inflight\.\d+(?:\.\d+)?\.list$")


def remove_if_stale(path: str, age: float, ident: tuple[int, int] | None = None) -> bool:
    """Unlink ``path`` if it is a regular file older than ``age`` s that
    nobody holds locked and, when ``ident`` (device, inode) is given, is
    that very file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or time.time() - st.st_mtime < age:
            return False
        if ident is not None and (st.st_dev, st.st_ino) != ident:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False        # a live writer
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return False        # renamed into place, another file there now
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _encode(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape").replace(b"\\", b"\\\\").replace(b"\n", b"\\n")


def _decode(raw: bytes) -> str:
    out, i = bytearray(), 0
    while i < len(raw):
        c = raw[i:i + 1]
        if c == b"\\" and i + 1 < len(raw):
            out += b"\n" if raw[i + 1:i + 2] == b"n" else raw[i + 1:i + 2]
            i += 2
            continue
        out += c
        i += 1
    return out.decode("utf-8", "surrogateescape")


def read_record(data: bytes) -> dict[str, tuple[int, int]]:
    """The live entries of a record file's content."""
    live: dict[str, tuple[int, int]] = {}
    for line in data.split(b"\n"):
        if line.startswith(b"+ "):
            fields = line[2:].split(b" ", 2)
            if len(fields) == 3 and fields[0].isdigit() and fields[1].isdigit():
                live[_decode(fields[2])] = (int(fields[0]), int(fields[1]))
        elif line.startswith(b"- "):
            live.pop(_decode(line[2:]), None)
    return live


class InflightFiles:
    """The inflight files of one process of a configuration (module docstring).

    ``where``: the preferred record file, or a function that gives it
    (called at the first ``made`` or ``sweep``, when the file is first
    needed; None: in memory only).
    """

    def __init__(self, where: "str | Callable[[], str] | None"):
        self._where = where
        self.path: str | None = None
        self.live: dict[str, tuple[int, int]] = {}   # path -> (device, inode)
        self._fd: int | None = None
        self._started = where is None
        self._lines = 0

    # -- hot path ----------------------------------------------------------
    def made(self, path: str, fd: int) -> None:
        """The inflight file ``path``, open as ``fd``, is ours (created or taken over)."""
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        if self.live.get(path) == ident:
            return
        self._start()
        self.live[path] = ident
        self._append(b"+ %d %d %s\n" % (ident[0], ident[1], _encode(path)))

    def gone(self, *paths: str) -> None:
        """These paths are no longer inflight files of ours (renamed into
        place, removed; or a file was put in place there)."""
        lines = b""
        for path in paths:
            if self.live.pop(path, None) is not None:
                lines += b"- " + _encode(path) + b"\n"
        if lines:
            self._append(lines)

    # -- the sweep -----------------------------------------------------------
    def sweep(self, age: float, keep=None) -> int:
        """Remove the recorded files older than ``age`` s that nobody holds
        locked and that are still the files recorded; ``keep(path)`` true:
        leave it (a file being put together from blocks). Entries whose file
        is gone or is another file now are forgotten. How many were removed."""
        self._start()
        removed = 0
        for path, ident in list(self.live.items()):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self.live.pop(path, None)
                continue
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != ident:
                self.live.pop(path, None)       # not our file any more
                continue
            if keep is not None and keep(path):
                continue
            if remove_if_stale(path, age, ident):
                self.live.pop(path, None)
                removed += 1
        self._compact()
        return removed

    # -- the record file -----------------------------------------------------
    def _start(self) -> None:
        """Open (and lock) this process's record file, and take over those
        of processes that are gone; on failure, record in memory only."""
        if self._started:
            return
        self._started = True
        try:
            self.path = self._where() if callable(self._where) else self._where
            self._fd = self._lock_own()
            self._adopt()
            self._compact(force=True)
        except (OSError, SarraError) as exc:
            log.warning("cannot keep the record of inflight files in %s (%s): leftovers "
                        "of this process will not be swept after a crash", self.path, exc)
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None

    def _lock_own(self) -> int:
        head = self.path[:-len(".list")] if self.path.endswith(".list") else self.path
        for candidate in (self.path, f"{head}.{os.getpid()}.list"):
            fd = os.open(candidate, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)            # another live process of this configuration
                continue
            if candidate != self.path:
                self.path = candidate
            self.live.update(read_record(_read_all(fd)))   # our predecessor's leftovers
            return fd
        raise OSError(f"{self.path} and the per-process name are both locked")

    def _adopt(self) -> None:
        folder = os.path.dirname(self.path) or "."
        for name in sorted(os.listdir(folder)):
            other = os.path.join(folder, name)
            if not RECORD.match(name) or other == self.path:
                continue
            try:
                fd = os.open(other, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue            # its process runs: its files are its own
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(other))
                except FileNotFoundError:
                    same = False        # taken over by another process first
                if same:
                    self.live.update(read_record(_read_all(fd)))
                    os.unlink(other)
            finally:
                os.close(fd)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, data)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
            return
        self._lines += data.count(b"\n")
        if self._lines > COMPACT_MIN and self._lines > 4 * len(self.live):
            self._compact()

    def _compact(self, force: bool = False) -> None:
        """Rewrite the record file with the live entries only."""
        if self._fd is None or (not force and self._lines <= len(self.live)):
            return
        data = b"".join(b"+ %d %d %s\n" % (d, i, _encode(p)) for p, (d, i) in self.live.items())
        try:
            os.ftruncate(self._fd, 0)
            os.write(self._fd, data)
        except OSError as exc:
            log.warning("cannot rewrite %s: %s", self.path, exc)
            return
        self._lines = len(self.live)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)
