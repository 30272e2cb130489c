"""Containment of a local tree: nothing done for a message resolves outside
the directory it belongs to (its *root*), at the moment it is done.

Two rules keep it so.

* **At every use.** A write, rename, delete, link or mkdir resolves the
  path's parent directories (``realpath``) right before the operation and
  refuses (UnsafePathError, status 403) a parent outside the root, however
  the path looked when the message's target was computed: a directory may
  have been replaced by a symbolic link since. The operation then works on
  the resolved path, which holds no symbolic link.

* **Links obey the link rule** (``link_refusal``). A symbolic link's target
  must be relative; split on ``/`` (``''`` and ``.`` ignored), its ``..``
  components may only lead (``a/../b`` is refused: ``a/..`` resolves
  physically through ``a``, which may itself be a link, not lexically to
  ``.``); and the number *k* of leading ``..`` may not exceed the depth,
  below the root, of the real directory the link is in (links are made in
  the resolved parent directory, so that depth is known).

Why the link rule is enough, whatever the order of later link, rename,
delete, mkdir and rmdir operations: resolving a path of the tree starts at
the root and goes through real directories (depth *d*) and links. A link in
a real directory at depth *d* climbs *k* <= *d* levels, to a real directory
still at or below the root, and then only descends by names, each of which
is again a real directory, a file, or a link that obeys the rule: by
induction, every step of every resolution stays at or below the root.
Real directories never move (a rename of a directory is refused, and a
link cannot replace a directory), so the depth a link was checked at stays
its depth; a link that is moved (a rename post) is checked again at its new
place and refused (403, left where it was) when it would break the rule
there. Links made by others (not obeying the rule) are still caught by the
check at every use, which also refuses a link target whose resolution
(``realpath``) is outside the root.
"""
import errno
import os
import stat

from .errors import LocalError, UnsafePathError


_O_PATH = getattr(os, "O_PATH", 0)     # Linux
_proc_fd = [bool(_O_PATH) and os.path.isdir("/proc/self/fd")]


def real(path: str) -> str:
    """``os.path.realpath(path)``, now: the path with every symbolic link
    resolved. A path that exists is resolved by the kernel in one lookup
    (opened ``O_PATH``, which reads nothing, and the name of what was
    opened read back from ``/proc/self/fd``): the same answer as
    ``realpath`` for a fraction of its work (one lstat and a page of Python
    per component), taken at one instant rather than component by
    component. Anything else (missing, a loop, unreadable, no ``/proc``, a
    directory deleted meanwhile) is ``os.path.realpath``'s."""
    if _proc_fd[0] and type(path) is str:
        try:
            fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        except OSError:
            return os.path.realpath(path)
        try:
            got = os.readlink(f"/proc/self/fd/{fd}")
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:   # (longer than PATH_MAX: this one only)
                _proc_fd[0] = False    # no /proc here after all
            got = ""
        finally:
            os.close(fd)
        if got.startswith("/") and not got.endswith(" (deleted)"):
            return got
    return os.path.realpath(path)


def inside(root_real: str, path: str) -> bool:
    """``path`` (resolved) is ``root_real`` (resolved) or below it."""
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


def depth_below(root_real: str, dir_real: str) -> int:
    """How many directories ``dir_real`` is below ``root_real`` (0: the root)."""
    if dir_real == root_real:
        return 0
    rel = os.path.relpath(dir_real, root_real)
    return len([p for p in rel.split(os.sep) if p not in ("", ".")])


def link_refusal(link: str, depth: int) -> str | None:
    """Why a symbolic link with target ``link``, in a real directory
    ``depth`` levels below the root, would break the link rule (module
    docstring); None when it obeys it."""
    if "\x00" in link:
        return "contains a NUL byte"
    if link.startswith("/"):
        return "is absolute"
    parts = [p for p in link.split("/") if p not in ("", ".")]
    climb = 0
    for n, part in enumerate(parts):
        if part == "..":
            if n != climb:
                return "has '..' after a name (it would resolve through what that name is)"
            climb += 1
    if climb > depth:
        return (f"climbs {climb} directories from one {depth} below the destination "
                f"directory")
    return None


def check_link(link: str, depth: int, root: str) -> None:
    """UnsafePathError (field ``link``) unless ``link`` obeys the link rule."""
    why = link_refusal(link, depth)
    if why is not None:
        raise UnsafePathError(f"link target '{link}' {why}: it could lead outside {root}",
                              "link")


class Tree:
    """The tree below ``root`` (a message's destination directory), its
    resolution taken once per operation: what resolves where, now."""

    def __init__(self, root: str):
        self.root = root
        self.real = real(root)

    def __str__(self) -> str:
        return self.root

    def inside(self, path: str) -> bool:
        return inside(self.real, path)

    def depth(self, dir_real: str) -> int:
        return depth_below(self.real, dir_real)

    def resolve(self, path: str) -> str:
        """``path`` with its parent directories resolved now, refused
        (UnsafePathError) when they are outside: the path to operate on."""
        parent = real(os.path.dirname(path))
        if not self.inside(parent):
            raise UnsafePathError(f"'{path}' resolves outside {self.root}", "relpath")
        return os.path.join(parent, os.path.basename(path))

    def make_dirs(self, directory: str, mode: int, resolved: bool = False) -> str:
        """Make ``directory`` (and what is missing above it) in the tree,
        checking before and after that it resolves inside; return its
        resolved path. ``resolved``: ``directory`` was resolved just now (by
        ``resolve``), only its last component is looked at again. The root
        itself is made when missing (it is the configured directory)."""
        where = directory if resolved else real(directory)
        if not self.inside(where):
            raise UnsafePathError(f"'{directory}' resolves outside {self.root}", "relpath")
        try:
            if stat.S_ISDIR(os.lstat(where).st_mode):
                return where            # the usual case: already there
            if resolved:                # something else there now: look again
                return self.make_dirs(directory, mode)
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), where)
        except FileNotFoundError:
            pass
        os.makedirs(where, mode=mode, exist_ok=True)
        made = real(where)
        if made != where or not self.inside(made):
            raise UnsafePathError(f"'{directory}' was replaced while it was made: it "
                                  f"resolves to {made}", "relpath")
        return made

    def check_link(self, where: str, link: str) -> None:
        """UnsafePathError unless a link ``link`` in the real directory
        ``where`` obeys the link rule and resolves inside."""
        check_link(link, self.depth(where), self.root)
        if not self.inside(real(os.path.join(where, link))):
            raise UnsafePathError(f"link target '{link}' resolves outside {self.root}",
                                  "link")


def open_dir(directory: str) -> int:
    """A file descriptor on the directory ``directory`` (a resolved path),
    checked to be that very directory (nothing in the path replaced since
    it was resolved): operations relative to it (``dir_fd``) happen there."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            now = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:          # no /proc: the path, resolved again, must be the same
            now = real(directory)
            if not os.path.samestat(os.fstat(fd), os.stat(directory)):
                now = None
        if now != directory:
            raise LocalError(f"local error: {directory} changed while in use "
                             f"(now {now}): try again")
    except BaseException:
        os.close(fd)
        raise
    return fd
