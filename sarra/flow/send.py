"""dd_sender's work: push the file a post announces to a remote server.

The file is on this switch: a ``file:`` URL names it, any other URL is
``base_dir`` + relpath. It goes to ``destination``
(``sftp://user@host[:port]/directory/``, ``ftp://``, ``ftps://``) + the placed relpath (mirror,
strip, flatten, rename, as a subscriber places files; ``directory``, when
set, is under the destination's path, or absolute on the server), written
under its inflight name, checksummed as it streams, verified against the
post, and renamed into place. Deletes, renames, symlinks and directories
are applied on the server too.

A Target's root and path are paths on the server: a re-post (post_broker)
announces the remote copy relative to the destination directory, at
``post_base_url``.
"""
import logging
import os
import posixpath

from .. import checksum
from ..containment import check_link
from ..errors import (ChecksumError, ConfigError, MessageError, TransferError,
                      UnsafePathError)
from ..message import Message, inside, parse_time, safe_join
from ..transfer import PUSHERS, scheme_of
from ..transfer.file import url_path
from .filter import Placement, placed_relpath, resolve
from .contracts import Done, Target
from .work import inflight_name, verify

log = logging.getLogger(__name__)


def remote_join(root: str, relpath: str) -> str:
    """``relpath`` under ``root`` on the server, refusing what would escape it
    ('..', NUL). No symlinks are resolved: the server's tree is not ours."""
    if "\x00" in relpath:
        raise UnsafePathError("contains a NUL byte", "relpath")
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePathError(f"'{relpath}' names no file", "relpath")
    if ".." in parts:
        raise UnsafePathError(f"'{relpath}' contains '..'", "relpath")
    return root.rstrip("/") + "/" + "/".join(parts)


def remote_link_check(root: str, path: str, link: str) -> None:
    """UnsafePathError unless a link ``path`` -> ``link`` on the server
    obeys the link rule (sarra/containment.py) below ``root``: the server's
    tree is not ours, so the depth is that of the path as written (remote
    paths hold no '..': remote_join), and the lexical resolution must stay
    below ``root`` too."""
    parent = posixpath.dirname(path)
    rel = posixpath.relpath(parent, root) if parent != root else "."
    check_link(link, 0 if rel == "." else len(rel.split("/")), root)
    where = posixpath.normpath(posixpath.join(parent, link))
    if not (where == root or where.startswith(root.rstrip("/") + "/")):
        raise UnsafePathError(f"link target '{link}' is outside {root}", "link")


class Sender:
    """Work stage of dd_sender (a contracts.Worker)."""

    def __init__(self, cfg, tick=None, throttle=None):
        self.cfg = cfg
        self._tick = tick
        self._throttle = throttle     # byte rate, shared by the instances
        dest = cfg.resolve_url("destination")
        if not dest:
            raise ConfigError("dd_sender needs a destination (sftp://, ftp:// or ftps://user@host/directory/)",
                              option="destination")
        scheme = scheme_of(dest)
        cls = PUSHERS.get(scheme) if scheme in PUSHERS else None
        if cls is None:
            raise ConfigError(f"cannot send to {scheme or 'this'} URL (sftp://, ftp:// or ftps:// only)",
                              option="destination")
        head, sep, rest = dest.partition("://")
        authority, _slash, path = rest.partition("/")
        self._prefix = f"{head}{sep}{authority}"   # may hold a password: never logged
        self._base = posixpath.normpath("/" + path)
        self._transfer = cls(timeout=cfg.timeout, credentials=cfg.credentials, tls=cfg.tls)

    def close(self) -> None:
        self._transfer.close()

    def ahead(self, msgs) -> None:
        """(A put has nothing to ask for ahead.)"""

    def sync(self) -> None:
        """Nothing local to sync: what is sent is on the server's storage,
        the server's to keep (a put is complete once the server took it)."""

    def clean_stale(self, age: float) -> int:
        """Nothing to sweep here: a failed put removes its remote temporary file."""
        return 0

    def _url(self, path: str) -> str:
        return self._prefix + path

    def target(self, msg: Message, placement: Placement) -> Target:
        """Where ``msg`` goes on the server (UnsafePathError if outside the directory)."""
        placement = resolve(placement, msg, self.cfg)
        directory = placement.directory
        root = posixpath.normpath(posixpath.join(self._base, directory))
        return Target(root, remote_join(root, placed_relpath(msg, placement)))

    def local_file(self, msg: Message) -> str:
        """The file on this switch that ``msg`` announces."""
        base_dir = self.cfg.base_dir
        if msg.base_url.startswith("file:"):
            path = url_path(msg.url)
            if base_dir and not inside(base_dir, os.path.realpath(path)):
                raise UnsafePathError(f"{path} is outside base_dir {base_dir}", "relpath")
            return path
        if not base_dir:
            raise TransferError(f"{msg.base_url} is not a file: URL and base_dir is not set: "
                                f"no local file to send", code=503, recoverable=False)
        return safe_join(base_dir, msg.relpath)

    def apply(self, msg: Message, target: Target) -> Done:
        """Do what ``msg`` announces at ``target`` on the server; (code, text)."""
        op, url, t = msg.operation, self._url(target.path), self._transfer
        if op == "file":
            return self._file(msg, url)
        if op == "delete":
            if target.rename_to is not None:
                self._check_moved_link(msg, target)
            if target.rename_to is not None and t.rename(
                    url, self._url(target.rename_to), self.cfg.default_dir_mode):
                return Done(201, "Renamed")
            if t.remove(url):
                return Done(201, "Deleted")
            return Done(202, "Accepted: already absent")
        if op == "link":
            return self._link(msg, target, url)
        if op == "mkdir":
            if t.mkdir(url, self.cfg.default_dir_mode):
                return Done(201, "Created")
            return Done(202, "Accepted: directory exists")
        if op == "rmdir":
            if t.rmdir(url):
                return Done(201, "Removed")
            return Done(202, "Accepted: directory already absent")
        raise MessageError(f"unknown operation {op}", "sum")

    def _file(self, msg: Message, url: str) -> Done:
        parts = msg.parts
        if parts is not None and not parts.is_whole:
            raise TransferError(f"block {parts.bno + 1}/{parts.blktot}: dd_sender sends whole "
                                f"files (post them with blocksize 1)", code=503,
                                recoverable=False)
        local = self.local_file(msg)
        method = checksum.verify_method(msg.headers.get("sum", ""))
        summer = checksum.new(method) if method else None
        size = parts.file_size if parts is not None else None

        def as_posted(sent: int) -> None:
            try:
                verify(msg, summer, sent, size)
            except (ChecksumError, TransferError) as exc:
                raise TransferError(f"{local} differs from its post (changed since?): {exc}",
                                    recoverable=False) from None

        mode, times = self._metadata(msg)
        inflight = writer_inflight(url, self.cfg.inflight)
        self._transfer.put(local, url, inflight=inflight, mode=mode, times=times,
                           dir_mode=self.cfg.default_dir_mode, bufsize=self.cfg.bufsize,
                           summers=[summer] if summer else [], verify=as_posted,
                           tick=self._tick, throttle=self._throttle)
        if summer is not None and msg.sum[0] == "z":
            msg.headers["sum"] = summer.header   # computed on the way: tell downstream
        if method is None:
            return Done(201, f"Copied (not verified: sum method {msg.sum[0]})")
        return Done(201, "Copied")

    def _link(self, msg: Message, target: Target, url: str) -> Done:
        link = msg.headers.get("link")
        if not link:
            raise MessageError("a symlink post (sum L) without a link header", "link")
        remote_link_check(target.root, target.path, link)
        self._transfer.symlink(url, link, self.cfg.default_dir_mode)
        return Done(201, "Linked")

    def _check_moved_link(self, msg: Message, target: Target) -> None:
        """A rename moves a symbolic link on the server when the switch's
        file at the new name is one: it must obey the link rule at its new
        place there (UnsafePathError, nothing renamed)."""
        newname = msg.headers["newname"]
        try:      # (local_file would resolve the link itself)
            if msg.base_url.startswith("file:"):
                new = url_path(msg.base_url + newname)
            elif self.cfg.base_dir:
                new = safe_join(self.cfg.base_dir, newname)
            else:
                return
        except (MessageError, TransferError):
            return
        if os.path.islink(new):
            remote_link_check(target.root, target.rename_to, os.readlink(new))

    def _metadata(self, msg: Message) -> tuple[int | None, tuple[float, float] | None]:
        """(mode, (atime, mtime)) for the remote copy, from the post's headers
        (preserve_mode, preserve_time) or default_mode."""
        h, mode, times = msg.headers, None, None
        if self.cfg.preserve_mode and h.get("mode"):
            try:
                mode = int(h["mode"], 8) & 0o777
            except ValueError:
                log.warning("%s: ignoring bad mode header '%s'", msg.relpath, h["mode"])
        elif self.cfg.default_mode:
            mode = self.cfg.default_mode
        if self.cfg.preserve_time and h.get("mtime"):
            try:
                mtime = parse_time(h["mtime"], "mtime")
                times = (parse_time(h["atime"], "atime") if h.get("atime") else mtime, mtime)
            except MessageError as exc:
                log.warning("%s: ignoring %s", msg.relpath, exc)
        return mode, times


def writer_inflight(url: str, inflight: str | None) -> str:
    """The remote temporary name of this writer: the inflight name with the
    process id in it (``f.dat.1234.tmp``, ``.f.dat.1234``), so that two
    instances given the same post never write into one file (each renames
    its own whole copy; the last one wins)."""
    tmp = inflight_name(url, inflight)
    if tmp == url:
        return url
    pid = os.getpid()
    if inflight not in (".",) and not inflight.endswith("/"):   # a suffix: keep it last
        return f"{tmp[:-len(inflight)]}.{pid}{inflight}"
    return f"{tmp}.{pid}"
