"""Build post messages for local files (dd_post, dd_watch, re-posts)."""
import functools
import os
import stat
import time
from urllib.parse import urlsplit

from .. import checksum
from ..errors import MessageError
from ..message import Message, format_time
from ..parts import Parts, block_size, split


def relpath_for(path: str, base_dir: str | None, base_url: str,
                real: bool = False) -> str:
    """The relpath announcing ``path``: relative to ``base_dir`` when given
    (refusing paths outside it), else the absolute path. ``real``
    (realpath_post): both with their symbolic links resolved."""
    path = os.path.realpath(path) if real else os.path.abspath(path)
    if base_dir:
        if real:
            base = os.path.realpath(base_dir).rstrip("/") + "/"
        elif base_dir[:1] == "/":
            base = _base(base_dir)
        else:               # (relative to the working directory of now)
            base = os.path.abspath(base_dir).rstrip("/") + "/"
        if not path.startswith(base):
            raise MessageError(f"{path} is not under post_base_dir {base}", "relpath")
        rel = path[len(base):]
    else:
        rel = path
    if base_url.endswith("/"):
        rel = rel.lstrip("/")
    return rel


@functools.lru_cache(maxsize=64)
def _base(base_dir: str) -> str:
    """An absolute ``base_dir`` normalised, ending in '/'."""
    return os.path.abspath(base_dir).rstrip("/") + "/"


@functools.lru_cache(maxsize=64)
def _has_password(url: str) -> bool:
    return bool(urlsplit(url).password)


def common_headers(cfg) -> dict[str, str]:
    """The headers every post of ``cfg`` carries: source, to_clusters,
    from_cluster and readers (a restricted post, sarra/readers.py), when set."""
    h: dict[str, str] = {}
    for opt, header in (("source", "source"), ("to_clusters", "to_clusters"),
                        ("cluster", "from_cluster"), ("readers", "readers")):
        value = getattr(cfg, opt, None)
        if value:
            h[header] = str(value)
    return h


def file_messages(cfg, path: str, now: float | None = None,
                  known_sum: str | None = None) -> list[Message]:
    """The posts for ``path``: a symlink (L + link), a file (sum + parts), or
    a file larger than the block size as one post per block, each with the
    sum of its own bytes (doc/protocol.md §4.5), the same pubtime and mtime.
    ``known_sum`` spares hashing a whole file already hashed (a rename)."""
    st = _status(cfg, path)
    if not stat.S_ISREG(st.st_mode):
        return [file_message(cfg, path, now)]
    blocks = split(st.st_size, block_size(st.st_size, getattr(cfg, "blocksize", 1)))
    if len(blocks) == 1:
        return [file_message(cfg, path, now, known_sum, st)]
    now = now if now is not None else time.time()
    out = []
    for p in blocks:
        msg = file_message(cfg, path, now, _block_sum(cfg, path, p), st)
        msg.headers["parts"] = str(p)
        out.append(msg)
    return out


def _follows(cfg) -> bool:
    """Links are followed to what they name (follow_symlinks, realpath_post)."""
    return bool(getattr(cfg, "follow_symlinks", False) or getattr(cfg, "realpath_post", False))


def _status(cfg, path: str) -> os.stat_result:
    st = os.lstat(path)
    return os.stat(path) if stat.S_ISLNK(st.st_mode) and _follows(cfg) else st


def _block_sum(cfg, path: str, p: Parts) -> str:
    method = cfg.sum
    if method.startswith("z,") or method not in checksum.CONTENT_METHODS:
        return method if method.startswith("z,") else checksum.sum_file(path, method)
    return checksum.sum_file(path, method, p.offset, p.length, cfg.bufsize)


def file_message(cfg, path: str, now: float | None = None,
                 known_sum: str | None = None, st: os.stat_result | None = None) -> Message:
    """A post for ``path`` as one piece: a file (sum + parts), or a symlink
    (L + link). ``known_sum`` spares hashing content already hashed; ``st``,
    its status when the caller has it."""
    if st is None:
        st = _status(cfg, path)
    headers = common_headers(cfg)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        headers["sum"] = checksum.sum_name("L", target)
        headers["link"] = target
    elif stat.S_ISREG(st.st_mode):
        method = cfg.sum
        if known_sum:
            headers["sum"] = known_sum
        elif method.startswith("z,"):
            headers["sum"] = method
        else:
            headers["sum"] = checksum.sum_file(path, method, bufsize=cfg.bufsize,
                                               size=st.st_size)
        headers["parts"] = str(Parts.whole(st.st_size))
        if cfg.preserve_time:
            headers["mtime"] = format_time(st.st_mtime)
            headers["atime"] = format_time(st.st_atime)
        if cfg.preserve_mode:
            headers["mode"] = "%o" % (st.st_mode & 0o7777)
    else:
        raise MessageError(f"{path} is neither a regular file nor a symlink", "relpath")
    return _message(cfg, path, headers, now)


def delete_message(cfg, path: str, now: float | None = None) -> Message:
    headers = common_headers(cfg)
    headers["sum"] = checksum.sum_name("R", os.path.basename(path))
    return _message(cfg, path, headers, now)


def _message(cfg, path: str, headers: dict[str, str], now: float | None) -> Message:
    base_url = cfg.post_base_url
    if not base_url:
        raise MessageError("post_base_url is not set", "base_url")
    if _has_password(base_url):
        raise MessageError("post_base_url must not contain a password", "base_url")
    rel = relpath_for(path, cfg.post_base_dir, base_url,
                      bool(getattr(cfg, "realpath_post", False)))
    return Message(format_time(now if now is not None else time.time()), base_url, rel,
                   headers)
