"""The broker contract: one set of tests run against every driver.

Each test gets ``backend`` (parametrised: the in-process memory driver and
the pika driver on the local RabbitMQ; the tests marked ``@every_backend``
also the MQTT driver on a private mosquitto: MQTT has no exchanges, no
queue counts and no passive declarations, so the others do not apply to it)
and ``broker``, a connected driver of that backend. Names are unique per test; queues, exchanges (RabbitMQ) and
memory spaces are removed at teardown. What RabbitMQ does is the reference:
a memory driver that disagrees with it is the one to fix.

The last tests are AMQP only: a connection dropped under a publisher by the
broker (``rabbitmqctl close_connection`` on that one connection, so that
other users of the shared broker are left alone).
"""
from __future__ import annotations

import os

import pika
import pytest

from sarra.broker import (Broker, Delivery, Outgoing, ensure_exchange, make_broker,
                          reconnecting)
from sarra.broker import memory
from sarra.errors import BrokerError
from tests.helpers import wait_for

BACKENDS = ["memory", "amqp"]
# the tests whose meaning holds on MQTT too (sessions for queues)
every_backend = pytest.mark.parametrize("backend", BACKENDS + ["mqtt"], indirect=True)


class Backend:
    """Connected drivers and unique names for one test; tidies up after it."""

    def __init__(self, kind: str, url: str, unique: str):
        self.kind, self.url, self.unique = kind, url, unique
        self.drivers: list[Broker] = []
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def open(self, **options) -> Broker:
        """A new connected driver (its own connection), closed at teardown."""
        broker = make_broker(self.url, **options)
        broker.connect()
        self.drivers.append(broker)
        return broker

    def exchange(self, label: str = "x") -> str:
        name = f"xt_contract_{self.unique}_{label}"
        self.exchanges.append(name)
        return name

    def queue(self, label: str = "q") -> str:
        name = f"q_contract.{self.unique}.{label}"
        self.queues.append(name)
        return name

    def teardown(self) -> None:
        for broker in self.drivers:
            try:
                broker.close()
            except BrokerError:
                pass
        if self.kind == "memory":
            memory.reset(self.unique)
            return
        if self.kind == "mqtt":         # end the queues' sessions
            broker = make_broker(self.url)
            broker.connect()
            for name in self.queues:
                broker.delete_queue(name)
            broker.close()
            return
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            for name in self.queues:
                conn.channel().queue_delete(name)
            for name in self.exchanges:
                conn.channel().exchange_delete(name)
        finally:
            conn.close()


@pytest.fixture(params=BACKENDS)
def backend(request, unique) -> Backend:
    if request.param == "amqp":
        url = request.getfixturevalue("amqp_url")
    elif request.param == "mqtt":
        url = request.getfixturevalue("mosquitto").url("alice", password=True)
    else:
        url = f"memory://{unique}/"
    b = Backend(request.param, url, unique)
    yield b
    b.teardown()


@pytest.fixture
def amqp_backend(amqp_url, unique) -> Backend:
    b = Backend("amqp", amqp_url, unique)
    yield b
    b.teardown()


@pytest.fixture
def broker(backend) -> Broker:
    return backend.open()


# --------------------------------------------------------------------------- helpers

def routed_queue(backend: Backend, broker: Broker, key: str = "v02.post.#",
                 label: str = "q") -> tuple[str, str]:
    """(exchange, queue): a fresh exchange and a durable queue bound to it with ``key``."""
    ex, q = backend.exchange(label), backend.queue(label)
    broker.declare_exchange(ex)
    assert broker.declare_queue(q) == 0
    broker.bind(q, ex, key)
    return ex, q


def send(broker: Broker, ex: str, bodies, topic: str = "v02.post.a.b", **kw) -> None:
    for body in bodies:
        broker.publish(Outgoing(ex, topic, {"n": str(body)}, body, **kw))
    broker.flush(10)


def take(broker: Broker, n: int, timeout: float = 10) -> list[Delivery]:
    """Deliveries until there are (at least) ``n``; fails after ``timeout`` s."""
    got: list[Delivery] = []

    def enough() -> bool:
        got.extend(broker.get(0.1))
        return len(got) >= n

    wait_for(enough, timeout=timeout, interval=0, what=f"{n} deliveries (have {len(got)})")
    return got


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [d.body for d in deliveries]


def numbered(n: int, start: int = 0) -> list[str]:
    return [f"m{i:03d}" for i in range(start, start + n)]


def encoded(strings: list[str]) -> list[bytes]:
    return [s.encode() for s in strings]


# --------------------------------------------------------------------------- declarations

def test_declare_exchange_is_idempotent(backend, broker):
    ex = backend.exchange()
    broker.declare_exchange(ex)
    broker.declare_exchange(ex)                 # again: no error
    broker.declare_exchange(ex, passive=True)   # raises unless it exists
    ensure_exchange(broker, ex)
    other = backend.exchange("ensured")
    ensure_exchange(broker, other)
    broker.declare_exchange(other, passive=True)


def test_passive_declare_of_missing_exchange_is_a_refusal_and_driver_still_works(backend, broker):
    missing = backend.exchange("missing")
    with pytest.raises(BrokerError) as info:
        broker.declare_exchange(missing, passive=True)
    assert info.value.recoverable is False
    # the refusal was no declaration
    with pytest.raises(BrokerError):
        broker.declare_exchange(missing, passive=True)
    # the same driver object carries on (amqp: on a new channel)
    ex, q = routed_queue(backend, broker)
    send(broker, ex, ["after"])
    broker.consume(q, 10)
    assert bodies(take(broker, 1)) == [b"after"]


def test_refused_declaration_does_not_stop_an_active_consumer(backend, broker):
    ex, q = routed_queue(backend, broker)
    broker.consume(q, 10)
    send(broker, ex, ["first"])
    first = take(broker, 1)
    broker.ack([first[0].tag])
    # a refused declaration, as ensure_exchange meets it for a user who may
    # not declare the report exchange, while the queue is being consumed
    with pytest.raises(BrokerError) as info:
        broker.declare_exchange(backend.exchange("missing"), passive=True)
    assert info.value.recoverable is False
    send(broker, ex, ["second"])
    assert bodies(take(broker, 1, timeout=3)) == [b"second"]


def test_binding_or_consuming_what_does_not_exist_is_a_refusal(backend, broker):
    ex, q = routed_queue(backend, broker)
    for attempt in (lambda: broker.bind(backend.queue("missing"), ex, "#"),
                    lambda: broker.bind(q, backend.exchange("missing"), "#"),
                    lambda: broker.consume(backend.queue("missing2"), 10)):
        with pytest.raises(BrokerError) as info:
            attempt()
        assert info.value.recoverable is False
    send(broker, ex, ["still routed"])  # nothing was bound, the driver still works
    assert broker.declare_queue(q) == 1


def test_declare_queue_returns_the_message_count(backend, broker):
    ex, q = routed_queue(backend, broker)
    assert broker.declare_queue(q) == 0
    send(broker, ex, numbered(3))
    assert broker.declare_queue(q) == 3
    other = backend.queue("other")
    assert broker.declare_queue(other, durable=False) == 0


@every_backend
def test_publish_consume_get_returns_a_complete_delivery(backend, broker):
    ex, q = routed_queue(backend, broker, "v02.post.#")
    headers = {"sum": "d,0123abcd", "parts": "1,4096,1,0,0", "source": "alice",
               "mtime": "20240101T000000.0"}
    broker.publish(Outgoing(ex, "v02.post.dir.file", headers, "20240101 http://h/ dir/file",
                            content_type="text/plain"))
    broker.publish(Outgoing(ex, "v02.post.json", {"k": "v"}, b'{"a": 1}',
                            content_type="application/json"))
    broker.flush(10)
    broker.consume(q, 10)
    first, second = take(broker, 2)
    assert (first.exchange, first.topic) == (ex, "v02.post.dir.file")
    assert first.headers == headers
    assert all(isinstance(v, str) for v in first.headers.values())
    assert first.body == b"20240101 http://h/ dir/file" and isinstance(first.body, bytes)
    assert first.content_type == "text/plain"
    assert first.redelivered is False
    assert (second.topic, second.headers) == ("v02.post.json", {"k": "v"})
    assert second.body == b'{"a": 1}'
    assert second.content_type == "application/json"
    assert first.tag != second.tag


def test_a_message_matching_two_bindings_of_one_queue_comes_once(backend, broker):
    ex, q = routed_queue(backend, broker, "v02.post.#")
    broker.bind(q, ex, "v02.*.a.b")
    broker.bind(q, ex, "v02.*.a.b")  # binding twice is one binding
    send(broker, ex, ["once"], topic="v02.post.a.b")
    assert broker.declare_queue(q) == 1


# --------------------------------------------------------------------------- topic routing

# (binding, routing key, delivered?) as RabbitMQ routes them
ROUTING = [
    ("#", "", True),
    ("#", "a.b.c", True),
    ("*", "a", True),
    ("*", "", False),
    ("*", "a.b", False),
    ("a.#", "a", True),
    ("a.#", "ab", False),
    ("#.b", "x.ab", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.b.c", True),
    ("a.#.c", "a..c", True),
    ("a.#.c", "a.c.d", False),
    ("a.*", "a.", True),
    ("*.*", ".", True),
    ("a..b", "a..b", True),
    ("a..b", "a.b", False),
    ("", "", True),
    (".", "", False),
    ("v02.post.#", "v02.postx", False),
    ("v02.post.a+b", "v02.post.aab", False),
]


def test_topic_routing_matches_rabbitmq(backend, broker):
    ex = backend.exchange()
    broker.declare_exchange(ex)
    outcome = {}
    for i, (binding, key, _) in enumerate(ROUTING):
        q = backend.queue(f"route{i}")  # one queue at a time on the exchange
        broker.declare_queue(q)
        broker.bind(q, ex, binding)
        broker.publish(Outgoing(ex, key, {}, f"row {i}"))
        broker.flush(10)  # confirmed: routed and queued, or dropped
        outcome[(binding, key)] = broker.declare_queue(q) == 1
        broker.delete_queue(q)
    assert outcome == {(b, k): want for b, k, want in ROUTING}


# --------------------------------------------------------------------------- consuming

@every_backend
def test_prefetch_window_bounds_unacknowledged_messages(backend, broker):
    ex, q = routed_queue(backend, broker)
    sent = numbered(20)
    send(broker, ex, sent)
    broker.consume(q, 5)
    window = take(broker, 5)
    assert bodies(window) == encoded(sent[:5])
    assert broker.get(0.5) == [], "more than the prefetch window was delivered"
    broker.ack([d.tag for d in window])
    following = take(broker, 5)
    assert bodies(following) == encoded(sent[5:10])
    assert broker.get(0.3) == []


@every_backend
def test_unacknowledged_messages_come_back_after_close_acknowledged_ones_do_not(backend, broker):
    ex, q = routed_queue(backend, broker)
    sent = numbered(4)
    send(broker, ex, sent)
    broker.consume(q, 10)
    got = take(broker, 4)
    assert bodies(got) == encoded(sent)
    assert not any(d.redelivered for d in got)
    broker.ack([got[0].tag, got[2].tag])
    tags = [d.tag for d in got]
    broker.close()
    send(backend.open(), ex, ["end"])
    second = backend.open()
    second.consume(q, 10)
    again = take(second, 3)
    assert bodies(again) == [b"m001", b"m003", b"end"]
    assert [d.redelivered for d in again] == [True, True, False]
    assert second.get(0.3) == []
    # what the first consumer was handed is its own: not changed by the redelivery
    assert [(d.tag, d.redelivered) for d in got] == [(t, False) for t in tags]


@every_backend
def test_close_then_connect_the_same_driver_gives_unacknowledged_messages_again(
        backend, broker):
    ex, q = routed_queue(backend, broker)
    send(broker, ex, numbered(3))
    broker.consume(q, 10)
    got = take(broker, 3)
    broker.ack([got[1].tag])
    broker.close()
    broker.connect()          # what the flow does after a lost connection
    broker.consume(q, 10)
    again = take(broker, 2)
    assert bodies(again) == [b"m000", b"m002"]
    assert all(d.redelivered for d in again)
    broker.ack([got[0].tag, got[2].tag])   # tags from before: ignored, settle nothing
    broker.ack([d.tag for d in again])
    assert broker.get(0.3) == []
    broker.close()
    assert backend.open().declare_queue(q) == 0


def test_acking_a_batch_of_tags_settles_them_all(backend, broker):
    ex, q = routed_queue(backend, broker)
    send(broker, ex, numbered(8))
    broker.consume(q, 10)
    got = take(broker, 8)
    broker.ack([got[i].tag for i in (0, 2, 3, 6)])   # not contiguous
    broker.ack([got[i].tag for i in (1, 4, 5, 7)])   # the rest, ending with the last
    assert broker.get(0.3) == []
    broker.close()
    send(backend.open(), ex, ["end"])  # anything that came back sits before it
    second = backend.open()
    assert second.declare_queue(q) == 1
    second.consume(q, 10)
    assert bodies(take(second, 1)) == [b"end"]


@every_backend
def test_acking_a_tag_twice_or_an_empty_list_does_no_harm(backend, broker):
    ex, q = routed_queue(backend, broker)
    send(broker, ex, numbered(2))
    broker.consume(q, 10)
    got = take(broker, 2)
    broker.ack([])
    broker.ack([got[0].tag])
    broker.ack([got[0].tag, got[1].tag])
    send(broker, ex, ["later"])
    assert bodies(take(broker, 1)) == [b"later"]


def test_durable_queue_keeps_messages_after_the_consumer_closes(backend, broker):
    ex, q = routed_queue(backend, broker)
    broker.consume(q, 10)
    sent = numbered(3)
    send(broker, ex, sent)
    broker.close()
    later = backend.open()
    assert later.declare_queue(q) == 3
    later.consume(q, 10)
    got = take(later, 3)
    assert bodies(got) == encoded(sent)


# --------------------------------------------------------------------------- publishing

def test_publish_to_missing_exchange_raises_and_the_driver_publishes_again(backend, broker):
    ex, q = routed_queue(backend, broker)
    missing = backend.exchange("missing")
    with pytest.raises(BrokerError) as info:
        for body in ("lost1", "lost2", "lost3"):
            broker.publish(Outgoing(missing, "v02.post.a", {}, body))
        broker.flush(5)
    assert info.value.recoverable is False
    broker.flush(5)  # the refusal was reported once; nothing is left pending
    send(broker, ex, ["kept1", "kept2"])
    assert broker.declare_queue(q) == 2
    broker.consume(q, 10)
    assert bodies(take(broker, 2)) == [b"kept1", b"kept2"]


@every_backend
def test_unicode_and_255_byte_header_values_round_trip(backend, broker):
    ex, q = routed_queue(backend, broker)
    headers = {
        "relpath": "unicodé/ファイル-ü ñ #%20.bin",
        "ascii255": "a" * 255,
        "utf8_255": "é" * 127 + "x",       # 255 bytes in UTF-8
        "cjk255": "日" * 85,                # 255 bytes in UTF-8
        "empty": "",
    }
    assert all(len(headers[k].encode()) == 255 for k in ("ascii255", "utf8_255", "cjk255"))
    broker.publish(Outgoing(ex, "v02.post.ü.ファイル", headers, "corps: é ü ファイル"))
    broker.flush(10)
    broker.consume(q, 10)
    (d,) = take(broker, 1)
    assert d.headers == headers
    assert d.topic == "v02.post.ü.ファイル"
    assert d.body == "corps: é ü ファイル".encode()


@every_backend
def test_one_mebibyte_body_round_trips(backend, broker):
    ex, q = routed_queue(backend, broker)
    body = os.urandom(1 << 20)
    broker.publish(Outgoing(ex, "v02.post.big", {}, body, content_type="application/octet-stream"))
    broker.flush(10)
    broker.consume(q, 1)
    (d,) = take(broker, 1)
    assert len(d.body) == len(body) and d.body == body


# --------------------------------------------------------------------------- AMQP only

def drop_connection(ctl, connection_name: str) -> None:
    """Have RabbitMQ close the one client connection named ``connection_name``."""
    listing = ctl.run("list_connections", "-q", "--no-table-headers", "pid", "client_properties")
    pids = [line.split("\t", 1)[0] for line in listing.stdout.splitlines()
            if f'{{"connection_name","{connection_name}"}}' in line]
    assert len(pids) == 1, f"connection {connection_name} not found:\n{listing.stdout}"
    ctl.run("close_connection", pids[0], "broker contract test")


def test_publish_after_dropped_connection_succeeds_after_reconnect(amqp_backend, rabbitmq_ctl):
    backend = amqp_backend
    name = f"contract-{backend.unique}"
    broker = backend.open(connection_name=name)
    ex, q = routed_queue(backend, broker)
    before, after = numbered(5), numbered(5, start=5)
    send(broker, ex, before)
    drop_connection(rabbitmq_ctl, name)
    reconnects: list[int] = []

    def reconnect() -> None:
        reconnects.append(1)
        broker.connect()

    reconnecting(lambda: send(broker, ex, after), reconnect, "publish", attempts=4)
    assert reconnects, "the dropped connection went unnoticed"
    consumer = backend.open()
    assert consumer.declare_queue(q) >= 10
    consumer.consume(q, 20)
    got = [b.decode() for b in bodies(take(consumer, 10))]
    assert sorted(got) == before + after   # the flushed ones kept, none lost twice


def test_dropped_connection_is_a_recoverable_error_and_connect_resumes(
        amqp_backend, rabbitmq_ctl):
    backend = amqp_backend
    name = f"contract-{backend.unique}"
    broker = backend.open(connection_name=name)
    ex, q = routed_queue(backend, broker)
    broker.consume(q, 10)
    drop_connection(rabbitmq_ctl, name)
    with pytest.raises(BrokerError) as info:
        wait_for(lambda: broker.get(0.2) and False, timeout=5, what="the drop to surface")
    assert info.value.recoverable is True
    broker.connect()  # resumes consuming the same queue
    send(broker, ex, ["resumed"])
    assert bodies(take(broker, 1)) == [b"resumed"]


def test_an_exclusive_queue_is_one_connections_until_it_closes(backend):
    """What sarra/broker/lease.py stands on: another connection's declaration
    is refused (QueueLocked) while the owner's is open, and succeeds once it
    has closed; the owner may declare it again (the lease's check)."""
    from sarra.broker.base import QueueLocked
    name = backend.queue("lease")
    owner, other = backend.open(), backend.open()
    owner.declare_queue(name, durable=False, exclusive=True)
    owner.declare_queue(name, durable=False, exclusive=True)
    with pytest.raises(QueueLocked):
        other.declare_queue(name, durable=False, exclusive=True)
    with pytest.raises(QueueLocked):          # and again: the driver is still usable
        other.declare_queue(name, durable=False, exclusive=True)
    owner.close()

    def taken() -> bool:      # (the broker deletes it as the connection ends)
        try:
            return other.declare_queue(name, durable=False, exclusive=True) == 0
        except QueueLocked:
            return False
    wait_for(taken, timeout=5, interval=0.05, what="the queue freed by its owner's close")



def _every_type_headers():
    import datetime
    import decimal
    return {"sum": "s,1", "n": 5, "big": 2 ** 40, "neg": -3, "yes": True, "no": False,
            "raw": b"\x00\xff", "table": {"k": "v", "deeper": {"x": [1, "y", None]}},
            "list": ["a", 1, {"in": "t"}, [], True], "dec": decimal.Decimal("3.14159"),
            "when": datetime.datetime(2026, 12, 4, 18, 35, 37, tzinfo=datetime.timezone.utc),
            "void": None, "empty": "", "é": "ünïcödé ✓"}


def test_deliveries_read_by_the_driver_are_what_pika_reads(amqp_backend, amqp_url, monkeypatch):
    """The driver reads its deliveries itself (sarra/broker/amqp.py:_Input):
    messages with every property and every field type pika writes, bodies
    empty, small and in several frames, come out as they do through pika's
    own reading (a second driver, _Input not installed)."""
    from sarra.broker import amqp
    backend = amqp_backend
    ours = backend.open()
    assert ours._in is not None
    with monkeypatch.context() as m:
        m.setattr(amqp._Input, "install", classmethod(lambda cls, *a: None))
        theirs = backend.open()
    assert theirs._in is None
    ex = backend.exchange()
    ours.declare_exchange(ex)
    queues = [backend.queue("ours"), backend.queue("theirs")]
    for q in queues:
        ours.declare_queue(q)
        ours.bind(q, ex, "#")
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="gzip",
        headers=_every_type_headers(), delivery_mode=2, priority=9, correlation_id="c",
        reply_to="r", expiration="600000", message_id="m", timestamp=1764873337, type="t",
        app_id="sarra", cluster_id="cl")
    plain = pika.BasicProperties(headers={"sum": "d,1", "été": "ü"}, content_type="text/plain")
    sent = [(b"", props), (b"small", props), (os.urandom(300_000), props),   # 3 body frames
            (b"v02", plain), (b"", pika.BasicProperties()), (b"x" * 131064, plain)]
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    for i, (body, p) in enumerate(sent):
        ch.basic_publish(ex, f"v02.post.{i}", body, p)
    conn.close()
    got = []
    for driver, q in zip((ours, theirs), queues):
        driver.consume(q, 3)             # a window smaller than the lot: acks between
        deliveries = []
        while len(deliveries) < len(sent):
            batch = take(driver, 1)
            driver.ack([d.tag for d in batch])
            deliveries += batch
        got.append([(d.exchange, d.topic, d.headers, d.body, d.content_type, d.redelivered)
                    for d in deliveries])
    assert got[0] == got[1]
    assert [g[3] for g in got[0]] == [body for body, _ in sent]
    assert got[0][0][2] == _every_type_headers()
    assert got[0][4][2] == {} and got[0][4][4] is None


def test_a_frame_error_is_a_recoverable_error_and_nothing_is_lost(amqp_backend):
    """Bytes that are no frame (here: a bad frame end, as if from the
    broker) end the connection, as pika ends it on its own frame errors: a
    recoverable BrokerError; connecting again, the messages not acknowledged
    come again."""
    backend = amqp_backend
    broker = backend.open()
    ex, q = routed_queue(backend, broker)
    send(broker, ex, numbered(4))
    broker.consume(q, 10)
    first = take(broker, 4)
    impl = broker._conn._impl
    reader = impl._on_data_available

    def damaged(data: bytes) -> None:        # what comes next, after a broken frame
        reader(b"\x08\x00\x00\x00\x00\x00\x00\x00" + data)
    impl._on_data_available = damaged
    send(backend.open(), ex, ["after"])     # (its own connection: the consumer's is damaged)
    with pytest.raises(BrokerError) as info:
        wait_for(lambda: broker.get(0.2) and False, timeout=5, what="the frame error")
    assert info.value.recoverable is True
    broker.connect()
    again = take(broker, 5)
    assert sorted(bodies(again)) == sorted(bodies(first) + [b"after"])
    assert all(d.redelivered for d in again if d.body != b"after")


def test_heartbeats_are_counted_while_the_driver_reads(amqp_backend):
    """pika judges a connection dead when nothing was received for two
    heartbeat intervals (Connection.bytes_received, which the driver's
    reading keeps up) and counts the heartbeats it is given: an idle
    consumer with a heartbeat of 1 s receives the broker's, each counted as
    pika counts it, and goes on."""
    import time
    backend = amqp_backend
    broker = backend.open(heartbeat=1)
    ex, q = routed_queue(backend, broker)
    broker.consume(q, 10)
    impl = broker._conn._impl
    checker = impl._heartbeat_checker
    before = (impl.bytes_received, impl.frames_received, checker._heartbeat_frames_received)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert broker.get(0.25) == []
    beats = checker._heartbeat_frames_received - before[2]
    assert beats >= 2
    assert impl.frames_received - before[1] == beats
    assert impl.bytes_received - before[0] == 8 * beats
    send(broker, ex, ["alive"])
    assert bodies(take(broker, 1)) == [b"alive"]


# --------------------------------------------------------------------------- MQTT only

@pytest.fixture
def mqtt_backend(mosquitto, unique) -> Backend:
    b = Backend("mqtt", mosquitto.url("alice", password=True), unique)
    yield b
    b.teardown()


def test_mqtt_session_keeps_messages_across_a_broker_restart(mqtt_backend, mosquitto):
    """A persistent session: what was not acknowledged, and what was
    published while the subscriber was away, comes when it is back; the
    outage is a recoverable error; a wrong password is a refusal that names
    the user and never the password."""
    backend = mqtt_backend
    broker = backend.open()
    ex, q = routed_queue(backend, broker)
    broker.consume(q, 10)
    send(broker, ex, numbered(3))
    got = take(broker, 3)
    broker.ack([got[0].tag])
    mosquitto.stop()
    with pytest.raises(BrokerError) as info:
        wait_for(lambda: broker.get(0.2) and False, timeout=5, what="the outage to surface")
    assert info.value.recoverable is True
    mosquitto.start()
    send(backend.open(), ex, ["while away"])
    reconnecting(broker.connect, lambda: None, "reconnect", attempts=5)
    again = take(broker, 3)
    assert sorted(bodies(again)) == [b"m001", b"m002", b"while away"]
    assert {d.body: d.redelivered for d in again} == {b"m001": True, b"m002": True,
                                                      b"while away": False}
    broker.ack([d.tag for d in again])
    assert broker.get(0.3) == []
    wrong = make_broker(mosquitto.url("alice").replace("alice@", "alice:not-it@"))
    with pytest.raises(BrokerError) as refused:
        wrong.connect()
    assert refused.value.recoverable is False
    assert "alice" in str(refused.value) and "not-it" not in str(refused.value)


def test_mqtt_instances_share_one_queue(mqtt_backend, monkeypatch):
    """Two instances of one configuration consume one queue ($share/<queue>/):
    each message goes to one of them, and both take part."""
    backend = mqtt_backend
    drivers = []
    for number in ("1", "2"):
        monkeypatch.setenv("SARRA_INSTANCE", number)
        d = backend.open(instances=2)
        ex, q = backend.exchange(), f"q_contract.{backend.unique}.shared"
        d.declare_queue(q)
        d.bind(q, ex, "v02.post.#")
        d.consume(q, 50)
        drivers.append(d)
    backend.queues.append(q)
    sent = numbered(40)
    send(backend.open(), ex, sent)
    got: list[list[bytes]] = [[], []]

    def all_in() -> bool:
        for i, d in enumerate(drivers):
            batch = d.get(0.05)
            got[i] += bodies(batch)
            d.ack([x.tag for x in batch])
        return len(got[0]) + len(got[1]) >= len(sent)

    wait_for(all_in, timeout=10, interval=0, what="the 40 messages")
    assert sorted(got[0] + got[1]) == encoded(sent)
    assert got[0] and got[1]
    for d in drivers:
        assert d.get(0.2) == []
