"""Message formats: v02 (text body + headers), v03 (JSON body) and wis2
(WIS2 notification messages, GeoJSON).

``decode`` recognises the format of a received message; ``encode`` uses
the ``post_format`` asked for, or picks it from the topic prefix the
message is published under. Formats are a registry (name ->
"module:Class") so another one can be added by name.
"""
import json
import logging
from typing import Any, Protocol

from ..errors import MessageError
from ..message import Message, parse_time
from ..registry import Registry
from .v02 import (MAX_SHORTSTR, body_text, check_name, header_value, topic_for,
                  unescape_field)

__all__ = ["FORMATS", "decode", "encode", "format_of", "salvage", "topic_for"]

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"

FORMATS = Registry("message format", {
    "v02": "sarra.codec.v02:V02Format",
    "v03": "sarra.codec.v03:V03Format",
    "wis2": "sarra.codec.wis2:Wis2Format",
}, MessageError)


class Format(Protocol):
    """What a FORMATS entry provides."""
    name: str
    content_type: str

    def decode(self, topic: str, headers: dict | None, body: str,
               exchange: str = "") -> Message: ...

    def encode(self, msg: Message,
               topic_prefix: str) -> tuple[str, dict[str, str], str, str]: ...


WIS2_CONTENT_TYPE = "application/geo+json"      # (codec/wis2.py: loaded when used)


def looks_like_wis2(text: str) -> bool:
    """Whether a JSON body is a WNM rather than a v03 post (cheap: read
    before it is parsed; the decoder then checks every field)."""
    head = text[:4096]
    return '"conformsTo"' in head or ('"Feature"' in head and '"links"' in text)


def format_of(topic: str, body: str, content_type: str | None = None) -> str:
    """'wis2' for a WIS2 notification message (a JSON object with
    conformsTo, or a Feature with links; or the application/geo+json
    content type); 'v03' for another JSON body (object or transitional
    array), a v03 topic or an application/json content type; 'v02'
    otherwise."""
    start = body.lstrip()[:1]
    kind = content_type.split(";")[0].strip() if content_type else ""
    if (start == "{" and looks_like_wis2(body)) or kind == WIS2_CONTENT_TYPE:
        return "wis2"
    if start in ("{", "[") or (topic or "").startswith("v03"):
        return "v03"
    if content_type and content_type.split(";")[0].strip() == JSON_CONTENT_TYPE:
        return "v03"
    return "v02"


def decode(topic: str, headers: dict | None, body: bytes | str,
           content_type: str | None = None, exchange: str = "") -> Message:
    """Decode a received message; every malformed input raises MessageError."""
    text = body_text(body)
    fmt: Any = FORMATS.get(format_of(topic, text, content_type))
    try:
        return fmt.decode(topic or "", headers, text, exchange)
    except MessageError:
        raise
    except Exception as exc:  # a decoder bug must not kill the consumer
        logger.debug("unexpected error decoding %s message", fmt.name, exc_info=True)
        raise MessageError(f"undecodable {fmt.name} message: {exc!r}", "body") from exc


def salvage(topic: str, headers: dict | None, body: bytes | str) -> Message | None:
    """What can be read of a message ``decode`` refused: enough to send a
    log message about it (status 417) when its pubtime, base URL and
    relpath are sound, else None. Headers that are not short strings are
    left out."""
    try:
        text = body_text(body)
        if text.lstrip()[:1] == "{":
            obj = json.loads(text)
            pubtime, base_url, relpath = (obj.get(k) for k in ("pubTime", "baseUrl", "relPath"))
            if not all(isinstance(v, str) and v for v in (pubtime, base_url, relpath)):
                return None
            pubtime = pubtime.replace("T", "", 1) if pubtime[8:9] == "T" else pubtime
        else:
            fields = text.split("\n", 1)[0].split(" ")
            if len(fields) < 3 or not all(fields[:3]):   # 'T B ' names no file
                return None
            pubtime, base_url, relpath = fields[0], unescape_field(fields[1]), unescape_field(fields[2])
        parse_time(pubtime)
        check_name(base_url, "base_url")
        check_name(relpath, "relpath")
    except Exception:    # whatever is wrong with it (50,000 nested objects...): nothing to read
        return None
    hdrs: dict[str, str] = {}
    for key, value in (headers or {}).items():
        try:
            value = header_value(str(key), value)
            fits = len(str(key).encode()) <= MAX_SHORTSTR and len(value.encode()) <= MAX_SHORTSTR
        except Exception:   # not UTF-8, a lone surrogate, nested too deep to flatten...
            continue
        if fits:
            hdrs[str(key)] = value
    hdrs.pop("message", None)
    return Message(pubtime, base_url, relpath, hdrs, topic=topic or "")


def encode(msg: Message, topic_prefix: str = "v02.post", post_format: str | None = None,
           topic: str | None = None, **wis2: Any) -> tuple[str, dict[str, str], str, str]:
    """(topic, headers, body, content_type) in ``post_format``; without
    one, v03 when the prefix starts with 'v03', else v02 (a log message's
    'post' word becomes 'report'). ``topic``: every message's whole topic
    (``post_topic``), instead of the prefix and the relpath's directories.
    ``wis2``: the WNM's settings (``metadata_id``, ``data_id``)."""
    name = post_format or ("v03" if topic_prefix.startswith("v03") else "v02")
    fmt: Any = FORMATS.get(name)
    if name == "wis2":
        return fmt.encode(msg, topic_prefix, topic, **wis2)
    out = fmt.encode(msg, topic_prefix)
    return (topic, *out[1:]) if topic else out
