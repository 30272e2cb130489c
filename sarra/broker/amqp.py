"""AMQP 0-9-1 driver (RabbitMQ) on pika: the only module that imports pika.

Schemes: amqp, amqps (TLS: the certificate and host name verified as the
configuration's sarra/tls.py:TlsPolicy says). Capabilities: topic exchanges, durable queues with
x-expires / x-message-ttl, consume with a prefetch window and batched acks
(``multiple``), pipelined publisher confirms (a window of unconfirmed
messages settled by delivery tag).
Requires: pika >= 1.3.

pika's BlockingChannel only offers one-at-a-time confirms, so confirm mode is
switched on through the channel's underlying asynchronous implementation
(``BlockingChannel._impl``) with our own ack/nack callback. A publish is
encoded here (``publish_frames``: the bytes pika would write) and held with
the others until the next turn of the I/O loop, then written as one piece
(``_Output``). What the broker sends is read here too (``_Input``, in place
of pika's frame reading): the deliveries of the consuming channel are
decoded from the bytes as received into ``Delivery`` objects (what pika's
decoder would make of them: tests/unit/test_amqp_deliver.py), and every
other frame is handed to pika as it would have read it, in order. pika
keeps the connection (its opening, heartbeats, close), the channels, the
declarations, confirms and returns; with a pika that lacks what ``_Output``
or ``_Input`` replace, it does its own writing or reading. Everything runs
in the caller's thread: confirms and deliveries are dispatched while we
process I/O in ``get``, ``flush`` and ``keepalive``.
"""
import contextlib
import logging
import os
import ssl
import struct
import time
from collections import OrderedDict
from urllib.parse import unquote, urlsplit
from typing import Any, Iterator

import pika
import pika.data
import pika.frame
import pika.exceptions as px

from ..config.paths import config_dir
from ..tls import TlsPolicy, untrusted
from ..errors import BrokerError, ConfigError
from .base import Delivery, Outgoing, QueueLocked

log = logging.getLogger(__name__)

WINDOW = 4096           # unconfirmed publishes before we wait for confirms
PUMP_EVERY = 128        # publishes between two turns of the I/O loop
RECOVERABLE_CODES = {320, 501, 504, 505, 541}   # forced close, frame errors, internal error


_PLAIN = ("content_encoding", "priority", "correlation_id", "reply_to", "message_id",
          "timestamp", "type", "user_id", "app_id", "cluster_id")    # never set by us


class _Properties(pika.BasicProperties):
    """The properties of what we publish, encoded in one pass: a content
    type, a table of text headers, a delivery mode, an expiration give the
    same bytes as pika's encoder (value by value, several calls each),
    which is kept for anything else (it raises what does not encode)."""

    def encode(self):
        if self.headers is None or any(getattr(self, a) is not None for a in _PLAIN):
            return super().encode()
        P = pika.BasicProperties
        flags, out = P.FLAG_HEADERS, bytearray()
        try:
            if self.content_type is not None:
                if type(self.content_type) is not str:
                    return super().encode()
                ct = self.content_type.encode()
                if len(ct) > 255:
                    return super().encode()
                flags |= P.FLAG_CONTENT_TYPE
                out += bytes((len(ct),)) + ct
            table = bytearray()
            for key, value in self.headers.items():
                if type(key) is not str or type(value) is not str:
                    return super().encode()
                k, v = key.encode(), value.encode()
                if len(k) > 255:
                    return super().encode()
                table += bytes((len(k),)) + k + b"S" + len(v).to_bytes(4, "big") + v
        except UnicodeEncodeError:
            return super().encode()
        out += len(table).to_bytes(4, "big") + table
        if self.delivery_mode is not None:
            flags |= P.FLAG_DELIVERY_MODE
            out += bytes((self.delivery_mode,))
        if self.expiration is not None:
            if type(self.expiration) is not str or len(self.expiration.encode()) > 255:
                return super().encode()
            flags |= P.FLAG_EXPIRATION
            e = self.expiration.encode()
            out += bytes((len(e),)) + e
        return [flags.to_bytes(2, "big"), bytes(out)]


def _masked(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{hostpart}"


def credentials_file() -> str:
    """Where sarra reads passwords from (sarra/config/credentials.py)."""
    return os.path.join(config_dir(), "credentials.conf")


def _refused(url: str, exc: Exception) -> str:
    """A refused login: which account, which broker, which credentials file
    (never the password)."""
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else "guest (none given)"
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError:
        port = "?"
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    path = credentials_file()
    where = f"{path} was read" if os.path.exists(path) else f"{path} does not exist"
    return (f"login refused for user '{user}' on broker {parts.scheme}://{parts.hostname}:"
            f"{port} (vhost {vhost}): the password is wrong or the user is unknown there "
            f"({where}; its line for {parts.scheme}://{user}@{parts.hostname}/ holds the "
            f"password): {exc!r}")


def _convert(exc: Exception, url: str | None = None,
             tls: TlsPolicy | None = None) -> BrokerError:
    """pika exception -> BrokerError with the recoverable flag set."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # the same certificate next time: a refusal, not an outage
        return BrokerError(untrusted(url or "amqps://?/", exc, tls), recoverable=False)
    if isinstance(exc, (px.ProbableAuthenticationError, px.ProbableAccessDeniedError)):
        text = _refused(url, exc) if url else f"login refused: {exc!r}"
        return BrokerError(text, recoverable=False)
    if isinstance(exc, (px.ChannelClosedByBroker, px.ConnectionClosedByBroker)):
        code = exc.reply_code
        text = f"broker closed the {'channel' if isinstance(exc, px.ChannelClosedByBroker) else 'connection'}: {code} {exc.reply_text}"
        # a stream or quorum queue with no replica on this node (a cluster
        # after a node was lost): another node, or this one later, may serve it
        elsewhere = code == 406 and "replica on the local node" in (exc.reply_text or "")
        return BrokerError(text, recoverable=code in RECOVERABLE_CODES or elsewhere)
    if isinstance(exc, (px.AMQPConnectionError, px.ConnectionWrongStateError,
                        px.ChannelWrongStateError, px.StreamLostError, OSError)):
        return BrokerError(f"connection lost: {exc!r}", recoverable=True)
    if isinstance(exc, px.AMQPChannelError):
        return BrokerError(f"channel error: {exc!r}", recoverable=False)
    return BrokerError(f"AMQP error: {exc!r}", recoverable=True)


class _Output:
    """What pika writes to its transport, which sends each piece it is given
    with a system call of its own. Published messages (their frames as
    bytes, ``publish_frames``) are held and handed over as one piece before
    each turn of the I/O loop (``release``): one send() per turn instead of
    one per message. Anything pika writes itself meanwhile (a declaration,
    an ack, a heartbeat, a close) releases what is held first, so the order
    on the wire is kept; its frames are joined into one piece too."""

    def __init__(self, impl):
        self._impl = impl
        self._emit = impl._adapter_emit_data
        self._held: list[bytes] = []

    @classmethod
    def install(cls, impl) -> "_Output | None":
        if not hasattr(impl, "_adapter_emit_data") or \
                not hasattr(impl, "_output_marshaled_frames"):
            return None     # another pika: its own way, one piece per frame
        out = cls(impl)
        impl._output_marshaled_frames = out
        return out

    def __call__(self, frames) -> None:
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        impl = self._impl
        impl.bytes_sent += len(data)
        impl.frames_sent += len(frames)
        if self._held:
            self.release()
        self._emit(data)

    def hold(self, data: bytes) -> None:
        """A message's frames, written at the next ``release``."""
        self._held.append(data)
        self._impl.bytes_sent += len(data)

    def release(self) -> None:
        """Hand what is held to the transport, as one piece (dropped when the
        connection is closed: unconfirmed, its batch is done again)."""
        if not self._held:
            return
        held, self._held = self._held, []
        if not self._impl.is_closed:
            self._emit(b"".join(held))


_FRAME = struct.Struct(">BHI")          # type, channel, payload size
_FRAME_END = b"\xce"
_PUBLISH = struct.pack(">IH", 0x003C0028, 0)     # Basic.Publish (60, 40), ticket 0
_HEADER = struct.Struct(">HxxQH")       # class 60, weight 0, body size, property flags
_CONTENT_TYPE, _HEADERS, _DELIVERY_MODE, _EXPIRATION = 1 << 15, 1 << 13, 1 << 12, 1 << 8
_LONG = struct.Struct(">I")
_KEYS: dict[str, bytes] = {}            # header name -> its short string


def _short(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise px.ShortStringTooLong(raw)
    return bytes((len(raw),)) + raw


def _table(headers: dict) -> bytes:
    """An AMQP field table as pika writes it (strings as long strings 'S');
    anything but a string is left to pika's own encoder."""
    pieces = []
    keys = _KEYS
    for key, value in headers.items():
        name = keys.get(key)
        if name is None:
            name = _short(key)
            if len(keys) < 256:
                keys[key] = name
        if value.__class__ is str:
            raw = value.encode("utf-8")
            pieces.append(b"%sS%s%s" % (name, _LONG.pack(len(raw)), raw))
        else:
            more: list[bytes] = []
            pika.data.encode_value(more, value)
            pieces.append(name + b"".join(more))
    data = b"".join(pieces)
    return _LONG.pack(len(data)) + data


def publish_frames(channel: int, exchange: str, routing_key: str, body: bytes | str,
                   content_type: str | None, headers: dict | None, delivery_mode: int | None,
                   expiration: str | None, mandatory: bool, body_max: int) -> bytes:
    """The frames of a basic.publish (method, content header with the
    properties sarra sets, body frames of at most ``body_max`` bytes),
    byte for byte what pika's ``Channel.basic_publish`` writes for the same
    message (tests/unit/test_amqp_wire.py), without its per-message objects."""
    if body.__class__ is not bytes:
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    method = b"%s%s%s%c" % (_PUBLISH, _short(exchange), _short(routing_key),
                            1 if mandatory else 0)
    flags = 0
    props = []
    if content_type is not None:
        flags |= _CONTENT_TYPE
        props.append(_short(content_type))
    if headers is not None:
        flags |= _HEADERS
        props.append(_table(headers))
    if delivery_mode is not None:
        flags |= _DELIVERY_MODE
        props.append(bytes((delivery_mode,)))
    if expiration is not None:
        flags |= _EXPIRATION
        props.append(_short(expiration))
    size = len(body)
    header = _HEADER.pack(60, size, flags) + b"".join(props)
    out = [_FRAME.pack(1, channel, len(method)), method, _FRAME_END,
           _FRAME.pack(2, channel, len(header)), header, _FRAME_END]
    if size <= body_max:
        if size:
            out += (_FRAME.pack(3, channel, size), body, _FRAME_END)
    else:
        for start in range(0, size, body_max):
            chunk = body[start:start + body_max]
            out += (_FRAME.pack(3, channel, len(chunk)), chunk, _FRAME_END)
    return b"".join(out)


_DELIVER = 0x003C003C                   # Basic.Deliver (60, 60)
_METHOD_ID = struct.Struct(">I")
_DELIVER_TAG = struct.Struct(">QB")     # delivery tag, the redelivered bit
_CONTENT = struct.Struct(">HHQH")       # class, weight, body size, property flags
_WORD = struct.Struct(">H")
_CONTENT_ENCODING = 1 << 14


class _Other(Exception):
    """A header value that is not a long string: pika's decoder reads the table."""


def _text(raw: bytes) -> "str | bytes":
    """A string as pika decodes it: UTF-8, else the bytes as they came."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _headers(data: bytes, p: int, end: int) -> tuple[dict, int]:
    """The field table at ``p`` (its end at most ``end``): what pika's
    ``decode_table`` returns, read here when every value is a long string
    ('S', UTF-8 as every key); any other table is read by pika's own decoder."""
    size = _LONG.unpack_from(data, p)[0]
    stop = p + 4 + size
    if stop > end:
        raise px.InvalidFrameError("field table beyond its frame")
    out: dict = {}
    q = p + 4
    try:
        while q < stop:
            n = data[q]
            key = data[q + 1:q + 1 + n].decode()
            q += 1 + n
            if data[q] != 83:               # b"S"
                raise _Other
            n = _LONG.unpack_from(data, q + 1)[0]
            q += 5
            out[key] = data[q:q + n].decode()
            q += n
    except (_Other, UnicodeDecodeError):
        out, q = pika.data.decode_table(data, p)
    if q != stop:
        raise px.InvalidFrameError("field table entries beyond its size")
    return out, q


class _Delivering:
    """A delivery of ours whose content is still to come."""
    __slots__ = ("exchange", "topic", "tag", "redelivered", "content_type", "headers",
                 "size", "left", "pieces")

    def __init__(self):
        self.content_type = self.headers = None
        self.pieces: list[bytes] = []


class _Input:
    """What pika's connection reads, parsed here (in place of its
    ``_on_data_available``, which copies its whole buffer once per frame and
    makes objects of each frame): the deliveries of the consuming channel
    (Basic.Deliver, its content header and body frames) are decoded here and
    handed to ``delivered`` (exchange, routing key, headers, body, content
    type, delivery tag, redelivered); every other frame goes to pika's
    ``_process_frame`` as its own loop would give it, in the order of the
    wire (heartbeats, confirms, closes, cancels, other channels, the
    consuming channel's other methods). Bytes that do not make a whole frame
    wait, as pieces, until one is complete (no copy per read). A bad frame
    (its end octet, beyond frame_max, an unknown type, a malformed
    delivery) raises pika's InvalidFrameError (a body longer than its
    header said: BodyTooLongError, as pika's), on which the transport aborts
    the connection, as on pika's own frame errors: the driver's next call
    raises a recoverable BrokerError. Nothing is read after an error."""

    def __init__(self, impl, delivered, wake):
        self._impl = impl
        self._process = impl._process_frame
        self._decode = pika.frame.decode_frame
        self._delivered = delivered
        self._wake = wake               # ends the wait of process_data_events
        self._pieces: list[bytes] = []  # the start of a frame, not complete yet
        self._have = 0
        self._need = 0
        frame_max = impl.params.frame_max
        self._payload_max = frame_max - 8 if frame_max else 1 << 32
        self._channel = None            # the consuming channel (pika's Channel)
        self._number = -1
        self._partial: "_Delivering | None" = None   # a delivery of ours, its content to come
        self._broken: Exception | None = None

    @classmethod
    def install(cls, impl, delivered, wake) -> "_Input | None":
        need = ("_on_data_available", "_process_frame", "_frame_buffer", "bytes_received",
                "frames_received", "params")
        if not all(hasattr(impl, a) for a in need) or \
                not callable(getattr(pika.frame, "decode_frame", None)) or \
                not isinstance(impl._frame_buffer, (bytes, bytearray)):
            return None     # another pika: its own reading
        reader = cls(impl, delivered, wake)
        if impl._frame_buffer:          # what pika has read of a frame so far
            reader._pieces = [bytes(impl._frame_buffer)]
            reader._have = reader._need = len(impl._frame_buffer)
            impl._frame_buffer = b""
        impl._on_data_available = reader
        return reader

    def consume(self, channel) -> None:
        """``channel`` (pika's Channel, or None) is the consuming one: its
        deliveries to a consumer it has and has not cancelled are ours."""
        if channel is not None and not (hasattr(channel, "_consumers") and
                                        hasattr(channel, "_cancelled")):
            channel = None              # another pika: its deliveries go to it
        self._channel = channel
        self._number = -1 if channel is None else channel.channel_number
        self._partial = None

    def __call__(self, data: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        if data.__class__ is not bytes:
            data = bytes(data)
        if self._pieces:
            self._pieces.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._pieces)
            self._pieces = []
        try:
            self._frames(data)
        except Exception as exc:
            self._broken = exc if isinstance(exc, px.InvalidFrameError) else \
                px.InvalidFrameError(f"after {exc!r}")
            self._pieces = []
            raise

    def _frames(self, data: bytes) -> None:
        impl, n, pos, woke = self._impl, len(data), 0, False
        unpack = _FRAME.unpack_from
        try:
            while n - pos >= 7:
                kind, number, size = unpack(data, pos)
                end = pos + 7 + size            # the frame-end octet
                if kind not in (1, 2, 3, 8):
                    if data[pos:pos + 4] == b"AMQP":    # a protocol header: pika's
                        used, frame = self._decode(data[pos:])
                        if not used:
                            break
                        pos += used
                        impl.bytes_received += used
                        self._process(frame)
                        continue
                    raise px.InvalidFrameError(f"Unknown frame type: {kind}")
                if size > self._payload_max:
                    raise px.InvalidFrameError(f"frame of {size + 8} bytes, beyond frame_max")
                if end >= n:
                    break
                if data[end] != 0xCE:
                    raise px.InvalidFrameError("Invalid FRAME_END marker")
                if number == self._number and self._mine(kind, data, pos + 7, end):
                    impl.bytes_received += size + 8
                    impl.frames_received += 1
                    pos = end + 1
                    if self._partial is None:
                        woke = True
                    continue
                used, frame = self._decode(data[pos:end + 1])
                pos = end + 1
                impl.bytes_received += used
                self._process(frame)
        finally:
            if woke:
                self._wake(-1)
        if pos < n:
            rest = data[pos:] if pos else data
            self._pieces = [rest]
            self._have = len(rest)
            # (a frame's header, to be checked; a whole header: the loop checked
            # it; a protocol header is 8 bytes)
            self._need = 7 if len(rest) < 7 else 8 if rest[:4] == b"AMQP" else \
                _FRAME.unpack_from(rest)[2] + 8

    def _mine(self, kind: int, data: bytes, p: int, end: int) -> bool:
        """Read a frame of the consuming channel (its payload from ``p`` to
        ``end``) if it is part of one of our deliveries; False: pika's."""
        d = self._partial
        if kind == 3:                       # body
            if d is None or d.headers is None:
                return False
            if d.left == end - p and not d.pieces:
                body = data[p:end]          # the whole body in one frame
            else:
                d.pieces.append(data[p:end])
                d.left -= end - p
                if d.left > 0:
                    return True
                if d.left < 0:
                    raise px.BodyTooLongError(d.size - d.left, d.size)
                body = b"".join(d.pieces)
        elif kind == 2:                     # content header
            if d is None:
                return False
            if d.headers is not None:
                raise px.UnexpectedFrameError("a second content header")
            class_id, _weight, size, flags = _CONTENT.unpack_from(data, p)
            if class_id != 60:
                raise px.InvalidFrameError(f"content header of class {class_id}")
            q = p + 14
            word = flags
            while word & 1:                 # more flag words: nothing we read
                word = _WORD.unpack_from(data, q)[0]
                q += 2
            headers = None
            if flags & _CONTENT_TYPE:
                d.content_type = _text(data[q + 1:q + 1 + data[q]])
                q += 1 + data[q]
            if flags & _CONTENT_ENCODING:
                q += 1 + data[q]
            if flags & _HEADERS:
                headers, q = _headers(data, q, end)
            if q > end:
                raise px.InvalidFrameError("content header beyond its frame")
            # (the properties after the headers are not read: nothing of
            # sarra's is there, and the frame's size bounds them)
            d.headers, d.size, d.left = headers or {}, size, size
            if size:
                return True
            body = b""
        elif kind == 1:                     # a method
            self._partial = None            # (a content cut short: pika drops it too)
            if end - p < 4 or _METHOD_ID.unpack_from(data, p)[0] != _DELIVER:
                return False
            q = p + 4
            tag = _text(data[q + 1:q + 1 + data[q]])
            channel = self._channel
            if tag not in channel._consumers or tag in channel._cancelled or \
                    not channel.is_open:
                return False                # pika's to reject or drop
            q += 1 + data[q]
            d = self._partial = _Delivering()
            d.tag, bits = _DELIVER_TAG.unpack_from(data, q)
            d.redelivered = bits & 1 == 1
            q += 9
            exchange = data[q + 1:q + 1 + data[q]]
            q += 1 + data[q]
            topic = data[q + 1:q + 1 + data[q]]
            if q + 1 + data[q] > end:
                raise px.InvalidFrameError("basic.deliver beyond its frame")
            try:
                d.exchange, d.topic = exchange.decode(), topic.decode()
            except UnicodeDecodeError:
                d.exchange, d.topic = _text(exchange), _text(topic)
            return True
        else:
            return False
        # a whole delivery
        self._partial = None
        if self._channel is not None and self._channel.is_open:
            self._delivered(d.exchange, d.topic, d.headers, body, d.content_type, d.tag,
                            d.redelivered)
        return True


def _parameters(url: str, heartbeat: float, connection_name: str,
                tls: TlsPolicy) -> "pika.URLParameters":
    params = pika.URLParameters(url)
    params.heartbeat = int(heartbeat) or None
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.socket_timeout = 10
    params.client_properties = {"connection_name": connection_name}
    if url[:6].lower() == "amqps:":      # (pika's own default: the system's CAs)
        params.ssl_options = pika.SSLOptions(tls.context(url), params.host)
    return params


QUEUE_TYPES = ("classic", "quorum", "stream")


def queue_arguments(durable: bool, expire_s: float, message_ttl_s: float,
                    queue_type: str = "classic") -> dict[str, Any]:
    """The x-arguments of a queue declaration, refusing (ConfigError) what
    the queue type does not support rather than letting the broker close the
    channel (RabbitMQ: a quorum queue or a stream is durable; a stream has
    neither x-expires nor x-message-ttl: its retention is x-max-age)."""
    if queue_type not in QUEUE_TYPES:
        raise ConfigError(f"queue_type {queue_type!r}: one of {', '.join(QUEUE_TYPES)}",
                          option="queue_type")
    args: dict[str, Any] = {}
    if queue_type != "classic":
        if not durable:
            raise ConfigError(f"a {queue_type} queue is always durable: remove "
                              f"'durable off' or use queue_type classic", option="durable")
        args["x-queue-type"] = queue_type
    if queue_type == "stream" and (expire_s or message_ttl_s):
        raise ConfigError("a stream keeps messages for its retention (x-max-age, set by "
                          "the switch) and does not expire: set expire 0 and message_ttl 0, "
                          "or use queue_type quorum", option="expire" if expire_s else "message_ttl")
    if expire_s:
        args["x-expires"] = int(expire_s * 1000)
    if message_ttl_s:
        args["x-message-ttl"] = int(message_ttl_s * 1000)
    return args


class AmqpBroker:
    def __init__(self, url: str, heartbeat: float = 120, connection_name: str = "sarra",
                 tls: TlsPolicy | None = None):
        self.name = _masked(url)
        self._tls = tls or TlsPolicy()
        parts = urlsplit(url)
        # a user without a password is a configuration error, told at connect
        # (when the flow runs: after every other check of the configuration)
        self._params = None if parts.username and parts.password is None else \
            _parameters(url, heartbeat, connection_name, self._tls)
        self._conn: pika.BlockingConnection | None = None
        self._out: _Output | None = None
        self._in: _Input | None = None
        self._body_max = 131072 - 8
        self._ch = None           # declares and bindings (a refusal closes only this one)
        self._cch = None          # consuming
        self._pch = None          # publishing, in confirm mode
        self._epoch = 0
        self._inbox: list[Delivery] = []
        self._unacked: set[int] = set()
        self._consuming: tuple[str, int] | None = None
        self._pending: "OrderedDict[int, Outgoing]" = OrderedDict()
        self._next_tag = 0
        self._nacked: list[Outgoing] = []
        self._returned: list[tuple[str, str]] = []
        self.published = 0
        self._settling = False    # _settle waits: a confirm ends the I/O turn

    # -- connection ------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except BrokerError:
            raise
        except Exception as exc:  # pika raises many unrelated types
            err = _convert(exc, self.name, self._tls)
            if err.recoverable:
                self._drop()
            elif isinstance(exc, px.ChannelClosedByBroker):
                self._ch = self._ch if self._ch and self._ch.is_open else None
                if self._pch is not None and not self._pch.is_open:
                    self._publish_channel_lost()
            raise BrokerError(f"{self.name}: {what}: {err}", err.recoverable) from exc

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            if self._conn and self._conn.is_open:
                self._conn.close()
        self._conn = self._ch = self._cch = self._pch = self._out = self._in = None
        self._inbox.clear()
        self._unacked.clear()

    def connect(self) -> None:
        """(Re)connect and resume consuming. Messages left unconfirmed by a
        lost connection are forgotten: the flow redoes their whole batch."""
        if self._params is None:
            raise ConfigError(f"no password for {self.name}: add the URL with its password "
                              f"to credentials.conf")
        self._drop()
        self._pending.clear()
        self._nacked.clear()
        with self._guard("connect"):
            self._conn = pika.BlockingConnection(self._params)
            self._out = _Output.install(self._conn._impl)
            wake = getattr(self._conn, "_request_channel_dispatch", None)
            self._in = None if wake is None else \
                _Input.install(self._conn._impl, self._delivered, wake)
            # a body frame's payload at most: the negotiated frame_max, less
            # a frame's header and end (pika's own figure when it has one)
            self._body_max = getattr(self._conn._impl, "_body_max_length", None) or \
                self._conn._impl.params.frame_max - 8
            self._epoch += 1
            self._ch = self._conn.channel()
        log.debug("connected to %s", self.name)
        if self._consuming:
            self.consume(*self._consuming)

    def close(self) -> None:
        self._drop()

    def _pump(self, time_limit: float) -> None:
        """A turn of pika's I/O loop, what publishes hold handed over first."""
        if self._out is not None:
            self._out.release()
        self._conn.process_data_events(time_limit=time_limit)

    def _channel(self):
        if self._conn is None or not self._conn.is_open:
            raise BrokerError(f"{self.name}: not connected", recoverable=True)
        if self._ch is None or not self._ch.is_open:
            with self._guard("open channel"):
                self._ch = self._conn.channel()
        return self._ch

    # -- declarations ----------------------------------------------------
    def declare_exchange(self, name: str, passive: bool = False) -> None:
        ch = self._channel()
        with self._guard(f"declare exchange {name}"):
            ch.exchange_declare(name, exchange_type="topic", passive=passive,
                                durable=True, auto_delete=False)

    def declare_queue(self, name: str, durable: bool = True, expire_s: float = 0,
                      message_ttl_s: float = 0, queue_type: str = "classic",
                      exclusive: bool = False) -> int:
        """Declare a queue of ``queue_type``: classic, quorum (replicated over
        the cluster's nodes) or stream (an append-only log read from an
        offset; its retention is the switch's business: dd_audit).
        ``exclusive``: this connection's only, deleted when it closes (one
        another connection holds raises QueueLocked: sarra/broker/lease.py)."""
        args = queue_arguments(durable, expire_s, message_ttl_s, queue_type)
        ch = self._channel()
        try:
            with self._guard(f"declare queue {name}"):
                ok = ch.queue_declare(name, durable=durable, exclusive=exclusive,
                                      auto_delete=False, arguments=args or None)
        except BrokerError as exc:
            cause = exc.__cause__
            if isinstance(cause, px.ChannelClosedByBroker) and cause.reply_code == 405:
                raise QueueLocked(str(exc)) from cause
            raise
        return ok.method.message_count

    def bind(self, queue: str, exchange: str, key: str) -> None:
        ch = self._channel()
        with self._guard(f"bind {queue} to {exchange} with {key}"):
            ch.queue_bind(queue, exchange, routing_key=key)

    def delete_queue(self, name: str) -> None:
        ch = self._channel()
        with self._guard(f"delete queue {name}"):
            ch.queue_delete(name)

    # -- consuming -------------------------------------------------------
    def consume(self, queue: str, prefetch: int, offset: Any = None) -> None:
        """Consume ``queue`` on a channel of its own, so that a refused
        declaration (which closes its channel) never stops the consumer.
        ``offset``: where to start reading a stream ('first', 'last', 'next',
        an offset number or a datetime); None for other queues."""
        wanted = (queue, prefetch, offset)
        if self._consuming == wanted and self._cch is not None and self._cch.is_open:
            return  # already consuming (``connect`` resumed it)
        if self._conn is None or not self._conn.is_open:
            raise BrokerError(f"{self.name}: not connected", recoverable=True)
        if self._cch is not None and self._cch.is_open:
            with contextlib.suppress(Exception):   # consuming again, from elsewhere
                self._cch.close()
        self._forget_deliveries()
        args = None if offset is None else {"x-stream-offset": offset}
        with self._guard(f"consume {queue}"):
            self._cch = self._conn.channel()
            if self._in is not None:     # its deliveries read by _Input
                self._in.consume(self._cch._impl)
            self._cch.basic_qos(prefetch_count=prefetch)
            self._cch.basic_consume(queue, self._on_message, auto_ack=False,
                                    arguments=args)
        self._consuming = wanted

    def _forget_deliveries(self) -> None:
        """Deliveries of a closed channel come again: drop their tags."""
        self._epoch += 1
        self._inbox.clear()
        self._unacked.clear()

    def _consumer_channel(self):
        """The consuming channel, consuming again if the broker closed it."""
        if self._cch is None or not self._cch.is_open:
            if self._consuming is None:
                raise BrokerError(f"{self.name}: not consuming")
            log.warning("%s: consumer channel was closed; consuming again", self.name)
            self.consume(*self._consuming)
        return self._cch

    def _on_message(self, _ch, method, props, body: bytes) -> None:
        """A delivery as pika gives it (when _Input is not installed)."""
        self._unacked.add(method.delivery_tag)
        self._inbox.append(Delivery(method.exchange, method.routing_key,
                                    props.headers or {}, body, props.content_type,
                                    (self._epoch, method.delivery_tag), method.redelivered))

    def _delivered(self, exchange, topic, headers, body, content_type, tag,
                   redelivered) -> None:
        """A delivery as _Input reads it (headers already ``{}`` if none)."""
        self._unacked.add(tag)
        self._inbox.append(Delivery(exchange, topic, headers, body, content_type,
                                    (self._epoch, tag), redelivered))

    def get(self, timeout: float) -> list[Delivery]:
        if not self._inbox:
            if self._conn is None:
                raise BrokerError(f"{self.name}: not connected", recoverable=True)
            if self._consuming is not None:
                self._consumer_channel()
            with self._guard("receive"):
                self._pump(timeout)
        out, self._inbox = self._inbox, []
        return out

    def ack(self, tags: list[Any]) -> None:
        """Acknowledge; contiguous runs go as one ``multiple`` ack."""
        mine = sorted(t for e, t in tags if e == self._epoch and t in self._unacked)
        if not mine:
            return
        ch = self._consumer_channel()
        with self._guard("ack"):
            top = mine[-1]
            if all(t in mine for t in self._unacked if t <= top):
                ch.basic_ack(top, multiple=True)
            else:
                for t in mine:
                    ch.basic_ack(t)
        self._unacked.difference_update(mine)

    # -- publishing ------------------------------------------------------
    def _publish_channel(self):
        if self._pch is not None and self._pch.is_open:
            return self._pch
        if self._conn is None or not self._conn.is_open:
            raise BrokerError(f"{self.name}: not connected", recoverable=True)
        with self._guard("open publish channel"):
            pch = self._conn.channel()
            pch._impl.add_on_close_callback(self._on_publish_channel_closed)
            pch._impl.add_on_return_callback(self._on_return)
            ready: list[bool] = []
            pch._impl.confirm_delivery(ack_nack_callback=self._on_confirm,
                                       callback=lambda _frame: ready.append(True))
            while not ready:
                self._pump(0.002)
        self._pch, self._next_tag = pch, 0
        return pch

    def _on_return(self, _channel, method, _props, _body) -> None:
        """A mandatory message no queue took (basic.return, which the broker
        sends before the message's confirm)."""
        self._returned.append((method.exchange, method.routing_key))

    def returned(self) -> list[tuple[str, str]]:
        """(exchange, topic) of the mandatory messages no queue took, since
        the last call (those confirmed by ``flush`` so far)."""
        out, self._returned = self._returned, []
        return out

    def _on_publish_channel_closed(self, _channel, reason: Exception) -> None:
        self._closed_reason = reason

    def _publish_channel_lost(self) -> int:
        """Forget a closed publish channel and what it left unconfirmed (the
        caller reports it: the flow redoes the batch). Returns how many."""
        lost = len(self._pending)
        self._pending.clear()
        self._pch = None
        return lost

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tag, nack = method.delivery_tag, isinstance(method, pika.spec.Basic.Nack)
        pending = self._pending     # in the order of their tags
        if method.multiple:         # every one up to tag: from the front
            while pending and next(iter(pending)) <= tag:
                msg = pending.popitem(last=False)[1]
                if nack:
                    self._nacked.append(msg)
        elif tag in pending:
            msg = pending.pop(tag)
            if nack:
                self._nacked.append(msg)
        if self._settling and self._conn is not None:
            # the wait of _settle's turn ends now, not when its time is up
            # (a confirm is no event the blocking adapter counts)
            wake = getattr(self._conn, "_request_channel_dispatch", None)
            if wake is not None:
                wake(-1)

    def publish(self, msg: Outgoing) -> None:
        """Send without waiting; ``flush`` settles the confirms."""
        pch = self._publish_channel()
        expiration = str(msg.expiration_ms) if msg.expiration_ms else None
        try:
            if len(self._pending) >= WINDOW:
                self._settle(lambda: len(self._pending) < WINDOW // 2, 60.0)
            out, impl = self._out, pch._impl
            if out is not None:
                # the frames as bytes, held until the next turn of the I/O
                # loop (every PUMP_EVERY messages), written with the others
                if not impl.is_open:
                    raise px.ChannelWrongStateError("Channel is closed.")
                out.hold(publish_frames(impl.channel_number, msg.exchange, msg.topic,
                                        msg.body, msg.content_type, msg.headers,
                                        2 if msg.persistent else 1, expiration,
                                        msg.mandatory, self._body_max))
            else:
                impl.basic_publish(msg.exchange, msg.topic, msg.body,
                                   _Properties(content_type=msg.content_type,
                                               headers=msg.headers,
                                               delivery_mode=2 if msg.persistent else 1,
                                               expiration=expiration),
                                   mandatory=msg.mandatory)
            self._next_tag += 1
            self._pending[self._next_tag] = msg
            self.published += 1
            if self._next_tag % PUMP_EVERY == 0:
                self._pump(0)
        except BrokerError:
            raise
        except Exception as exc:    # as _guard does, without a context per message
            with self._guard(f"publish to {msg.exchange}"):
                raise exc

    def _settle(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.name}: no publisher confirm within {timeout:.0f}s",
                                  recoverable=True)
            # a turn ends when confirms come (_on_confirm wakes it), or after
            # 2 ms (where the adapter cannot be woken)
            self._settling = True
            try:
                self._pump(0.002)
            finally:
                self._settling = False
            if self._pch is None or not self._pch.is_open:
                reason = getattr(self, "_closed_reason", None)
                err = _convert(reason) if reason else BrokerError("publish channel closed")
                lost = self._publish_channel_lost()
                raise BrokerError(f"{self.name}: {err} ({lost} messages unconfirmed)",
                                  err.recoverable)

    def flush(self, timeout: float = 60.0, leave: int = 0) -> None:
        """Wait until every publish so far is confirmed, but for the last
        ``leave`` (those may still be on their way); raise if any was refused."""
        if self._pending:
            last = self._next_tag - max(0, leave)    # confirmed up to this tag
            pending = self._pending
            with self._guard("wait for confirms"):
                self._settle(lambda: not pending or next(iter(pending)) > last, timeout)
        if self._nacked:
            # a nack: the broker could not take the message on (on a cluster,
            # the leader of a quorum queue it was routed to was lost): the
            # flow publishes the batch again once reconnected
            n, self._nacked = len(self._nacked), []
            raise BrokerError(f"{self.name}: broker refused {n} messages (nack); they are "
                              f"published again", recoverable=True)

    @property
    def unconfirmed(self) -> int:
        return len(self._pending)

    def keepalive(self) -> None:
        """Let pika answer heartbeats during long work between ``get`` calls."""
        if self._conn is not None and self._conn.is_open:
            with self._guard("heartbeat"):
                self._pump(0)
