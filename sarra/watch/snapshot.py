"""Pure pieces of watching: the ``Change`` value every watcher produces,
and polling as "scan the tree, diff two listings".

A listing maps a path to ``Entry(size, mtime_ns, ino, kind)``; ``diff``
turns two listings into changes, pairing a vanished path with a new one of
the same inode, size and mtime as a move (what a rename looks like to a
poller). No I/O but ``scan``.
"""
import logging
import os
import stat
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

log = logging.getLogger(__name__)

# kinds of change
CREATED, MODIFIED, CLOSED, DELETED, MOVED = "created", "modified", "closed", "deleted", "moved"


@dataclass(frozen=True)
class Change:
    kind: str                 # one of the kinds above
    path: str                 # absolute path (the source of a move)
    dest: str | None = None   # the destination of a move
    is_dir: bool = False
    synthetic: bool = False   # made up by the watcher (e.g. contents of a new directory)


class Entry(NamedTuple):
    size: int
    mtime_ns: int
    ino: int
    kind: str                 # 'f' file, 'l' symlink


def scan(roots: Iterable[str], follow_symlinks: bool = False) -> dict[str, Entry]:
    """Every file and symlink under ``roots`` (directories are walked, not listed)."""
    return dict(walk(roots, follow_symlinks))


def _entries(roots: Iterable[str], follow_symlinks: bool) -> Iterator[tuple[str, os.DirEntry]]:
    """(directory, entry) of everything under ``roots`` but the directories
    (walked, one listing held at a time)."""
    stack = list(roots)
    while stack:
        top = stack.pop()
        try:
            it = os.scandir(top)
        except OSError as exc:
            log.debug("cannot list %s: %s", top, exc)
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=follow_symlinks):
                        stack.append(e.path)
                        continue
                except OSError:
                    continue  # vanished while we looked
                yield top, e


def walk(roots: Iterable[str], follow_symlinks: bool = False) -> Iterator[tuple[str, Entry]]:
    """``scan``'s entries one at a time, holding one directory's listing."""
    for _top, e in _entries(roots, follow_symlinks):
        try:
            st = e.stat(follow_symlinks=follow_symlinks)
        except OSError:
            continue  # vanished while we looked
        kind = "l" if stat.S_ISLNK(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else ""
        if kind:
            yield e.path, Entry(st.st_size, st.st_mtime_ns, st.st_ino, kind)


def rows(roots: Iterable[str], follow_symlinks: bool,
         ignored_name, ignored_dir: str | None) -> Iterator[tuple[str, int, int, bool]]:
    """``walk``'s files as (path, size, mtime_ns, ignored) rows, for a
    tree's listing at start (the least work a file: its type from the
    directory entry, one stat). ``ignored_name(name)`` is true for a file
    name ignored, ``ignored_dir`` the name of a directory whose files are."""
    last, in_ignored = None, False
    for top, e in _entries(roots, follow_symlinks):
        if top is not last:
            last = top
            in_ignored = ignored_dir is not None and top.rpartition("/")[2] == ignored_dir
        try:
            if not (e.is_file(follow_symlinks=follow_symlinks) or e.is_symlink()):
                continue    # a device, a socket, a fifo: never announced
            st = e.stat(follow_symlinks=follow_symlinks)
        except OSError:
            continue  # vanished while we looked
        yield (e.path, st.st_size, st.st_mtime_ns,
               in_ignored or ignored_name(e.name) is not None)


def diff(old: dict[str, Entry], new: dict[str, Entry]) -> list[Change]:
    """What happened between two listings: moves, then creations,
    modifications and deletions."""
    gone = {p: e for p, e in old.items() if p not in new}
    born = {p: e for p, e in new.items() if p not in old}
    by_identity = {(e.ino, e.size, e.mtime_ns, e.kind): p for p, e in gone.items()}
    changes: list[Change] = []
    for path, e in list(born.items()):
        src = by_identity.pop((e.ino, e.size, e.mtime_ns, e.kind), None)
        if src is not None:
            changes.append(Change(MOVED, src, path))
            del gone[src], born[path]
    changes += [Change(CREATED, p) for p in sorted(born)]
    changes += [Change(MODIFIED, p) for p, e in new.items()
                if p in old and (old[p].size, old[p].mtime_ns, old[p].kind)
                != (e.size, e.mtime_ns, e.kind)]
    changes += [Change(DELETED, p) for p in sorted(gone)]
    return changes
