"""The Message value: one post or log message, independent of wire format.

Internally a message always holds the v02 view (doc/protocol.md §2):
``pubtime``/``base_url``/``relpath`` from the body, string ``headers``
(``sum``, ``parts``, ``source``... and any unknown header, forwarded
unchanged). A log message also has a ``report``. Codecs (sarra.codec)
turn a Message into (topic, headers, body) and back.
"""
import calendar
import datetime
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .containment import real
from .errors import MessageError, UnsafePathError
from .parts import Parts

# operations a message can announce, from the sum letter (doc/protocol.md §2.6)
OPS_BY_SUM = {"R": "delete", "L": "link", "m": "mkdir", "r": "rmdir"}
# v02 status codes (doc/protocol.md §5.4) and the texts we send with them
STATUS_TEXT = {
    201: "Downloaded", 202: "Accepted", 205: "Reset Content", 304: "Not modified",
    307: "Insertion deferred", 403: "Forbidden", 404: "Not Found",
    417: "Expectation Failed: invalid message", 422: "Unprocessable: unsafe path",
    499: "Failure: Not Copied", 503: "Service unavailable",
}


MAX_DURATION = 100 * 366 * 86400.0   # seconds: a longer one is a bad message


@dataclass
class Report:
    """The extra fields of a v02 log message (doc/protocol.md §5.2)."""
    code: int
    host: str
    user: str
    duration: float
    message: str = ""


@dataclass
class Message:
    pubtime: str                     # 'YYYYMMDDHHMMSS.frac' (v02 form, no 'T')
    base_url: str                    # decoded (no %20)
    relpath: str                     # decoded
    headers: dict[str, str] = field(default_factory=dict)
    topic: str = ""                  # routing key as received / as computed
    exchange: str = ""
    report: Report | None = None     # set on log messages
    extras: dict[str, Any] = field(default_factory=dict)  # v03-only structured fields
    # transport bookkeeping (never on the wire)
    delivery_tag: Any = None
    received: float = 0.0
    redelivered: bool = False
    # where the work put the file (and the directory it must stay in); hooks
    # read them, and one that moves the file (move_to) updates them
    local_path: str | None = field(default=None, compare=False)
    local_root: str | None = field(default=None, compare=False)
    # what came off the wire (broker.Delivery), kept for the quarantine
    raw: Any = field(default=None, compare=False, repr=False)

    # -- derived views -------------------------------------------------
    @property
    def url(self) -> str:
        return self.base_url + self.relpath

    @property
    def sum(self) -> tuple[str, str]:
        """(method letter(s), value) of the ``sum`` header."""
        text = self.headers.get("sum")
        if not text:
            raise MessageError("missing", "sum")
        method, sep, value = text.partition(",")
        if not sep or not method:
            raise MessageError(f"'{text}' is not method,value", "sum")
        if method == "z":  # 'z,d': value is the letter to compute on download
            return "z", value
        return method, value

    @property
    def parts(self) -> Parts | None:
        text = self.headers.get("parts")
        return Parts.parse(text) if text else None

    @property
    def operation(self) -> str:
        """'file', 'delete', 'link', 'mkdir' or 'rmdir'."""
        method = self.headers.get("sum", "").split(",", 1)[0]
        return OPS_BY_SUM.get(method, "file")

    @property
    def size(self) -> int | None:
        p = self.parts
        return p.file_size if p else None

    @property
    def is_report(self) -> bool:
        return self.report is not None

    def short(self) -> str:
        """A one-line description for logs (never contains credentials)."""
        return f"{self.operation} {self.relpath}"


# -- time stamps ---------------------------------------------------------

_SECONDS: dict[int, str] = {}    # whole second -> its 'YYYYMMDDHHMMSS' (recent ones)


def format_time(t: float) -> str:
    """UTC 'YYYYMMDDHHMMSS.mmm' (doc/protocol.md §2.4); MessageError for a time
    no calendar of four-digit years holds (a duration of 1e30 added...)."""
    try:
        whole = int(t)
        ms = int(round((t - whole) * 1000))
        if ms == 1000:
            whole, ms = whole + 1, 0
        stamp = _SECONDS.get(whole)
        if stamp is None:
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(whole))
            if len(stamp) != 14:
                raise MessageError(f"{t!r} is out of range", "time")
            if len(_SECONDS) >= 256:    # the times of a batch are mostly a few seconds
                _SECONDS.clear()
            _SECONDS[whole] = stamp
    except (OverflowError, ValueError, OSError):
        raise MessageError(f"{t!r} is out of range", "time") from None
    return "%s.%03d" % (stamp, ms)


def parse_time(text: str, field_name: str = "pubtime") -> float:
    """Parse a v02 or v03 time stamp leniently: any fraction, optional 'T'."""
    s = text.strip()
    if len(s) > 8 and s[8] == "T":
        s = s[:8] + s[9:]
    head, _, frac = s.partition(".")
    if len(head) != 14 or not head.isdigit() or (frac and not frac.isdigit()):
        raise MessageError(f"'{text}' is not YYYYMMDDHHMMSS[.fraction]", field_name)
    hour = _PARSED_HOURS.get(head[:10])    # each message has several stamps of one hour
    if hour is None:
        try:
            hour = datetime.datetime(int(head[:4]), int(head[4:6]), int(head[6:8]),
                                     int(head[8:10]), tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            raise MessageError(f"'{text}' is not a valid date", field_name) from None
        if len(_PARSED_HOURS) > 256:
            _PARSED_HOURS.clear()
        _PARSED_HOURS[head[:10]] = hour
    minute, second = int(head[10:12]), int(head[12:14])
    if minute > 59 or second > 59:
        raise MessageError(f"'{text}' is not a valid date", field_name)
    return hour + (minute * 60 + second) + (float("0." + frac) if frac else 0.0)


_PARSED_HOURS: dict[str, float] = {}    # 'YYYYMMDDHH' (valid) -> its seconds since the epoch
_CHECKED: dict[str, None] = {}          # time stamps found valid lately


def checked_time(text: str, field_name: str = "pubtime") -> None:
    """MessageError unless ``text`` is a time stamp (parse_time); the
    stamps of a batch being mostly a few, those checked lately pass at once."""
    if text in _CHECKED:
        return
    parse_time(text, field_name)
    if len(_CHECKED) >= 256:
        _CHECKED.clear()
    _CHECKED[text] = None


_HOURS: dict[str, float] = {}    # 'YYYYMMDDHH' -> its seconds since the epoch


def pubtime_seconds(text: str) -> float | None:
    """``parse_time`` made cheap for the engine's lag figure (once a batch):
    a message's v02 pubtime (``Message.pubtime``, 'YYYYMMDDHHMMSS.frac') in
    seconds since the epoch, its hour computed once; None if it does not
    read so."""
    try:
        hour = _HOURS.get(text[:10])
        if hour is None:
            hour = float(calendar.timegm((int(text[:4]), int(text[4:6]), int(text[6:8]),
                                          int(text[8:10]), 0, 0)))
            if len(_HOURS) > 256:
                _HOURS.clear()
            _HOURS[text[:10]] = hour
        return hour + int(text[10:12]) * 60 + float(text[12:])
    except (ValueError, TypeError, OverflowError):
        return None


# -- paths ----------------------------------------------------------------

def safe_join(root: str, relpath: str) -> str:
    """Join ``relpath`` under ``root`` and refuse anything that escapes it.

    Refused: absolute paths (after the leading '/' of a relpath is removed,
    a second one is still absolute), '..' components, NUL bytes, and a path
    whose existing parent directories resolve (through symlinks) outside
    ``root``. Raises UnsafePathError(field='relpath').
    """
    if "\x00" in relpath:
        raise UnsafePathError("contains a NUL byte", "relpath")
    rel = relpath.lstrip("/")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePathError(f"'{relpath}' names no file", "relpath")
    if ".." in parts:
        raise UnsafePathError(f"'{relpath}' contains '..'", "relpath")
    root_real = real(root)
    target = os.path.join(root_real, *parts)
    parent_real = real(os.path.dirname(target))
    if parent_real != root_real and not parent_real.startswith(root_real + os.sep):
        raise UnsafePathError(f"'{relpath}' resolves outside {root}", "relpath")
    return os.path.join(parent_real, parts[-1])


def inside(root: str, path: str) -> bool:
    """True when ``path`` (already resolved) is ``root`` or below it."""
    root = real(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
