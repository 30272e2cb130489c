"""Client-side filtering: accept/reject clauses and where a file goes.

Pure functions over plain data. A clause (``Mask``, from the config loader)
carries the placement settings in force where it was written; a message
accepted because nothing matched (``accept_unmatch``) uses the settings in
force at the end of the configuration.
"""
import os
import re
import time
from dataclasses import dataclass

from ..errors import MessageError, UnsafePathError
from ..message import Message


@dataclass(frozen=True)
class Placement:
    directory: str = "."
    mirror: bool = False
    strip: str = "0"
    flatten: str = "/"
    rename: str | None = None


def default_placement(cfg) -> Placement:
    return Placement(cfg.directory, cfg.mirror, str(cfg.strip), cfg.flatten, cfg.rename)


def choose(msg: Message, masks, accept_unmatch: bool, fallback: Placement):
    """(accepted, placement, reason). First matching clause wins."""
    url = msg.url
    for mask in masks:
        if mask.regex.match(url):
            if mask.kind == "reject":
                return False, None, f"rejected by pattern {mask.pattern}"
            return True, Placement(mask.directory, mask.mirror, str(mask.strip),
                                   mask.flatten, mask.rename), f"accepted by {mask.pattern}"
    if accept_unmatch or not masks:
        return True, fallback, "accepted (no pattern matched)"
    return False, None, "no accept pattern matched"


_DATE_VARS = re.compile(r"\$\{(YYYYMMDD|YYYY|MM|DD|HH|JJJ|SOURCE)\}")


def expand_directory(directory: str, msg: Message, now: float | None = None) -> str:
    """Expand per-message variables in a destination directory."""
    if "${" not in directory:
        return directory
    source = msg.headers.get("source", "")
    if "${SOURCE}" in directory and (not source or source in (".", "..")
                                     or any(c in source for c in "/\x00")):
        raise UnsafePathError(f"'{source}' cannot name a directory", "source")
    tm = time.gmtime(now if now is not None else time.time())
    values = {"YYYYMMDD": time.strftime("%Y%m%d", tm), "YYYY": time.strftime("%Y", tm),
              "MM": time.strftime("%m", tm), "DD": time.strftime("%d", tm),
              "HH": time.strftime("%H", tm), "JJJ": time.strftime("%j", tm),
              "SOURCE": source}
    return _DATE_VARS.sub(lambda m: values[m.group(1)], directory)


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
