"""Reassembly of a file announced in blocks (doc/protocol.md §3.5).

Blocks are written straight into the inflight file at their offsets
(``inplace`` on, the default: the receiver chooses, whatever the method),
or each into its own ``.Part`` file, put together when all are there
(``inplace`` off), by any instance, in any order. Which blocks are verified is kept in
a small record beside the inflight file (``<inflight>.blocks``), updated
under an exclusive lock: after a crash, verified blocks are not fetched
again, and when the last one is verified exactly one writer sees the file
become whole and renames it into place.

The record names the version of the file it is about (block geometry and
mtime, or pubtime when there is no mtime): blocks of another version
start the file over.
"""
import fcntl
import json
import os
from dataclasses import dataclass

from ..message import Message
from ..parts import Parts


def version_of(msg: Message, p: Parts) -> str:
    """What identifies one version of a file among its block posts."""
    stamp = msg.headers.get("mtime") or msg.pubtime
    return f"{p.bsz},{p.blktot},{stamp}"


def older(version: str, than: str) -> bool:
    """Is ``version`` (from ``version_of``) a file older than ``than``? Their
    stamps (mtime or pubtime, YYYYMMDDHHMMSS.frac) compare as numbers."""
    def stamp(v: str) -> float:
        try:
            return float(v.rsplit(",", 1)[1].replace("T", ""))
        except (IndexError, ValueError):
            return 0.0
    return stamp(version) < stamp(than)


@dataclass
class State:
    version: str
    done: list[bool]
    end: int = 0                 # the file's size once its last block is known

    @property
    def complete(self) -> bool:
        return all(self.done)


class Record:
    """The record of one file's blocks, opened and locked for one update."""

    def __init__(self, path: str):
        self.path = path
        while True:   # the record may be removed (file complete) while we wait for it
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fd = fd

    def __enter__(self) -> "Record":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # releases the lock
            self._fd = None

    def read(self) -> State | None:
        size = os.fstat(self._fd).st_size
        raw = os.pread(self._fd, size, 0) if size else b""
        try:
            d = json.loads(raw)
            return State(d["version"], [c == "1" for c in d["done"]], d.get("end", 0))
        except (ValueError, KeyError, TypeError):
            return None

    def write(self, state: State) -> None:
        data = json.dumps({"version": state.version, "end": state.end,
                           "done": "".join("1" if d else "0" for d in state.done)}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def file_end(p: Parts) -> int | None:
    """The file's size, when this block tells it: always in the v2 form
    (remainder = size % bsz); in sr3's form (remainder = this block's
    size) only the last block does."""
    if p.brem == p.bsz and p.bno != p.blktot - 1:
        return None
    return p.file_size
