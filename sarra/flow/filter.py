"""Client-side filtering: accept/reject clauses and where a file goes.

Pure functions over plain data. A clause (``Mask``, from the config loader)
carries the placement settings in force where it was written; a message
accepted because nothing matched (``accept_unmatch``) uses the settings in
force at the end of the configuration.
"""
import os
import re
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..config import variables as var
from ..errors import MessageError, UnsafePathError
from ..message import Message


@dataclass(frozen=True)
class Placement:
    directory: str = "."
    mirror: bool = False
    strip: str = "0"
    flatten: str = "/"
    rename: str | None = None
    groups: tuple = ()          # the accept pattern's match: (whole, group 1, ...)


def default_placement(cfg) -> Placement:
    return Placement(cfg.directory, cfg.mirror, str(cfg.strip), cfg.flatten, cfg.rename)


def choose(msg: Message, masks, accept_unmatch: bool, fallback: Placement):
    """(accepted, placement, reason). First matching clause wins."""
    url = msg.url
    for mask in masks:
        match = mask.regex.match(url)
        if match:
            if mask.kind == "reject":
                return False, None, f"rejected by pattern {mask.pattern}"
            return True, Placement(mask.directory, mask.mirror, str(mask.strip),
                                   mask.flatten, mask.rename,
                                   (match.group(0),) + match.groups()), \
                f"accepted by {mask.pattern}"
    if accept_unmatch or not masks:
        return True, fallback, "accepted (no pattern matched)"
    return False, None, "no accept pattern matched"


def _component(value: str, what: str) -> str:
    """A value of the message for a path: one component (${SOURCE})."""
    if not value or value in (".", "..") or any(c in value for c in "/\x00"):
        raise UnsafePathError(f"'{value}' cannot name a directory", what)
    return value


def _relative(value: str, what: str) -> str:
    """A value of the message for a path: relative, no '.' or '..' (${1}, ${BUP})."""
    if "\x00" in value or value.startswith("/") or \
            any(w in (".", "..") for w in value.split("/")):
        raise UnsafePathError(f"'{value}' cannot be part of a path", what)
    return value


def expand(text: str | None, msg: Message, groups: tuple = (), now: float | None = None,
           offset: float = 0.0, first_match_is_zero: bool = False) -> str | None:
    """``text`` (a directory or rename) with the variables of this message
    replaced (sarra/config/variables.py): times at ``now`` + ``offset`` (UTC),
    the accept groups, ${SOURCE}, ${BUP}, ${BUPL}. A value that would lead
    the path elsewhere (a source that is no single name, a group or base URL
    path with '..' or starting with '/') is an UnsafePathError (403)."""
    if text is None or "${" not in text:
        return text
    when = (now if now is not None else time.time()) + offset

    def value(inner: str) -> str:
        kind = var.kind(inner)
        if kind == var.TIME:
            return var.time_value(inner, when)
        if kind == var.GROUP:
            n = var.group_index(inner, first_match_is_zero)
            got = groups[n] if n < len(groups) else None
            return _relative(got or "", f"${{{inner}}}")
        if inner == "SOURCE":
            return _component(msg.headers.get("source", ""), "source")
        if kind == var.MESSAGE:
            path = urlsplit(msg.base_url).path.strip("/")
            if inner in ("BUPL", "baseUrlPathLast"):
                path = path.rsplit("/", 1)[-1]
            return _relative(path, "baseUrl")
        raise MessageError(f"${{{inner}}} is not replaced for each message", "directory")
    return var.substitute(text, value)


def expand_directory(directory: str, msg: Message, now: float | None = None) -> str:
    """Expand per-message variables in a destination directory (no accept groups)."""
    return expand(directory, msg, now=now)


def resolve(p: Placement, msg: Message, cfg, now: float | None = None) -> Placement:
    """``p`` with its directory and rename expanded for ``msg`` (``cfg``'s
    var_time_offset and sundew_compat_regex_first_match_is_zero)."""
    offset = getattr(cfg, "var_time_offset", 0.0) or 0.0
    zero = bool(getattr(cfg, "sundew_compat_regex_first_match_is_zero", False))
    return replace(p, directory=expand(p.directory, msg, p.groups, now, offset, zero),
                   rename=expand(p.rename, msg, p.groups, now, offset, zero))


def placed_relpath(msg: Message, p: Placement) -> str:
    """The path of the file under the destination directory."""
    rel = msg.relpath.lstrip("/")
    if p.strip and p.strip != "0":
        rel = strip_path(rel, p.strip)
    if p.rename:
        if p.rename.endswith("/"):
            return p.rename.lstrip("/") + os.path.basename(rel)
        return p.rename.lstrip("/")
    if p.flatten and p.flatten != "/":
        return rel.replace("/", p.flatten)
    if not p.mirror:
        return os.path.basename(rel)
    return rel


def strip_path(rel: str, strip: str) -> str:
    """``strip N`` drops N leading directories; any other value is a regex removed."""
    if strip.isdigit():
        words = rel.split("/")
        n = int(strip)
        if n >= len(words):
            raise MessageError(f"strip {n} removes the whole path '{rel}'", "relpath")
        return "/".join(words[n:])
    return re.sub(strip, "", rel, count=1).lstrip("/")
