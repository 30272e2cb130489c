"""v02 wire format: topic + one-line text body + string headers.

doc/protocol.md §2, §5. A post body is
``pubtime SP base_url SP relpath``; a log ("report") body adds
``code host user duration``. Spaces and ``#`` in base_url/relpath travel as
``%20``/``%23``; on input ``%20``, ``%23`` and ``%22`` (the ``*`` escape of
the topic) are decoded and nothing else. Topics are the prefix plus the
directories of relpath, escaped and truncated to 255 UTF-8 bytes.
"""
import functools
import json
import logging
import math
import re
from typing import Any

from ..errors import MessageError
from ..message import MAX_DURATION, Message, Report, STATUS_TEXT, checked_time, parse_time
from ..parts import Parts

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain"
MAX_SHORTSTR = 255                       # AMQP short string, in UTF-8 bytes
LOG_WORDS = ("report", "log")            # topic word 1 of a log message

_TOPIC_ESCAPES = {"#": "%23", " ": "%20"}     # the v2 rule (sr3 also escapes *)
_TOPIC_ESCAPE_RE = re.compile(r"[# ]")
_BODY_ESCAPES = {" ": "%20", "#": "%23"}
_BODY_ESCAPE_RE = re.compile(r"[ #]")
_BODY_UNESCAPES = {"%20": " ", "%23": "#", "%22": "*"}
_BODY_UNESCAPE_RE = re.compile(r"%2[023]")
_DOTS_RE = re.compile(r"\.{2,}")
_CODE_RE = re.compile(r"\d{1,4}")
_DURATION_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


# -- topics ----------------------------------------------------------------

def escape_topic_word(word: str) -> str:
    """Escape a topic word: ``#`` -> %23, space -> %20 (doc/protocol.md §2.2)."""
    return _TOPIC_ESCAPE_RE.sub(lambda m: _TOPIC_ESCAPES[m.group()], word)


def truncate_topic(topic: str, limit: int = MAX_SHORTSTR) -> str:
    """Cut ``topic`` to at most ``limit`` UTF-8 bytes on a character boundary."""
    raw = topic.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return topic
    cut = raw[:limit].decode("utf-8", "ignore")
    logger.warning("topic of %d bytes truncated to %d: %s...", len(raw),
                   len(cut.encode("utf-8", "surrogatepass")), cut[:60])
    return cut


def topic_for(prefix: str, relpath: str) -> str:
    """``prefix`` + the directories of ``relpath`` joined by '.' (no file name).

    Empty path components are dropped and runs of dots collapsed (a name
    with dots simply makes more words); the result is truncated to 255
    UTF-8 bytes on a character boundary, with a warning (once for a
    directory: the topics of recent directories are kept).
    """
    return _topic(prefix, relpath.strip("/").rpartition("/")[0])


@functools.lru_cache(maxsize=1024)
def _topic(prefix: str, directory: str) -> str:
    words = [w for w in directory.split("/") if w]
    topic = prefix.rstrip(".")
    if words:
        sub = ".".join(escape_topic_word(w) for w in words)
        topic = _DOTS_RE.sub(".", f"{topic}.{sub}" if topic else sub).strip(".")
    return truncate_topic(topic)


def log_prefix(prefix: str) -> str:
    """The prefix for a log message: word 1 ``post`` becomes ``report``."""
    words = prefix.split(".")
    if len(words) > 1 and words[1] == "post":
        words[1] = "report"
    return ".".join(words)


def is_log_topic(topic: str) -> bool:
    words = topic.split(".", 2)
    return len(words) > 1 and words[1] in LOG_WORDS


# -- body fields -----------------------------------------------------------

def escape_field(text: str) -> str:
    """Write space as %20 and '#' as %23 (base_url and relpath)."""
    return _BODY_ESCAPE_RE.sub(lambda m: _BODY_ESCAPES[m.group()], text)


def unescape_field(text: str) -> str:
    """Decode %20, %23 and %22 only (no general url-unquoting)."""
    return _BODY_UNESCAPE_RE.sub(lambda m: _BODY_UNESCAPES[m.group()], text)


def body_text(body: bytes | bytearray | memoryview | str) -> str:
    """The body as text; MessageError('body') if it is not UTF-8."""
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except (UnicodeDecodeError, TypeError) as exc:
        raise MessageError(f"not UTF-8 text: {exc}", "body") from None


# -- headers ---------------------------------------------------------------

def header_value(name: str, value: Any) -> str:
    """A header value as a string, as it may come from pika."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError("value is not UTF-8", f"headers.{name}") from None
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise MessageError(f"cannot flatten: {exc}", f"headers.{name}") from None
    return str(value)


def decode_headers(headers: dict | None) -> dict[str, str]:
    """Convert received AMQP headers to ``dict[str, str]``."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise MessageError(f"not a table: {type(headers).__name__}", "headers")
    out: dict[str, str] = {}
    for key, value in headers.items():
        name = header_value("?", key) if not isinstance(key, str) else key
        out[name] = header_value(name, value)
    return out


def check_headers(headers: dict[str, str]) -> None:
    """Validate the mandatory and structured headers of a received message."""
    text = headers.get("sum")
    if not text:
        raise MessageError("missing", "sum")
    method, sep, _ = text.partition(",")
    if not sep or not method:
        raise MessageError(f"'{text[:80]}' is not method,value", "sum")
    if headers.get("parts"):
        Parts.parse(headers["parts"])


def encode_headers(headers: dict[str, Any]) -> dict[str, str]:
    """Headers ready to publish: strings, each key and value at most 255
    UTF-8 bytes (MessageError(field=<name>) otherwise: never truncated)."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        text = value if value.__class__ is str else header_value(key, value)
        for part in (key, text):
            if part.isascii():      # (a byte a character)
                size = len(part)
            else:
                try:
                    size = len(part.encode("utf-8"))
                except UnicodeEncodeError:
                    raise MessageError("not encodable as UTF-8", key) from None
            if size > MAX_SHORTSTR:
                raise MessageError(f"{size} bytes, over the {MAX_SHORTSTR} "
                                   f"byte limit", key)
        out[key] = text
    return out


# -- decode ----------------------------------------------------------------

def _parse_report(fields: list[str]) -> Report:
    code, host, user, duration = fields[3:7]
    if not _CODE_RE.fullmatch(code):
        raise MessageError(f"'{code}' is not a status code", "code")
    if not _DURATION_RE.fullmatch(duration):
        raise MessageError(f"'{duration}' is not a number", "duration")
    value = float(duration)
    if not math.isfinite(value) or abs(value) > MAX_DURATION:
        raise MessageError(f"'{duration}' is out of range", "duration")
    return Report(int(code), host, user, value)


def decode(topic: str, headers: dict | None, body: bytes | str,
           exchange: str = "") -> Message:
    """Decode a v02 post or log message (MessageError on malformed input)."""
    text = body_text(body)
    line = text.split("\n", 1)[0].rstrip("\r")
    fields = line.split(" ")
    is_log = is_log_topic(topic or "")
    if is_log and len(fields) != 7:
        raise MessageError(f"a log body has 7 fields, got {len(fields)}", "body")
    if len(fields) < 3:
        raise MessageError(f"a post body has 3 fields, got {len(fields)}", "body")
    pubtime, base_url, relpath = fields[:3]
    parse_time(pubtime, "pubtime")
    if not base_url:
        raise MessageError("empty", "base_url")
    if not relpath:
        raise MessageError("empty", "relpath")
    hdrs = decode_headers(headers)
    if not is_log:   # a log message repeats the headers of the post, good or bad
        check_headers(hdrs)
    report = None
    if is_log:
        report = _parse_report(fields)
        report.message = hdrs.pop("message", "")
    return Message(pubtime=pubtime, base_url=check_name(unescape_field(base_url), "base_url"),
                   relpath=check_name(unescape_field(relpath), "relpath"), headers=hdrs,
                   topic=topic or "", exchange=exchange, report=report)


# -- encode ----------------------------------------------------------------

def check_name(value: str, field_name: str) -> str:
    """A received base_url or relpath: no line break or NUL (it could not be
    reported or re-posted, nor name a file)."""
    if "\n" in value or "\r" in value or "\x00" in value:
        raise MessageError("contains a line break or NUL", field_name)
    return value


def check_text(value: str, field_name: str) -> str:
    """A body field must be non-empty UTF-8 text without line breaks."""
    if not isinstance(value, str) or not value:
        raise MessageError("empty or not text", field_name)
    if "\n" in value or "\r" in value:
        raise MessageError("contains a line break", field_name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageError("not encodable as UTF-8", field_name) from None
    return value


def _report_fields(report: Report) -> str:
    for name in ("host", "user"):
        value = getattr(report, name)
        if not isinstance(value, str) or " " in value or "\r" in value or "\n" in value:
            raise MessageError(f"'{value}' must be text without spaces", name)
    if not math.isfinite(report.duration):
        raise MessageError(f"'{report.duration}' is not finite", "duration")
    return " %d %s %s %f" % (report.code, report.host, report.user,
                             report.duration)


def encode(msg: Message, topic_prefix: str = "v02.post") -> tuple[str, dict[str, str], str, str]:
    """(topic, headers, body, content_type) of ``msg`` in v02.

    A log message (``msg.report`` set) gets topic word 1 ``report`` when
    the prefix says ``post``, the 7-field body and ``message`` header.
    """
    checked_time(check_text(msg.pubtime, "pubtime"))
    check_text(msg.base_url, "base_url")
    check_text(msg.relpath, "relpath")
    hdrs = dict(msg.headers)
    body = f"{msg.pubtime} {escape_field(msg.base_url)} {escape_field(msg.relpath)}"
    prefix = topic_prefix
    if msg.report is not None:
        body += _report_fields(msg.report)
        hdrs["message"] = msg.report.message or STATUS_TEXT.get(msg.report.code, "")
        prefix = log_prefix(prefix)
    out = encode_headers(hdrs)
    if msg.report is None:   # a log message repeats what it is about, even if bad
        check_headers(out)
    return topic_for(prefix, msg.relpath), out, body, CONTENT_TYPE


class V02Format:
    """The v02 entry of the codec registry (sarra.codec.FORMATS)."""
    name = "v02"
    content_type = CONTENT_TYPE
    decode = staticmethod(decode)
    encode = staticmethod(encode)
