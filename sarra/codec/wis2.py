"""WIS2 notification messages (WNM 1.x, GeoJSON): doc/protocol.md §16.

A WNM announces one file by its canonical link; sarra's Message holds the
v02 view of it (sarra/message.py), and what has no v02 form stays in
``extras['wnm']`` so that a WNM passed on (dd_shovel) or re-encoded keeps it:

* ``links``: the ``canonical`` one (or, failing it, ``deletion``: a remove)
  gives the base URL (``scheme://host[:port]/``) and the relpath (its path,
  unquoted), its ``length`` the ``parts`` header; other links are kept;
* ``properties.pubtime`` (RFC 3339) <-> ``pubtime``; ``integrity`` <->
  ``sum``: sha512 <-> ``s``, md5 <-> ``d``, the other WIS2 methods by name
  (``sha256,<hex>``...), base64 <-> hex; none: ``n,<md5(basename)>`` (not
  verifiable), as v03 does;
* ``properties.mtime`` and the other string properties sarra wrote
  (``source``, ``from_cluster``...) <-> headers;
* ``id``, ``geometry``, ``data_id``, ``metadata_id``, ``datetime`` (or
  ``start_datetime``/``end_datetime``), ``cache``... -> ``extras['wnm']``.

``check`` is the schema's rules (WNM 1.1.0) written out, so that a refusal
names the field (``properties.integrity.method``...); the tests check it
against the official JSON schema with jsonschema.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import mimetypes
import posixpath
import re
import uuid
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..checksum import NAMED_METHODS, sum_name
from ..errors import ChecksumError, MessageError
from ..message import Message, parse_time
from .v02 import check_headers, check_name, check_text, header_value, topic_for
from .v03 import dump
from . import WIS2_CONTENT_TYPE

CONTENT_TYPE = WIS2_CONTENT_TYPE
CONFORMS = "http://wis.wmo.int/spec/wnm/1/conf/core"
# WNM integrity method <-> sum method (md5: older WNMs; no letter: by name)
METHODS = {"sha512": "s", "md5": "d", **{name: name for name in NAMED_METHODS}}
SCHEMA_METHODS = ("sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512")
SUMS = {letter: method for method, letter in METHODS.items()}
ID_NAMESPACE = uuid.UUID("8c7f4a52-62c8-4b3e-9a0e-4a1d3f0b7c21")
# properties a WNM defines: never copied from (or into) headers
KNOWN_PROPERTIES = frozenset(("pubtime", "data_id", "metadata_id", "producer", "global-cache",
                              "datetime", "start_datetime", "end_datetime", "cache",
                              "integrity", "content"))
HEADERS_LEFT_OUT = frozenset(("sum", "parts", "link", "oldname", "hlink"))
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.I)
MEDIA_TYPES = {".bufr": "application/bufr", ".bufr4": "application/bufr",
               ".bin": "application/octet-stream", ".grib": "application/grib",
               ".grib2": "application/grib", ".grb2": "application/grib",
               ".grb": "application/grib", ".nc": "application/netcdf",
               ".h5": "application/x-hdf5", ".cap": "application/cap+xml"}




# -- the schema's rules ---------------------------------------------------

def _fail(path: str, why: str) -> MessageError:
    return MessageError(why, path)


def _is_time(value: Any) -> bool:
    return isinstance(value, str) and bool(_RFC3339.fullmatch(value))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check_geometry(geo: Any) -> None:
    if geo is None:
        return
    if not isinstance(geo, dict) or "coordinates" not in geo:
        raise _fail("geometry", "neither null nor an object with type and coordinates")
    kind, coords = geo.get("type"), geo["coordinates"]
    if kind == "Point":
        if not isinstance(coords, list) or len(coords) < 2 or not all(map(_number, coords)):
            raise _fail("geometry.coordinates", "a Point's coordinates are 2 or more numbers")
    elif kind == "Polygon":
        rings_ok = isinstance(coords, list) and all(
            isinstance(ring, list) and len(ring) >= 4 and all(
                isinstance(pos, list) and len(pos) >= 2 and all(map(_number, pos))
                for pos in ring) for ring in coords)
        if not rings_ok:
            raise _fail("geometry.coordinates",
                        "a Polygon's coordinates are rings of 4 or more positions")
    else:
        raise _fail("geometry.type", f"{kind!r} is not Point or Polygon")


def _check_strings(obj: dict[str, Any], where: str, required: tuple[str, ...],
                   optional: tuple[str, ...]) -> None:
    """The keys of ``obj`` that must be strings, and those that may be missing."""
    for key in required:
        if not isinstance(obj.get(key), str):
            raise _fail(f"{where}.{key}", "missing or not a string")
    for key in optional:
        if key in obj and not isinstance(obj[key], str):
            raise _fail(f"{where}.{key}", "not a string")


def _check_properties(props: Any) -> None:
    if not isinstance(props, dict):
        raise _fail("properties", "missing or not an object")
    _check_strings(props, "properties", ("pubtime", "data_id"),
                   ("metadata_id", "producer", "global-cache"))
    if not _is_time(props["pubtime"]):
        raise _fail("properties.pubtime", f"{props['pubtime'][:40]!r} is not an RFC 3339 time")
    for key in ("start_datetime", "end_datetime"):
        if key in props and not _is_time(props[key]):
            raise _fail(f"properties.{key}", "not an RFC 3339 time")
    if "datetime" in props and props["datetime"] is not None and not _is_time(props["datetime"]):
        raise _fail("properties.datetime", "neither null nor an RFC 3339 time")
    interval = "start_datetime" in props and "end_datetime" in props
    if interval == ("datetime" in props):
        raise _fail("properties.datetime", "needs datetime, or start_datetime and "
                    "end_datetime (one or the other)")
    if "cache" in props and not isinstance(props["cache"], bool):
        raise _fail("properties.cache", "not a boolean")
    if "integrity" in props:
        integrity = props["integrity"]
        if not isinstance(integrity, dict):
            raise _fail("properties.integrity", "not an object")
        if integrity.get("method") not in SCHEMA_METHODS:
            raise _fail("properties.integrity.method", f"{integrity.get('method')!r} is not "
                        f"one of {', '.join(SCHEMA_METHODS)}")
        if not isinstance(integrity.get("value"), str):
            raise _fail("properties.integrity.value", "missing or not a string")
    if "content" in props:
        content = props["content"]
        if not isinstance(content, dict):
            raise _fail("properties.content", "not an object")
        if content.get("encoding") not in ("utf-8", "base64", "gzip"):
            raise _fail("properties.content.encoding", "not utf-8, base64 or gzip")
        size = content.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size > 4096:
            raise _fail("properties.content.size", "not an integer of at most 4096")
        if not isinstance(content.get("value"), str) or len(content["value"]) > 4096:
            raise _fail("properties.content.value", "not a string of at most 4096 characters")


def _check_links(links: Any) -> None:
    if not isinstance(links, list) or not links:
        raise _fail("links", "missing, or not an array of at least one link")
    for i, link in enumerate(links):
        where = f"links[{i}]"
        if not isinstance(link, dict):
            raise _fail(where, "not an object")
        _check_strings(link, where, ("rel", "href"), ("type", "hreflang", "title"))
        if "length" in link and (not isinstance(link["length"], int)
                                 or isinstance(link["length"], bool)):
            raise _fail(f"{where}.length", "not an integer")
        if "security" in link and not isinstance(link["security"], dict):
            raise _fail(f"{where}.security", "not an object")


def check(obj: Any) -> None:
    """Raise MessageError naming the first field where ``obj`` is not a WNM 1.x."""
    if not isinstance(obj, dict):
        raise _fail("json", "a WNM is a JSON object")
    if not isinstance(obj.get("id"), str):
        raise _fail("id", "missing or not a string")
    conforms = obj.get("conformsTo")
    if conforms is None and obj.get("version") is None:
        raise _fail("conformsTo", "missing (and no version v04)")
    if conforms is not None and (not isinstance(conforms, list) or CONFORMS not in conforms):
        raise _fail("conformsTo", f"does not contain {CONFORMS}")
    if "version" in obj and obj["version"] != "v04":
        raise _fail("version", f"{obj['version']!r} is not v04")
    if conforms is not None and "version" in obj:
        raise _fail("version", "conformsTo and the deprecated version together")
    if obj.get("type") != "Feature":
        raise _fail("type", f"{obj.get('type')!r} is not Feature")
    if "geometry" not in obj:
        raise _fail("geometry", "missing (null when unknown)")
    _check_geometry(obj["geometry"])
    _check_properties(obj.get("properties"))
    _check_links(obj.get("links"))


# -- times ---------------------------------------------------------------

def to_rfc3339(stamp: str) -> str:
    """v02 'YYYYMMDDHHMMSS.frac' -> 'YYYY-MM-DDTHH:MM:SS.fracZ'."""
    s = stamp.replace("T", "", 1) if stamp[8:9] == "T" else stamp
    head, _, frac = s.partition(".")
    out = f"{head[:4]}-{head[4:6]}-{head[6:8]}T{head[8:10]}:{head[10:12]}:{head[12:14]}"
    return f"{out}.{frac}Z" if frac else f"{out}Z"


def from_rfc3339(text: str, field_name: str) -> str:
    """RFC 3339 -> v02 form in UTC, the fraction's digits kept."""
    m = _RFC3339.fullmatch(text)
    if not m:
        raise MessageError(f"{text[:40]!r} is not an RFC 3339 time", field_name)
    frac = m.group(1) or ""
    whole = text[:19] + ("+00:00" if m.group(2).upper() == "Z" else m.group(2))
    try:
        when = datetime.datetime.fromisoformat(whole).astimezone(datetime.timezone.utc)
    except ValueError:
        raise MessageError(f"{text[:40]!r} is not a valid date", field_name) from None
    return when.strftime("%Y%m%d%H%M%S") + frac


# -- decode ----------------------------------------------------------------

def _integrity_sum(integrity: dict[str, Any], props: dict[str, Any]) -> str:
    """The sum of a WNM integrity; a value that is not base64 (the WNM
    examples' 'A2KNxvks...S8qfSCw==') cannot be checked: ``a`` (arbitrary),
    the integrity kept for a re-encoding."""
    method, value = integrity["method"], integrity["value"]
    try:
        digest = base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        props["integrity"] = integrity
        return f"a,{value}"
    return f"{METHODS[method]},{digest}"


def _link(links: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(the link to the data, whether it announces a deletion)."""
    for rel, deleted in (("canonical", False), ("deletion", True)):
        for link in links:
            if link["rel"] == rel:
                return link, deleted
    rels = ", ".join(sorted({link["rel"] for link in links}))
    raise MessageError(f"no canonical (or deletion) link, only {rels}", "links")


def _split_url(href: str) -> tuple[str, str]:
    parts = urlsplit(href)
    if not parts.scheme or not parts.netloc or parts.path in ("", "/"):
        raise MessageError(f"{href[:120]!r} is not the URL of a file", "links.href")
    relpath = unquote(parts.path).lstrip("/")
    if parts.query:
        relpath += "?" + parts.query
    return f"{parts.scheme}://{parts.netloc}/", relpath


def decode(topic: str, headers: dict | None, body: str, exchange: str = "") -> Message:
    """Decode a WNM (MessageError naming the field on anything the schema refuses)."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"not JSON: {exc}", "json") from None
    check(obj)
    props = dict(obj["properties"])
    link, deleted = _link(obj["links"])
    base_url, relpath = _split_url(link["href"])
    base_url, relpath = check_name(base_url, "links.href"), check_name(relpath, "links.href")
    pubtime = from_rfc3339(props.pop("pubtime"), "properties.pubtime")
    parse_time(pubtime, "properties.pubtime")
    hdrs: dict[str, str] = {}
    for key, value in list(props.items()):
        if key not in KNOWN_PROPERTIES and isinstance(value, str):
            hdrs[key] = props.pop(key)
    integrity = props.pop("integrity", None)
    try:
        if deleted:
            hdrs["sum"] = sum_name("R", relpath)
        elif integrity is not None:
            hdrs["sum"] = _integrity_sum(integrity, props)
        else:
            hdrs["sum"] = sum_name("n", relpath)
    except ChecksumError as exc:
        raise MessageError(str(exc), "links.href") from None
    if "length" in link and not deleted:
        if link["length"] < 0:
            raise MessageError("negative", "links.length")
        hdrs["parts"] = f"1,{link['length']},1,0,0"
    check_headers(hdrs)
    wnm = {"id": obj["id"], "geometry": obj["geometry"], "properties": props, "link": link,
           "links": [other for other in obj["links"] if other is not link]}
    return Message(pubtime=pubtime, base_url=base_url, relpath=relpath, headers=hdrs,
                   topic=topic or "", exchange=exchange, extras={"wnm": wnm})


# -- encode ----------------------------------------------------------------

def data_id_of(template: str, relpath: str) -> str:
    rel = relpath.lstrip("/")
    return template.replace("{relpath}", rel).replace("{basename}", posixpath.basename(rel))


def media_type(relpath: str) -> str:
    ext = posixpath.splitext(relpath.split("?", 1)[0])[1].lower()
    return MEDIA_TYPES.get(ext) or mimetypes.guess_type("x" + ext)[0] \
        or "application/octet-stream"


def _integrity(sum_text: str) -> dict[str, str] | None:
    """The WNM integrity of a sum header (None: no WIS2 method for it)."""
    letter, _, value = sum_text.partition(",")
    method = SUMS.get(letter)
    if method not in SCHEMA_METHODS:
        return None
    try:
        return {"method": method, "value": base64.b64encode(bytes.fromhex(value)).decode()}
    except ValueError:
        raise MessageError(f"'{value[:80]}' is not hex", "sum") from None


def encode(msg: Message, topic_prefix: str = "", topic: str | None = None,
           metadata_id: str | None = None,
           data_id: str = "{relpath}") -> tuple[str, dict[str, str], str, str]:
    """(topic, {}, WNM body, 'application/geo+json'). The topic is ``topic``
    when given (a WIS2 topic: the same for every file), else the prefix
    followed by the relpath's directories (as v02 and v03 do)."""
    if msg.report is not None:
        raise MessageError("a log message has no WIS2 form (report_exchange posts v02)",
                           "report")
    parse_time(check_text(msg.pubtime, "pubtime"), "pubtime")
    check_text(msg.base_url, "base_url")
    check_text(msg.relpath, "relpath")
    hdrs = {k: header_value(k, v) for k, v in msg.headers.items()}
    check_headers(hdrs)
    op = msg.operation
    if op not in ("file", "delete"):
        raise MessageError(f"a {op} has no WIS2 form: not posted", "sum")
    p = msg.parts
    if p is not None and p.method != "1":
        raise MessageError("a file in blocks has no WIS2 form (post it whole)", "parts")
    old = msg.extras.get("wnm") if isinstance(msg.extras.get("wnm"), dict) else {}
    href = msg.base_url + quote(msg.relpath, safe="/:@!$&'()*+,;=?~%")
    old_link = old.get("link") if isinstance(old.get("link"), dict) else {}
    same = old_link.get("href") == href     # the same file at the same place: passed on
    if not same:    # what was said of the data elsewhere is kept, not of that copy
        old = {k: v for k, v in old.items() if k in ("geometry", "properties")}
    props: dict[str, Any] = dict(old.get("properties") or {})
    props["pubtime"] = to_rfc3339(msg.pubtime)
    if "data_id" not in props:
        props["data_id"] = data_id_of(data_id, msg.relpath)
    if metadata_id:
        props["metadata_id"] = metadata_id
    if "datetime" not in props and "start_datetime" not in props:
        mtime = hdrs.get("mtime")
        try:
            parse_time(mtime or "", "mtime")
            props["datetime"] = to_rfc3339(mtime)
        except MessageError:   # none, or not a time: unknown
            props["datetime"] = None
    integrity = _integrity(hdrs["sum"]) if op == "file" and "sum" in hdrs else None
    if integrity:
        props["integrity"] = integrity
    elif not same or op != "file":
        props.pop("integrity", None)
    if not same:
        props.pop("content", None)
    for key, value in hdrs.items():
        if key not in HEADERS_LEFT_OUT and key not in KNOWN_PROPERTIES:
            props[key] = value
    link: dict[str, Any] = dict(old_link) if same else {"href": href}
    link["rel"] = "deletion" if op == "delete" else "canonical"
    if op == "file":
        if not same:
            link["type"] = media_type(msg.relpath)
        if p is not None:
            link["length"] = p.length
    else:
        link.pop("type", None)
        link.pop("length", None)
    wnm_id = old.get("id") if same and isinstance(old.get("id"), str) else str(uuid.uuid5(ID_NAMESPACE, f"{href} {msg.pubtime} {hdrs.get('sum', '')}"))
    obj = {"id": wnm_id, "conformsTo": [CONFORMS], "type": "Feature",
           "geometry": old.get("geometry", msg.extras.get("geometry")),
           "properties": props, "links": [link] + list(old.get("links") or [])}
    check(obj)
    body = dump(obj)
    if topic:
        return topic, {}, body, CONTENT_TYPE
    return topic_for(topic_prefix, msg.relpath), {}, body, CONTENT_TYPE


class Wis2Format:
    """The wis2 entry of the codec registry (sarra.codec.FORMATS)."""
    name = "wis2"
    content_type = CONTENT_TYPE
    decode = staticmethod(decode)
    encode = staticmethod(encode)
