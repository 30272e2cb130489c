"""v03 wire format: one JSON object per message (sr3's form).

doc/protocol.md §6. Converts between the JSON keys and the
internal v02 view held by sarra.message.Message:

* ``pubTime``/``mtime``/``atime`` lose their ``T`` (and get it back);
* ``identity`` (old name ``integrity``) <-> ``sum``: base64 <-> hex for
  md5/sha512/xxh128/md5name, ``random``/``arbitrary`` verbatim, ``cod`` <->
  ``z,<letter>``; an unknown method or no identity at all gives
  ``n,<md5(basename)>`` as sr3's v02 exporter does, and the original is kept
  in ``extras['identity']`` (None when there was none) so a v03 re-post
  restores it;
* ``fileOp``: ``link`` -> ``sum=L,...`` + header ``link``; ``remove`` ->
  ``R``; ``directory`` -> ``m`` (with ``remove``: ``r``); ``rename`` ->
  header ``oldname``; ``hlink`` -> header ``hlink``; other fileOp keys stay
  in ``extras['fileOp']``;
* ``size`` -> ``parts=1,size,1,0,0``; ``blocks`` -> ``parts=i|p,...`` (the
  remainder from ``remainder`` or from the manifest), the ``blocks`` object
  kept in ``extras['blocks']``;
* ``report`` object <-> ``msg.report`` (duration = timeCompleted - pubTime);
* other string values -> headers; other values (``content``...) -> extras.
"""
import base64
import binascii
import json
import math
import time
from typing import Any

from ..checksum import NAMED_METHODS, sum_name
from ..errors import ChecksumError, MessageError
from ..message import MAX_DURATION, Message, Report, checked_time, format_time, parse_time
from ..parts import Parts
from .v02 import check_headers, check_name, check_text, decode_headers, header_value, topic_for

CONTENT_TYPE = "application/json"

# sum letter <-> identity method name
METHOD_NAMES = {
    "d": "md5", "s": "sha512", "x": "xxh128", "n": "md5name", "0": "random",
    "a": "arbitrary", "z": "cod", "L": "link", "R": "remove", "m": "mkdir",
    "r": "rmdir",
}
METHOD_NAMES.update((name, name) for name in NAMED_METHODS)   # sum 'sha256,...'
METHOD_LETTERS = {name: letter for letter, name in METHOD_NAMES.items()}
METHOD_LETTERS["xxh3_128"] = "x"
DIGEST_LETTERS = frozenset("dsxnLRmr") | frozenset(NAMED_METHODS)  # hex in v02, base64 in v03
OP_LETTERS = frozenset("LRmr")
BLOCK_METHODS = {"inplace": "i", "partitioned": "p", "i": "i", "p": "p"}
BLOCK_NAMES = {"i": "inplace", "p": "partitioned"}
TIME_HEADERS = ("mtime", "atime")
# keys handled explicitly, never copied from extras or headers
RESERVED = frozenset(("pubTime", "baseUrl", "relPath", "identity", "integrity",
                      "fileOp", "size", "blocks", "report", "topic"))


# -- small conversions -------------------------------------------------------

def to_v3_time(text: str) -> str:
    """'YYYYMMDDHHMMSS.f' -> 'YYYYMMDDTHHMMSS.f' (unchanged if not of that form)."""
    if len(text) > 8 and text[8] != "T" and text[:8].isdigit():
        return text[:8] + "T" + text[8:]
    return text


def to_v2_time(text: str) -> str:
    if len(text) > 8 and text[8] == "T":
        return text[:8] + text[9:]
    return text


def _int(value: Any, field_name: str) -> int:
    """A JSON integer, or a string of ASCII digits (V2 wrote strings)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise MessageError(f"{value!r} is not a non-negative integer", field_name)


def _b64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError) as exc:
        raise MessageError(f"value is not base64: {exc}", "identity") from None


def _hex_to_b64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        raise MessageError(f"'{value[:80]}' is not hex", "sum") from None


# -- decode ----------------------------------------------------------------

def _load(body: str) -> dict[str, Any]:
    """The JSON object (or transitional array) as a dict."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"not JSON: {exc}", "json") from None
    if isinstance(obj, list):
        if len(obj) != 4 or not isinstance(obj[3], dict):
            raise MessageError("a v03 array is [pubTime, baseUrl, relPath, {headers}]",
                               "json")
        obj = {**obj[3], "pubTime": obj[0], "baseUrl": obj[1], "relPath": obj[2]}
    if not isinstance(obj, dict):
        raise MessageError(f"not an object: {type(obj).__name__}", "json")
    return obj


def _text(obj: dict[str, Any], key: str, field_name: str) -> str:
    value = obj.pop(key, None)
    if not isinstance(value, str) or not value:
        raise MessageError(f"'{key}' missing or not a string", field_name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageError("not encodable as UTF-8", field_name) from None
    return value


def _identity_sum(ident: Any) -> str | None:
    """The v02 sum for an identity object; None for an unknown method."""
    if not isinstance(ident, dict):
        raise MessageError("not an object", "identity")
    method, value = ident.get("method"), ident.get("value")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(method, str) or not isinstance(value, str):
        raise MessageError("needs string method and value", "identity")
    letter = METHOD_LETTERS.get(method)
    if letter is None:
        return None
    if letter in DIGEST_LETTERS:
        return f"{letter},{_b64_to_hex(value)}"
    if letter == "z":
        return f"z,{METHOD_LETTERS.get(value, value)}"
    return f"{letter},{value}"


def _fileop_sum(fileop: Any, relpath: str, hdrs: dict[str, str],
                extras: dict[str, Any]) -> str | None:
    """Headers and sum of a fileOp; None when it announces no operation."""
    if not isinstance(fileop, dict):
        raise MessageError("not an object", "fileOp")
    rest = dict(fileop)
    for key, header in (("rename", "oldname"), ("hlink", "hlink"), ("link", "link")):
        if key in rest:
            value = rest.pop(key)
            if not isinstance(value, str):
                raise MessageError(f"'{key}' is not a string", "fileOp")
            hdrs[header] = value
    is_dir = rest.pop("directory", None) is not None
    is_dir = rest.pop("mkdir", None) is not None or is_dir
    is_rm = rest.pop("remove", None) is not None
    if rest.pop("rmdir", None) is not None:
        is_dir = is_rm = True
    if rest:
        extras["fileOp"] = rest
    try:
        if is_dir:
            return sum_name("r" if is_rm else "m", relpath)
        if is_rm:
            return sum_name("R", relpath)
        if "link" in fileop:
            return sum_name("L", hdrs["link"])
    except ChecksumError as exc:
        raise MessageError(str(exc), "fileOp") from None
    return None


def _decode_sum(ident: Any, fileop: Any, relpath: str, hdrs: dict[str, str],
                extras: dict[str, Any]) -> None:
    """Set ``hdrs['sum']`` from fileOp, identity or (failing both) the name."""
    op_sum = _fileop_sum(fileop, relpath, hdrs, extras) if fileop is not None else None
    id_sum = _identity_sum(ident) if ident is not None else None
    if op_sum:
        hdrs["sum"] = op_sum
        if ident is not None:
            extras["identity"] = ident
    elif id_sum:
        hdrs["sum"] = id_sum
    elif ident is not None or "sum" not in hdrs:
        extras["identity"] = ident
        try:
            hdrs["sum"] = sum_name("n", relpath)
        except ChecksumError as exc:
            raise MessageError(str(exc), "relpath") from None


def _manifest_remainder(manifest: dict[str, Any], count: int, bsz: int) -> int:
    last = manifest.get(str(count - 1))
    if not isinstance(last, dict):
        raise MessageError(f"manifest has no entry for block {count - 1}", "blocks")
    return _int(last.get("size"), "blocks") % bsz


def _blocks_parts(blocks: Any) -> Parts:
    """The parts header of a v03 blocks object (count/remainder or manifest)."""
    if not isinstance(blocks, dict):
        raise MessageError("not an object", "blocks")
    method = blocks.get("method")
    method = BLOCK_METHODS.get(method) if isinstance(method, str) else None
    if method is None:
        raise MessageError(f"unknown method {blocks.get('method')!r}", "blocks")
    bsz = _int(blocks.get("size"), "blocks")
    bno = _int(blocks.get("number"), "blocks")
    manifest = blocks.get("manifest")
    if manifest is not None and not isinstance(manifest, dict):
        raise MessageError("manifest is not an object", "blocks")
    if "count" in blocks:
        count = _int(blocks["count"], "blocks")
    elif manifest:
        count = len(manifest)
    else:
        raise MessageError("needs count or manifest", "blocks")
    if "remainder" in blocks:
        brem = _int(blocks["remainder"], "blocks")
    elif manifest and bsz:
        brem = _manifest_remainder(manifest, count, bsz)
    else:
        raise MessageError("needs remainder or manifest", "blocks")
    try:
        return Parts.parse(f"{method},{bsz},{count},{brem},{bno}")
    except MessageError as exc:
        raise MessageError(str(exc), "blocks") from None


def _decode_parts(size: Any, blocks: Any, hdrs: dict[str, str],
                  extras: dict[str, Any]) -> None:
    if blocks is not None:
        hdrs["parts"] = str(_blocks_parts(blocks))
        extras["blocks"] = blocks
    elif size is not None and "parts" not in hdrs:
        hdrs["parts"] = str(Parts.whole(_int(size, "size")))


def _decode_report(rep: Any, pubtime: str, extras: dict[str, Any]) -> Report:
    """sr3's {code, timeCompleted, message}; late V2's resultCode/elapsedTime."""
    if not isinstance(rep, dict):
        raise MessageError("not an object", "report")
    code = _int(rep.get("code", rep.get("resultCode")), "report")
    texts = [rep.get(k, "") for k in ("message", "host", "user")]
    if not all(isinstance(t, str) for t in texts):
        raise MessageError("message, host and user must be strings", "report")
    duration = 0.0
    if "elapsedTime" in rep:
        elapsed = rep["elapsedTime"]
        if not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool):
            raise MessageError("elapsedTime is not a number", "report")
        duration = float(elapsed)
    elif isinstance(rep.get("timeCompleted"), str):
        done = parse_time(rep["timeCompleted"], "report")
        duration = round(done - parse_time(pubtime), 6)
    if not math.isfinite(duration) or abs(duration) > MAX_DURATION:
        raise MessageError(f"duration {duration!r} is out of range", "report")
    extras["report"] = rep
    message, host, user = texts
    return Report(code, host, user, duration, message)


def decode(topic: str, headers: dict | None, body: str,
           exchange: str = "") -> Message:
    """Decode a v03 JSON message (MessageError on malformed input)."""
    obj = _load(body)
    pubtime = to_v2_time(_text(obj, "pubTime", "pubtime"))
    parse_time(pubtime, "pubtime")
    base_url = check_name(_text(obj, "baseUrl", "base_url"), "base_url")
    relpath = check_name(_text(obj, "relPath", "relpath"), "relpath")
    hdrs: dict[str, str] = {}
    extras: dict[str, Any] = {}
    rep = obj.pop("report", None)
    report = _decode_report(rep, pubtime, extras) if rep is not None else None
    ident = obj.pop("identity", None)
    old_ident = obj.pop("integrity", None)
    ident = old_ident if ident is None else ident
    fileop, size, blocks = obj.pop("fileOp", None), obj.pop("size", None), obj.pop("blocks", None)
    obj.pop("topic", None)   # the routing key lives in the envelope
    for key, value in obj.items():
        if isinstance(value, str):
            hdrs[key] = to_v2_time(value) if key in TIME_HEADERS else value
        else:
            extras[key] = value
    for key, value in decode_headers(headers).items():
        hdrs.setdefault(key, value)
    _decode_sum(ident, fileop, relpath, hdrs, extras)
    _decode_parts(size, blocks, hdrs, extras)
    check_headers(hdrs)
    return Message(pubtime=pubtime, base_url=base_url, relpath=relpath,
                   headers=hdrs, topic=topic or "", exchange=exchange,
                   report=report, extras=extras)


# -- encode ----------------------------------------------------------------

def _identity_for(letter: str, value: str) -> dict[str, str]:
    name = METHOD_NAMES.get(letter, letter)
    if letter in DIGEST_LETTERS:
        return {"method": name, "value": _hex_to_b64(value)}
    if letter == "z":
        return {"method": name, "value": METHOD_NAMES.get(value, value)}
    return {"method": name, "value": value}


def _encode_sum(hdrs: dict[str, str], extras: dict[str, Any]) -> tuple[Any, dict]:
    """(identity or None, fileOp dict) for the sum and op headers (popped)."""
    letter, _, value = hdrs.pop("sum").partition(",")
    stashed = extras.get("identity", KeyError)
    fileop = dict(extras["fileOp"]) if isinstance(extras.get("fileOp"), dict) else {}
    identity: Any = None
    if letter in OP_LETTERS and (letter != "L" or "link" in hdrs):
        if letter in "LR" and "link" in hdrs:
            fileop["link"] = hdrs.pop("link")
        if letter in "mr":
            fileop["directory"] = ""
        if letter in "Rr":
            fileop["remove"] = ""
        identity = stashed if isinstance(stashed, dict) else None
    elif letter == "n" and stashed is not KeyError:
        identity = stashed
    else:
        identity = _identity_for(letter, value)
    for header, key in (("oldname", "rename"), ("hlink", "hlink")):
        if header in hdrs:
            fileop[key] = hdrs.pop(header)
    return identity, fileop


def _encode_parts(text: str | None, extras: dict[str, Any], obj: dict[str, Any]) -> None:
    if not text:
        return
    p = Parts.parse(text)
    if p.method == "1":
        obj["size"] = p.bsz
        return
    old = extras.get("blocks")
    blocks = dict(old) if isinstance(old, dict) else {}
    blocks.update(method=BLOCK_NAMES[p.method], size=p.bsz, number=p.bno)
    if "manifest" not in blocks or "count" in blocks:
        blocks["count"] = p.blktot
    if "manifest" not in blocks or "remainder" in blocks:
        blocks["remainder"] = p.brem
    obj["blocks"] = blocks
    obj["size"] = p.length


def _encode_report(msg: Message, report: Report) -> dict[str, Any]:
    old = msg.extras.get("report")
    done = old.get("timeCompleted") if isinstance(old, dict) else None
    if not isinstance(done, str):
        done = to_v3_time(format_time((msg.received or time.time()) + report.duration))
    out: dict[str, Any] = {"code": report.code, "timeCompleted": done,
                           "message": report.message}
    for key in ("host", "user"):
        if getattr(report, key):
            out[key] = getattr(report, key)
    return out


def encode(msg: Message, topic_prefix: str = "v03") -> tuple[str, dict[str, str], str, str]:
    """(topic, {}, JSON body, 'application/json') of ``msg`` in v03."""
    checked_time(check_text(msg.pubtime, "pubtime"))
    check_text(msg.base_url, "base_url")
    check_text(msg.relpath, "relpath")
    hdrs = {k: header_value(k, v) for k, v in msg.headers.items()}
    check_headers(hdrs)
    obj: dict[str, Any] = {"pubTime": to_v3_time(msg.pubtime),
                           "baseUrl": msg.base_url, "relPath": msg.relpath}
    identity, fileop = _encode_sum(hdrs, msg.extras)
    _encode_parts(hdrs.pop("parts", None), msg.extras, obj)
    if msg.report is not None:
        hdrs.pop("message", None)
    for key, value in hdrs.items():
        if key not in RESERVED:
            obj[key] = to_v3_time(value) if key in TIME_HEADERS else value
    for key, value in msg.extras.items():
        if key not in RESERVED and key not in obj:
            obj[key] = value
    if identity is not None:
        obj["identity"] = identity
    if fileop:
        obj["fileOp"] = fileop
    if msg.report is not None:
        obj.pop("content", None)
        obj["report"] = _encode_report(msg, msg.report)
    return topic_for(topic_prefix, msg.relpath), {}, dump(obj), CONTENT_TYPE


def dump(obj: dict[str, Any]) -> str:
    """A JSON message body (MessageError when it cannot be UTF-8 JSON)."""
    try:
        body = json.dumps(obj, ensure_ascii=False)
        body.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise MessageError(f"cannot encode: {exc}", "json") from None
    return body


class V03Format:
    """The v03 entry of the codec registry (sarra.codec.FORMATS)."""
    name = "v03"
    content_type = CONTENT_TYPE
    decode = staticmethod(decode)
    encode = staticmethod(encode)
