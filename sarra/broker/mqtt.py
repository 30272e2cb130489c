"""MQTT driver on paho-mqtt 2.x: the only module that imports paho.

Schemes: mqtt (1883), mqtts (TLS, 8883), ws and wss (MQTT over websockets,
path ``/mqtt`` unless the URL gives one: RabbitMQ's rabbitmq_web_mqtt and
mosquitto's websockets listener). Capabilities: QoS 1 both ways; a post is
done once the broker's PUBACK came (``flush`` waits for them all);
persistent sessions (MQTT 5 ``clean_start`` off with a session expiry:
the queue's ``expire``; MQTT 3.1.1 ``clean_session`` off), so what is
published while a subscriber is away waits for it; manual acknowledgement
(a message's PUBACK goes once the flow acks it, after its work, post and
log message); several instances share a queue through the MQTT 5 shared
subscription ``$share/<queue>/<filter>``; headers as MQTT 5 user
properties. A broker that refuses MQTT 5 is spoken to in 3.1.1 (no
headers: v03 posts only; one consumer per queue).
Requires: paho-mqtt >= 2 (``pip install sarra[mqtt]``).

Exchanges and topics map to MQTT topics by sarra/broker/mqtt_topic.py:
there are no exchanges or queues on the broker, so declaring them does
nothing and a queue's message count is unknown (0). A lost connection is a
recoverable BrokerError; the flow's ``connect`` (with its backoff) makes
new ones: what was not acknowledged comes again, what was not PUBACKed is
published again by the flow.

Each connection runs paho's network loop in a thread of its own, which
talks to the caller's thread only through a ``queue.Queue`` of events.
"""
from __future__ import annotations

import logging
import queue
import secrets
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..config.paths import instance
from ..tls import TlsPolicy, untrusted
from ..errors import BrokerError, ConfigError
from .amqp import _masked, credentials_file
from .base import Delivery, Outgoing
from .mqtt_topic import amqp_of, mqtt_filter, mqtt_topic, shared

log = logging.getLogger(__name__)

WINDOW = 1000               # PUBACKs outstanding before publish waits
CONNECT_TIMEOUT = 15.0
DEFAULT_SESSION = 86400     # s: a session's expiry when the queue's expire is 0
PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
REFUSED = {4, 5, 0x86, 0x87}          # bad user name or password, not authorized
OLD_PROTOCOL = {1, 0x84}              # unacceptable / unsupported protocol version


@dataclass
class _Target:
    host: str
    port: int
    tls: bool
    transport: str
    path: str
    user: str | None
    password: str | None


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or PORTS[scheme]
    except ValueError:
        raise ConfigError(f"{_masked(url)}: bad port", option="broker") from None
    websockets = scheme in ("ws", "wss")
    path = parts.path if websockets and parts.path not in ("", "/") else "/mqtt"
    return _Target(parts.hostname or "localhost", port, scheme in ("mqtts", "wss"),
                   "websockets" if websockets else "tcp", path,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password is not None else None)


class _Link:
    """One paho client and its network thread (``reconnect_on_failure`` off:
    the thread ends with the connection); events come on ``events``:
    ("connack", code), ("puback", mid, code), ("message", MQTTMessage),
    ("suback", mid, codes), ("lost", reason)."""

    def __init__(self, target: _Target, client_id: str, v5: bool, clean: bool,
                 session_s: int = 0, receive_max: int = 0, tls: ssl.SSLContext | None = None):
        self.events: "queue.Queue[tuple]" = queue.Queue()
        self.v5 = v5
        kwargs: dict[str, Any] = {} if v5 else {"clean_session": clean}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5 if v5 else
                                  MQTTProtocolVersion.MQTTv311, transport=target.transport,
                                  reconnect_on_failure=False, manual_ack=True, **kwargs)
        c = self.client
        if target.user is not None:
            c.username_pw_set(target.user, target.password)
        if target.transport == "websockets":
            c.ws_set_options(path=target.path)
        if target.tls:
            c.tls_set_context(tls or ssl.create_default_context())
            if tls is not None and not tls.check_hostname:
                c.tls_insecure_set(True)     # tls_verify off: paho checks names itself
        c.max_inflight_messages_set(WINDOW)
        c.max_queued_messages_set(0)
        c.on_connect = lambda _c, _u, _f, code, _p: self.events.put(("connack", code))
        c.on_publish = lambda _c, _u, mid, code, _p: self.events.put(("puback", mid, code))
        c.on_message = lambda _c, _u, m: self.events.put(("message", m))
        c.on_subscribe = lambda _c, _u, mid, codes, _p: self.events.put(("suback", mid, codes))
        c.on_disconnect = lambda _c, _u, _f, code, _p: self.events.put(("lost", code))
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_s
            if receive_max:
                props.ReceiveMaximum = receive_max
        self._connect_args = dict(host=target.host, port=target.port, keepalive=60,
                                  clean_start=clean if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                                  properties=props)

    def open(self) -> tuple[str, Any]:
        """Connect: ("connack", reason code), or ("lost", why) when the broker
        closed the connection first (raises BrokerError when unreachable)."""
        try:
            self.client.connect(**self._connect_args)
        except ssl.SSLCertVerificationError:
            raise                       # the caller says which server, and what to do
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect: {exc!r}", recoverable=True) from exc
        self.client.loop_start()     # paho's thread (publishes only queue their packets)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                raise BrokerError(f"no CONNACK within {CONNECT_TIMEOUT:.0f}s",
                                  recoverable=True) from None
            if event[0] in ("connack", "lost"):
                return event

    def close(self) -> None:
        try:
            self.client.disconnect()
        except Exception:      # already gone: nothing to say
            pass
        self.client.loop_stop()


def _code(code: Any) -> int:
    return getattr(code, "value", code) if code is not None else 0


def _failed(code: Any) -> bool:
    """A reason code of failure (paho gives MQTT 3.1.1's codes in MQTT 5's terms)."""
    return _code(code) >= 0x80


class MqttBroker:
    def __init__(self, url: str, heartbeat: float = 120, connection_name: str = "sarra",
                 instances: int = 1, tls: TlsPolicy | None = None):
        """``instances``: how many instances consume the queue (more than
        one: each its own session, in one shared subscription). ``tls``: how
        an mqtts or wss broker's certificate is verified."""
        self.name = _masked(url)
        self._tls = tls or TlsPolicy()
        self._instances = instances
        self._url = url
        parts = urlsplit(url)
        self._no_password = bool(parts.username and parts.password is None)
        self._target = None if self._no_password else _target(url)
        self._context = self._tls.context(url) if self._target and self._target.tls else None
        self._v5 = True
        self._pub: _Link | None = None
        self._sub: _Link | None = None
        self._epoch = 0
        self._seq = 0
        self._filters: dict[str, list[str]] = {}     # queue -> MQTT topic filters
        self._expire: dict[str, float] = {}
        self._consuming: tuple[str, int] | None = None
        self._pending: dict[int, Outgoing] = {}
        self._refused: list[tuple[Outgoing, int]] = []
        self._unacked: dict[int, int] = {}            # our seq -> paho mid
        self._inbox: list[Delivery] = []
        self.published = 0

    # -- connections -----------------------------------------------------
    def _open(self, client_id: str, clean: bool, session_s: int = 0,
              receive_max: int = 0) -> _Link:
        for v5 in ((True, False) if self._v5 else (False,)):
            link = _Link(self._target, client_id, v5, clean, session_s, receive_max,
                         self._context)
            try:
                kind, code = link.open()
            except ssl.SSLCertVerificationError as exc:
                raise BrokerError(untrusted(self.name, exc, self._tls),
                                  recoverable=False) from exc
            except BrokerError as exc:
                raise BrokerError(f"{self.name}: {exc}", exc.recoverable) from exc
            if kind == "connack" and not _failed(code):
                self._v5 = v5
                return link
            link.close()
            if kind == "connack" and _code(code) in REFUSED:
                raise BrokerError(self._refusal(code), recoverable=False)
            if v5 and (kind == "lost" or _code(code) in OLD_PROTOCOL):
                log.info("%s does not speak MQTT 5 (%s): using 3.1.1", self.name, code)
                continue
            raise BrokerError(f"{self.name}: connection refused: {code}", recoverable=True)
        raise BrokerError(f"{self.name}: no MQTT protocol version accepted", recoverable=False)

    def _refusal(self, code: Any) -> str:
        """Which account, which broker, which credentials file (never the password)."""
        t = self._target
        return (f"login refused for user '{t.user or '(none given)'}' on broker {self.name} "
                f"({code}): the password is wrong or the user is unknown there, or may not "
                f"connect (the password is read from {credentials_file()}, its line for "
                f"this URL)")

    def connect(self) -> None:
        """(Re)connect: a clean connection for publishing, and the queue's
        session again when consuming. What was unconfirmed is forgotten."""
        if self._no_password:
            raise ConfigError(f"no password for {self.name}: add the URL with its password "
                              f"to credentials.conf")
        self.close()
        self._pub = self._open(f"sarra-{secrets.token_hex(6)}", clean=True)
        log.debug("connected to %s (MQTT %s)", self.name, "5" if self._v5 else "3.1.1")
        if self._consuming:
            queue_name, prefetch = self._consuming
            self._consuming = None
            self.consume(queue_name, prefetch)

    def close(self) -> None:
        for link in (self._pub, self._sub):
            if link is not None:
                link.close()
        self._pub = self._sub = None
        self._pending.clear()
        self._refused.clear()
        self._forget_deliveries()

    def _forget_deliveries(self) -> None:
        self._epoch += 1
        self._inbox.clear()
        self._unacked.clear()

    def _publisher(self) -> _Link:
        if self._pub is None:
            raise BrokerError(f"{self.name}: not connected", recoverable=True)
        return self._pub

    # -- declarations (MQTT has neither exchanges nor queues) -------------
    def declare_exchange(self, name: str, passive: bool = False) -> None:
        self._publisher()

    def declare_queue(self, name: str, durable: bool = True, expire_s: float = 0,
                      message_ttl_s: float = 0, queue_type: str = "classic",
                      exclusive: bool = False) -> int:
        if queue_type != "classic" or exclusive:
            raise ConfigError(f"{self.name}: MQTT has no {queue_type} or exclusive queues",
                              option="queue_type")
        self._publisher()
        self._filters.setdefault(name, [])
        self._expire[name] = expire_s
        return 0

    def bind(self, queue_name: str, exchange: str, key: str) -> None:
        topic_filter = mqtt_filter(exchange, key)
        filters = self._filters.setdefault(queue_name, [])
        if topic_filter not in filters:
            filters.append(topic_filter)
        if self._sub is not None and self._consuming and self._consuming[0] == queue_name:
            self._subscribe(self._sub, [topic_filter], queue_name)
            return
        # not consuming it ('declare'): the queue's session takes the
        # subscription and keeps what comes until ``consume`` (a message that
        # arrives before we leave comes again, marked as a duplicate)
        link = self._open(self._client_id(queue_name), clean=False,
                          session_s=self._session_expiry(queue_name), receive_max=1)
        try:
            self._subscribe(link, [topic_filter], queue_name)
        finally:
            link.close()

    def delete_queue(self, name: str) -> None:
        """End the queue's sessions (a clean start with each client id)."""
        if self._sub is not None and self._consuming and self._consuming[0] == name:
            self._sub.close()
            self._sub, self._consuming = None, None
        numbers = range(1, self._instances + 1) if self._shared else [None]
        for number in numbers:
            self._open(self._client_id(name, number), clean=True).close()
        self._filters.pop(name, None)

    # -- consuming -------------------------------------------------------
    @property
    def _shared(self) -> bool:
        return self._v5 and self._instances > 1

    def _client_id(self, queue_name: str, number: int | None = None) -> str:
        """The queue's session: one per instance in a shared subscription
        (a foreground run, or 'declare', is instance 1: a session of its own
        would keep its share of the messages while it is gone), else the
        queue's own (a foreground run takes it over from a daemon)."""
        if not self._shared:
            return queue_name
        return f"{queue_name}_{max(1, instance()) if number is None else number:02d}"

    def _session(self, queue_name: str, prefetch: int) -> None:
        if self._sub is not None:
            self._sub.close()
        self._forget_deliveries()
        self._sub = self._open(self._client_id(queue_name), clean=False,
                               session_s=self._session_expiry(queue_name),
                               receive_max=min(prefetch, 65535))
        self._consuming = (queue_name, prefetch)

    def _session_expiry(self, queue_name: str) -> int:
        return int(self._expire.get(queue_name) or DEFAULT_SESSION)

    def _subscribe(self, link: _Link, filters: list[str], queue_name: str) -> None:
        wanted = [(shared(queue_name, f) if self._shared else f, 1) for f in filters]
        rc, mid = link.client.subscribe(wanted)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise BrokerError(f"{self.name}: subscribe: {paho.error_string(rc)}",
                              recoverable=True)
        codes = self._await(link, "suback", mid)
        bad = [f for (f, _q), c in zip(wanted, codes) if _failed(c) or _code(c) > 2]
        if bad:
            raise BrokerError(f"{self.name}: subscription refused: {', '.join(bad)}",
                              recoverable=False)

    def _await(self, link: _Link, kind: str, mid: int, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            for event in self._drain(link, max(0.0, deadline - time.monotonic())):
                if event[0] == kind and event[1] == mid:
                    return event[2]
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.name}: no {kind.upper()} within {timeout:.0f}s",
                                  recoverable=True)

    def consume(self, queue: str, prefetch: int, offset: Any = None) -> None:
        if offset is not None:
            raise ConfigError(f"{self.name}: MQTT has no streams", option="stream")
        if self._consuming == (queue, prefetch) and self._sub is not None:
            return
        self._publisher()
        self._session(queue, prefetch)
        if self._filters.get(queue):
            self._subscribe(self._sub, self._filters[queue], queue)

    def _drain(self, link: _Link, timeout: float) -> list[tuple]:
        """The link's events (waiting up to ``timeout`` for the first);
        deliveries go to the inbox, PUBACKs settle, a loss raises."""
        out: list[tuple] = []
        try:
            event = link.events.get(timeout=timeout) if timeout > 0 else link.events.get_nowait()
            while True:
                out.append(event)
                event = link.events.get_nowait()
        except queue.Empty:
            pass
        for event in out:
            self._dispatch(link, event)
        return out

    def _dispatch(self, link: _Link, event: tuple) -> None:
        kind = event[0]
        if kind == "message" and link is self._sub:
            self._delivered(event[1])
        elif kind == "puback":
            msg = self._pending.pop(event[1], None)
            if msg is not None and _failed(event[2]):
                self._refused.append((msg, _code(event[2])))
        elif kind == "lost":
            lost = len(self._pending)
            self.close()
            raise BrokerError(f"{self.name}: connection lost ({event[1]}); {lost} messages "
                              f"unconfirmed", recoverable=True)

    def _delivered(self, m) -> None:
        self._seq += 1
        self._unacked[self._seq] = m.mid
        exchange, topic = amqp_of(m.topic)
        props = getattr(m, "properties", None)
        headers = {str(k): str(v) for k, v in getattr(props, "UserProperty", None) or []}
        ctype = getattr(props, "ContentType", None)
        self._inbox.append(Delivery(exchange, topic, headers, bytes(m.payload), ctype,
                                    (self._epoch, self._seq), bool(m.dup)))

    def get(self, timeout: float) -> list[Delivery]:
        """Deliveries, no more than ``prefetch`` unacknowledged in the flow's
        hands (a broker may send more than the Receive Maximum asked for:
        MQTT 3.1.1 has none; they wait here)."""
        room = self._room()
        if not self._inbox or not room:
            link = self._sub or self._publisher()
            self._drain(link, timeout if room else 0)
            if self._pub is not None and link is not self._pub:
                self._drain(self._pub, 0)
            room = self._room()
            if not room and timeout:
                time.sleep(min(timeout, 0.05))    # the flow holds a full window
        out, self._inbox = self._inbox[:room], self._inbox[room:]
        return out

    def _room(self) -> int:
        if self._consuming is None:
            return len(self._inbox)
        handed = len(self._unacked) - len(self._inbox)
        return max(0, self._consuming[1] - handed)

    def ack(self, tags: list[Any]) -> None:
        """PUBACK what the flow is done with, in the order it came."""
        mine = sorted(s for e, s in tags if e == self._epoch and s in self._unacked)
        if not mine:
            return
        link = self._sub
        if link is None:
            raise BrokerError(f"{self.name}: not consuming", recoverable=True)
        for seq in mine:
            rc = link.client.ack(self._unacked.pop(seq), 1)
            if rc != paho.MQTT_ERR_SUCCESS:
                self.close()
                raise BrokerError(f"{self.name}: ack: {paho.error_string(rc)}",
                                  recoverable=True)

    # -- publishing ------------------------------------------------------
    def publish(self, msg: Outgoing) -> None:
        """Send with QoS 1 without waiting; ``flush`` waits for the PUBACKs."""
        link = self._publisher()
        if len(self._pending) >= WINDOW:
            self._settle(lambda: len(self._pending) < WINDOW // 2, 60.0)
        props = None
        if link.v5:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = msg.content_type
            if msg.headers:
                props.UserProperty = [(k, v) for k, v in msg.headers.items()]
            if msg.expiration_ms:
                props.MessageExpiryInterval = max(1, msg.expiration_ms // 1000)
        elif msg.headers:
            raise BrokerError(f"{self.name}: MQTT 3.1.1 carries no headers: publish v03 "
                              f"(post_topic_prefix v03...)", recoverable=False)
        info = link.client.publish(mqtt_topic(msg.exchange, msg.topic), msg.body, qos=1,
                                   properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self.close()
            raise BrokerError(f"{self.name}: publish: {paho.error_string(info.rc)}",
                              recoverable=True)
        self._pending[info.mid] = msg
        self.published += 1

    def _settle(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        link = self._publisher()
        while not done():
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.name}: no PUBACK within {timeout:.0f}s "
                                  f"({len(self._pending)} unconfirmed)", recoverable=True)
            self._drain(link, 0.05)

    def flush(self, timeout: float = 60.0, leave: int = 0) -> None:
        """Wait for every PUBACK, ``leave`` or not (packet ids are reused:
        which were published last is not kept); raise if the broker refused any."""
        if self._pending:
            self._settle(lambda: not self._pending, timeout)
        if self._refused:
            (first, code), n = self._refused[0], len(self._refused)
            self._refused.clear()
            raise BrokerError(f"{self.name}: broker refused {n} messages (first to "
                              f"{mqtt_topic(first.exchange, first.topic)}: reason {code:#x})",
                              recoverable=False)

    @property
    def unconfirmed(self) -> int:
        return len(self._pending)

    def keepalive(self) -> None:
        """paho's threads answer the broker's keepalive: only settle events."""
        if self._pub is not None:
            self._drain(self._pub, 0)
