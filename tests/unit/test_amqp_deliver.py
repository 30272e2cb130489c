"""What the AMQP driver reads from pika's transport (sarra/broker/amqp.py:
_Input): the deliveries of the consuming channel decoded by the driver,
checked against what pika's own decoder makes of the same bytes (frames
encoded by pika, or by hand for the field types pika does not write);
every other frame handed to pika in the order of the wire; frames cut at
any byte; frame errors."""
import datetime
import decimal
import struct

import pika
import pika.channel
import pika.data
import pika.exceptions as px
import pika.frame
import pika.spec
import pytest
from hypothesis import given, settings, strategies as st

from sarra.broker.amqp import _Input

CH = 5                  # the consuming channel
TAG = "ctag1.abc"       # its consumer


class Params:
    frame_max = 131072


class FakeImpl:
    """What _Input uses of pika's Connection: the frames it would have
    processed are recorded."""

    def __init__(self, buffered: bytes = b""):
        self._frame_buffer = buffered
        self.bytes_received = self.frames_received = 0
        self.params = Params()
        self.processed: list = []

    def _on_data_available(self, data):       # replaced by install
        raise AssertionError("not installed")

    def _process_frame(self, frame) -> None:
        self.frames_received += 1
        self.processed.append(frame)


class FakeChannel:
    def __init__(self, number=CH):
        self.channel_number = number
        self._consumers = {TAG: None}
        self._cancelled: set = set()
        self.is_open = True


class Reader:
    """An installed _Input, what it delivered and woke."""

    def __init__(self, frame_max=131072, buffered=b""):
        self.impl = FakeImpl(buffered)
        self.impl.params.frame_max = frame_max
        self.delivered: list[tuple] = []
        self.woken = 0
        self.input = _Input.install(self.impl, lambda *d: self.delivered.append(d), self._wake)
        assert self.input is not None and self.impl._on_data_available is self.input
        self.channel = FakeChannel()
        self.input.consume(self.channel)

    def _wake(self, number):
        assert number < 0       # a request to end process_data_events, not a dispatch
        self.woken += 1

    def feed(self, *pieces: bytes) -> "Reader":
        for p in pieces:
            self.impl._on_data_available(p)
        return self

    def others(self) -> list[bytes]:
        """The frames handed to pika, as bytes again."""
        return [f.marshal() for f in self.impl.processed]


# -- frames as pika writes them --------------------------------------------------


def method(channel, m) -> bytes:
    return pika.frame.Method(channel, m).marshal()


def deliver(channel=CH, tag=TAG, delivery_tag=1, redelivered=False, exchange="xpublic",
            topic="v02.post.a", props=None, body=b"hello", body_max=131064) -> bytes:
    props = props if props is not None else pika.BasicProperties(
        content_type="text/plain", headers={"sum": "d,abc"})
    out = [method(channel, pika.spec.Basic.Deliver(tag, delivery_tag, redelivered, exchange,
                                                   topic)),
           pika.frame.Header(channel, len(body), props).marshal()]
    for start in range(0, len(body), body_max):
        out.append(pika.frame.Body(channel, body[start:start + body_max]).marshal())
    return b"".join(out)


def header_frame(channel, body_size, raw_props: bytes) -> bytes:
    """A content header of class 60 with properties encoded by hand."""
    payload = struct.pack(">HHQ", 60, 0, body_size) + raw_props
    return struct.pack(">BHI", 2, channel, len(payload)) + payload + b"\xce"


HEARTBEAT = pika.frame.Heartbeat().marshal()
ACK2 = method(2, pika.spec.Basic.Ack(7, True))               # a confirm, publish channel
CLOSE = method(CH, pika.spec.Channel.Close(406, "PRECONDITION_FAILED", 0, 0))
CANCEL = method(CH, pika.spec.Basic.Cancel(TAG))
QOS_OK = method(CH, pika.spec.Basic.QosOk())


def pika_decodes(stream: bytes, channel=CH) -> tuple[list[tuple], list[bytes]]:
    """What pika makes of ``stream``: the deliveries of ``channel`` in the
    driver's terms, and every other frame."""
    assembler = pika.channel.ContentFrameAssembler()
    deliveries, others, pos = [], [], 0
    while pos < len(stream):
        used, frame = pika.frame.decode_frame(stream[pos:])
        assert used, "a whole stream"
        raw = stream[pos:pos + used]
        pos += used
        content = frame.channel_number == channel and (
            isinstance(frame, (pika.frame.Header, pika.frame.Body)) or
            isinstance(frame, pika.frame.Method) and
            isinstance(frame.method, pika.spec.Basic.Deliver))
        if not content:
            others.append(raw)
            continue
        done = assembler.process(frame)
        if done:
            m, h, body = done
            deliveries.append((m.method.exchange, m.method.routing_key,
                               h.properties.headers or {}, body, h.properties.content_type,
                               m.method.delivery_tag, m.method.redelivered))
    return deliveries, others


def check(stream: bytes, cuts=()) -> Reader:
    """Feed ``stream`` cut at ``cuts``: what is delivered and handed to pika
    is what pika makes of it."""
    pieces, last = [], 0
    for c in sorted(set(cuts)):
        pieces.append(stream[last:c])
        last = c
    pieces.append(stream[last:])
    r = Reader().feed(*[p for p in pieces if p])
    want, others = pika_decodes(stream)
    assert r.delivered == want
    for got in r.delivered:                   # the same types too (str, not bytes)
        assert [type(v) for v in got] == [type(v) for v in want[r.delivered.index(got)]]
    assert r.others() == others
    assert r.impl.bytes_received == len(stream)
    assert r.impl.frames_received == len(others) + sum(
        1 for _ in _content_frames(stream))
    assert r.input._pieces == []
    return r


def _content_frames(stream):
    pos = 0
    while pos < len(stream):
        used, frame = pika.frame.decode_frame(stream[pos:])
        pos += used
        if frame.channel_number == CH and (
                isinstance(frame, (pika.frame.Header, pika.frame.Body)) or
                isinstance(getattr(frame, "method", None), pika.spec.Basic.Deliver)):
            yield frame


# -- every property, every field type ------------------------------------------

ALL_PROPS = pika.BasicProperties(
    content_type="application/json", content_encoding="gzip",
    headers={"sum": "s,1", "n": 5, "big": 2 ** 40, "neg": -3, "t": True, "f": False,
             "b": b"\x00raw\xff", "nested": {"k": "v", "deeper": {"x": [1, "y", None]}},
             "list": ["a", 1, 2 ** 40, {"in": "table"}, [], True],
             "dec": decimal.Decimal("3.14159"), "dec0": decimal.Decimal("42"),
             "when": datetime.datetime(2026, 12, 4, 18, 35, 37, tzinfo=datetime.timezone.utc),
             "none": None, "empty": "", "é": "ünïcödé ✓"},
    delivery_mode=2, priority=9, correlation_id="corr", reply_to="reply.q",
    expiration="60000", message_id="mid-1", timestamp=1764873337, type="t.y.p.e",
    user_id="guest", app_id="sarra", cluster_id="c1")


def test_every_property_set_and_every_type_pika_writes():
    r = check(deliver(props=ALL_PROPS, body=b"b" * 1000))
    exchange, topic, headers, body, ctype, tag, redelivered = r.delivered[0]
    assert ctype == "application/json" and headers["nested"]["deeper"] == {"x": [1, "y", None]}
    assert headers["when"].year == 2026 and headers["dec"] == decimal.Decimal("3.14159")


def raw_short(b: bytes) -> bytes:
    return bytes((len(b),)) + b


def raw_table(items: list[tuple[bytes, bytes]]) -> bytes:
    """A field table from (key, kind and encoded value) pairs."""
    data = b"".join(raw_short(k) + v for k, v in items)
    return struct.pack(">I", len(data)) + data


EVERY_KIND = [          # every field type of AMQP 0-9-1 and RabbitMQ's errata
    (b"t", b"t\x01"), (b"b", b"b" + struct.pack(">b", -5)), (b"B", b"B\xfe"),
    (b"U", b"U" + struct.pack(">h", -300)), (b"u", b"u" + struct.pack(">H", 65000)),
    (b"s", b"s" + struct.pack(">h", -2)),
    (b"I", b"I" + struct.pack(">i", -70000)), (b"i", b"i" + struct.pack(">I", 4000000000)),
    (b"L", b"L" + struct.pack(">q", -2 ** 60)), (b"l", b"l" + struct.pack(">q", 2 ** 62)),
    (b"f", b"f" + struct.pack(">f", 2.5)), (b"d", b"d" + struct.pack(">d", -1e300)),
    (b"D", b"D\x02" + struct.pack(">i", -31415)),
    (b"S", b"S" + struct.pack(">I", 3) + b"abc"),
    (b"Sbad", b"S" + struct.pack(">I", 2) + b"\xff\xfe"),          # not UTF-8: bytes
    (b"x", b"x" + struct.pack(">I", 4) + b"\x00\x01\x02\x03"),
    (b"A", b"A" + struct.pack(">I", 7) + b"t\x00b\x01V" + b"B\x07"),
    (b"T", b"T" + struct.pack(">Q", 1764873337)),
    (b"F", b"F" + raw_table([(b"in", b"S" + struct.pack(">I", 1) + b"z"),
                             (b"deep", b"F" + raw_table([(b"v", b"V")]))])),
    (b"V", b"V"),
    (b"\xffkey", b"S" + struct.pack(">I", 1) + b"k"),                # a key not UTF-8
]


def deliver_raw(props: bytes, body=b"body", channel=CH) -> bytes:
    return (method(channel, pika.spec.Basic.Deliver(TAG, 3, True, "xs_u", "v03.x")) +
            header_frame(channel, len(body), props) +
            (pika.frame.Body(channel, body).marshal() if body else b""))


@pytest.mark.parametrize("kind", range(len(EVERY_KIND)), ids=[k.decode("latin-1")
                                                               for k, _ in EVERY_KIND])
def test_each_field_type_as_pika_decodes_it(kind):
    items = [(b"sum", b"S" + struct.pack(">I", 3) + b"d,1"), EVERY_KIND[kind],
             (b"after", b"S" + struct.pack(">I", 2) + b"ok")]
    props = struct.pack(">H", 0x8000 | 0x2000) + raw_short(b"text/plain") + raw_table(items)
    check(deliver_raw(props))


def test_every_field_type_in_one_table():
    props = struct.pack(">H", 0x2000) + raw_table(EVERY_KIND)
    r = check(deliver_raw(props))
    assert r.delivered[0][4] is None
    assert r.delivered[0][2][b"\xffkey"] == "k" and r.delivered[0][2]["Sbad"] == b"\xff\xfe"


@pytest.mark.parametrize("flags", [0, 0x8000, 0x4000, 0x2000, 0x8000 | 0x4000, 0x4000 | 0x2000,
                                   0xfffc, 0x2000 | 0x1000 | 0x0040])
def test_property_flags_in_order(flags):
    """The properties present in any combination (content_encoding lies
    between content_type and the headers)."""
    values = dict(content_type="text/plain", content_encoding="utf-8",
                  headers={"sum": "d,1", "n": 1}, delivery_mode=2, priority=1,
                  correlation_id="c", reply_to="r", expiration="1", message_id="m",
                  timestamp=5, type="t", user_id="u", app_id="a", cluster_id="cl")
    names = ["content_type", "content_encoding", "headers", "delivery_mode", "priority",
             "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
             "user_id", "app_id", "cluster_id"]
    chosen = {n: values[n] for i, n in enumerate(names) if flags & (1 << (15 - i))}
    check(deliver(props=pika.BasicProperties(**chosen)))


def test_more_property_flag_words_are_skipped():
    """A flags word ending in bit 0 is followed by another (none defined for
    class 60 in 0-9-1; pika reads past them)."""
    props = (struct.pack(">HHH", 0x8000 | 0x2000 | 1, 0x0001, 0x0000) + raw_short(b"a/b") +
             raw_table([(b"k", b"S" + struct.pack(">I", 1) + b"v")]))
    r = check(deliver_raw(props))
    assert r.delivered[0][2] == {"k": "v"} and r.delivered[0][4] == "a/b"


def test_names_not_utf8_are_bytes_as_pika_gives_them():
    stream = (method(CH, pika.spec.Basic.Deliver(TAG, 9, False, "x", "y")).replace(
        b"\x01x\x01y", b"\x01\xff\x01\xfe") +
              pika.frame.Header(CH, 1, pika.BasicProperties()).marshal() +
              pika.frame.Body(CH, b"z").marshal())
    r = check(stream)
    assert r.delivered[0][:2] == (b"\xff", b"\xfe")


# -- frames cut anywhere, bodies in frames, other channels -----------------------

STREAM = b"".join([
    HEARTBEAT,
    QOS_OK,
    deliver(delivery_tag=1),
    ACK2,
    deliver(delivery_tag=2, body=b""),                                   # empty body
    deliver(delivery_tag=3, redelivered=True, body=bytes(range(256)) * 9,
            body_max=1000, props=ALL_PROPS),                              # 3 body frames
    method(2, pika.spec.Basic.Nack(8, False, True)),
    deliver(channel=9, delivery_tag=4),                                   # another channel's
    deliver(delivery_tag=5, props=pika.BasicProperties()),                # no properties
    HEARTBEAT,
    CLOSE,
])


def test_a_stream_in_one_piece():
    r = check(STREAM)
    assert [d[5] for d in r.delivered] == [1, 2, 3, 5]
    assert r.delivered[1][3] == b"" and r.delivered[2][6] is True
    assert r.woken == 1


def test_cut_at_every_byte():
    for cut in range(1, len(STREAM)):
        check(STREAM, [cut])


def test_one_byte_at_a_time():
    r = check(STREAM, range(1, len(STREAM)))
    assert r.woken == 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, len(STREAM) - 1), max_size=30))
def test_cut_anywhere(cuts):
    check(STREAM, cuts)


def test_other_channels_between_the_frames_of_a_delivery():
    d = deliver(delivery_tag=6, body=b"abcdefghij" * 30, body_max=100)
    frames, pos = [], 0
    while pos < len(d):
        used, _ = pika.frame.decode_frame(d[pos:])
        frames.append(d[pos:pos + used])
        pos += used
    stream = b"".join(f + HEARTBEAT + ACK2 + deliver(channel=9) for f in frames)
    r = check(stream)
    assert len(r.delivered) == 1 and len(r.others()) == 5 * len(frames)   # 2 + 3 each


def test_waiting_for_a_big_frame_joins_once():
    body = b"q" * 131064
    stream = deliver(body=body)
    r = Reader()
    for start in range(0, len(stream), 4096):
        r.feed(stream[start:start + 4096])
        if start + 4096 < len(stream) - 200:
            assert len(r.input._pieces) > 1 or start == 0    # pieces, not a growing copy
    assert r.delivered[0][3] == body


def test_a_cancelled_or_unknown_consumer_is_pikas():
    r = Reader()
    r.channel._cancelled.add(TAG)
    stream = deliver(delivery_tag=1) + deliver(tag="other", delivery_tag=2)
    r.feed(stream)
    assert r.delivered == [] and b"".join(r.others()) == stream


def test_a_closed_consuming_channel_delivers_nothing():
    r = Reader()
    d = deliver(body=b"x" * 50)
    r.feed(d[:-20])
    r.channel.is_open = False           # closed while its content came
    r.feed(d[-20:])
    assert r.delivered == [] and r.others() == []
    r.input.consume(None)               # not consuming: everything is pika's
    r.feed(deliver(delivery_tag=2))
    assert r.delivered == [] and len(r.others()) == 3


def test_a_method_cuts_a_delivery_short():
    d = deliver(delivery_tag=1, body=b"x" * 300, body_max=100)
    cut = d.index(pika.frame.Body(CH, b"x" * 100).marshal()) + 108   # after one body frame
    r = Reader().feed(d[:cut], CANCEL, deliver(delivery_tag=2))
    assert [x[5] for x in r.delivered] == [2] and r.others() == [CANCEL]


def test_the_buffer_pika_had_is_taken_over():
    stream = deliver(delivery_tag=4)
    r = Reader(buffered=stream[:10]).feed(stream[10:])
    assert [d[5] for d in r.delivered] == [4]


def test_another_pika_is_left_alone():
    class Other:
        pass
    assert _Input.install(Other(), None, None) is None


# -- frame errors --------------------------------------------------------------


def test_a_bad_frame_end_raises_and_stays_raised():
    bad = bytearray(deliver())
    bad[len(method(CH, pika.spec.Basic.Deliver(TAG, 1, False, "xpublic", "v02.post.a"))) - 1] = 0
    r = Reader()
    with pytest.raises(px.InvalidFrameError):
        r.feed(bytes(bad))
    with pytest.raises(px.InvalidFrameError):      # never read on past it
        r.feed(HEARTBEAT)
    assert r.delivered == []


def test_a_frame_beyond_frame_max_raises_before_it_is_read():
    r = Reader(frame_max=4096)
    with pytest.raises(px.InvalidFrameError, match="frame_max"):
        r.feed(struct.pack(">BHI", 3, CH, 4089) + b"x" * 100)     # 4097 bytes in all
    r = Reader(frame_max=4096)
    huge = struct.pack(">BHI", 3, CH, 2 ** 31)
    r.feed(huge[:5])                                              # its header cut
    with pytest.raises(px.InvalidFrameError, match="frame_max"):
        r.feed(huge[5:])                                          # no payload yet
    check_ok = Reader(frame_max=4096).feed(deliver(body=b"y" * 4088, body_max=4088))
    assert check_ok.delivered[0][3] == b"y" * 4088


def test_an_unknown_frame_type_raises():
    with pytest.raises(px.InvalidFrameError, match="type"):
        Reader().feed(struct.pack(">BHI", 4, 0, 0) + b"\xce")


@pytest.mark.parametrize("damage", ["long body", "header class", "table size", "deliver"])
def test_a_malformed_delivery_raises(damage):
    r = Reader()
    if damage == "long body":
        stream = (method(CH, pika.spec.Basic.Deliver(TAG, 1, False, "x", "y")) +
                  pika.frame.Header(CH, 2, pika.BasicProperties()).marshal() +
                  pika.frame.Body(CH, b"abc").marshal())
    elif damage == "header class":
        stream = (method(CH, pika.spec.Basic.Deliver(TAG, 1, False, "x", "y")) +
                  pika.frame.Header(CH, 2, pika.BasicProperties()).marshal().replace(
                      b"\x00\x3c", b"\x00\x3d", 1))
    elif damage == "table size":
        stream = deliver_raw(struct.pack(">H", 0x2000) + struct.pack(">I", 50) + b"\x01kS")
    else:
        m = method(CH, pika.spec.Basic.Deliver(TAG, 1, False, "x", "y"))
        stream = m[:-3] + b"\x09" + m[-2:]          # the topic's length beyond the frame
    with pytest.raises((px.InvalidFrameError, px.BodyTooLongError)):
        r.feed(stream)
    assert r.delivered == []


# -- random messages -----------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
short = text.filter(lambda s: len(s.encode()) < 256)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1) | text | st.binary(max_size=20)
    | st.datetimes(min_value=datetime.datetime(1970, 1, 2), timezones=st.just(datetime.timezone.utc)).map(
        lambda d: d.replace(microsecond=0))
    | st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10 ** 5,
                  max_value=10 ** 5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=80, deadline=None)
@given(exchange=short, topic=short, tag=st.integers(1, 2 ** 64 - 1), redelivered=st.booleans(),
       content_type=st.none() | short, encoding=st.none() | short,
       headers=st.none() | st.dictionaries(short, text, max_size=10) |
       st.dictionaries(short, values, max_size=6),
       expiration=st.none() | short, body=st.binary(max_size=2500),
       body_max=st.integers(1, 1200), cut=st.integers(0, 10 ** 6))
def test_any_delivery_as_pika_decodes_it(exchange, topic, tag, redelivered, content_type,
                                         encoding, headers, expiration, body, body_max, cut):
    props = pika.BasicProperties(content_type=content_type, content_encoding=encoding,
                                 headers=headers, expiration=expiration, delivery_mode=2)
    stream = (HEARTBEAT + deliver(delivery_tag=tag, redelivered=redelivered, exchange=exchange,
                                  topic=topic, props=props, body=body, body_max=body_max) +
              ACK2)
    check(stream, [cut % len(stream)] if cut % len(stream) else [])


def test_a_protocol_header_is_pikas():
    """What a broker sends instead of Connection.Start when it speaks another
    version: pika's to read, even cut."""
    r = Reader().feed(b"AMQP\x00\x00\x09", b"\x01" + HEARTBEAT)
    assert isinstance(r.impl.processed[0], pika.frame.ProtocolHeader)
    assert isinstance(r.impl.processed[1], pika.frame.Heartbeat)
