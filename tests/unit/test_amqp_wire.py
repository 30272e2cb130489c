"""What the AMQP driver writes to pika's transport (sarra/broker/amqp.py):
published messages held and written as one piece per turn of the I/O loop
(_Output), each encoded by publish_frames, byte for byte what pika's
Channel.basic_publish writes for the same message."""
import pika
import pika.channel
import pika.connection
import pytest
from hypothesis import given, settings, strategies as st

from sarra.broker.amqp import _Output, publish_frames


class FakeImpl:
    """The two things of pika's Connection that _Output uses."""

    def __init__(self):
        self.written: list[bytes] = []
        self.bytes_sent = self.frames_sent = 0
        self.is_closed = False

    def _adapter_emit_data(self, data: bytes) -> None:
        self.written.append(data)

    def _output_marshaled_frames(self, frames) -> None:   # replaced by install
        raise AssertionError("not installed")


def test_held_publishes_go_as_one_piece_in_order():
    impl = FakeImpl()
    out = _Output.install(impl)
    assert impl._output_marshaled_frames is out
    out([b"open", b"ok"])                  # pika's own frames: at once, as one piece
    out.hold(b"m1h1b1")                    # published messages: held
    out.hold(b"m2h2")
    assert impl.written == [b"openok"]
    out.release()
    assert impl.written == [b"openok", b"m1h1b1m2h2"]
    out.release()                          # nothing held: nothing written
    assert len(impl.written) == 2
    assert impl.bytes_sent == len(b"openok" + b"m1h1b1m2h2") and impl.frames_sent == 2


def test_other_frames_release_what_is_held_first():
    impl = FakeImpl()
    out = _Output.install(impl)
    out.hold(b"pub")
    out([b"ack"])                          # an ack, a heartbeat, a close...
    assert impl.written == [b"pub", b"ack"]


def test_nothing_written_once_the_connection_is_closed():
    impl = FakeImpl()
    out = _Output.install(impl)
    out.hold(b"pub")
    impl.is_closed = True
    out.release()
    assert impl.written == []


def test_another_pika_is_left_alone():
    class Other:
        pass
    assert _Output.install(Other()) is None


# -- basic.publish as bytes, against pika's own encoding -----------------------


class _PikaConnection:
    """Just enough of a pika Connection for its own _send_method to run."""

    def __init__(self, body_max: int):
        self._body_max_length = body_max
        self.written: list[bytes] = []

    def _output_marshaled_frames(self, frames) -> None:
        self.written.extend(frames)

    _send_method = pika.connection.Connection._send_method
    _send_message = pika.connection.Connection._send_message
    _send_frame = pika.connection.Connection._send_frame
    is_closed = False


class _PikaChannel:
    """Just enough of a pika Channel for its own basic_publish to run."""

    def __init__(self, number: int, conn: _PikaConnection):
        self.channel_number = number
        self.connection = conn

    def _raise_if_not_open(self) -> None:
        pass

    def _send_method(self, method, content=None) -> None:
        self.connection._send_method(self.channel_number, method, content)

    basic_publish = pika.channel.Channel.basic_publish


def pika_bytes(channel, exchange, topic, body, content_type, headers, delivery_mode,
               expiration, mandatory, body_max) -> bytes:
    conn = _PikaConnection(body_max)
    props = pika.BasicProperties(content_type=content_type, headers=headers,
                                 delivery_mode=delivery_mode, expiration=expiration)
    _PikaChannel(channel, conn).basic_publish(exchange, topic, body, props,
                                              mandatory=mandatory)
    return b"".join(conn.written)


V02_HEADERS = {     # what a v02 post carries: strings, some of them long
    "sum": "s,8f4b5b7a0c" + "ab" * 60,
    "parts": "1,1024,1,0,0",
    "mtime": "20261204183537.123456789",
    "atime": "20261204183537.123",
    "mode": "644",
    "source": "guest",
    "to_clusters": "DDSR.CMC,DDI.CMC",
    "from_cluster": "here",
    "link": "../" * 80 + "x",                   # 241 bytes
    "été": "ünïcödé ✓ 日本",
}

CASES = [
    # (channel, exchange, topic, body, content_type, headers, delivery_mode,
    #  expiration, mandatory, frame body max)
    (2, "xs_guest", "v02.post.d00", "20261204183537.123 http://x/ d00/f000000.dat",
     "text/plain", V02_HEADERS, 2, None, True, 131064),
    (1, "xpublic", "v02.post.a.b", b"20261204183537.123 http://x/ a/b/c",
     "text/plain", {"sum": "d,abc", "parts": "1,1,1,0,0"}, 1, "60000", False, 131064),
    (7, "", "", b"", None, None, None, None, False, 4088),                 # nothing set
    (3, "x" * 255, "t." * 127 + "t", "é" * 100, "application/json", {}, 2, "1", True, 4088),
    (65535, "xs_u", "v03.post.x", "b" * 10000, "application/json",      # body in frames
     {"sum": "s,1"}, 2, None, False, 4088),
    (2, "xs_u", "v03", "b" * 8176, "text/plain", None, 2, None, False, 4088),  # 2 exact frames
    (2, "xs_u", "v03", "é" * 3000, "text/plain", None, 2, None, False, 1001),  # split in a char
    (2, "xs_u", "v02.post", b"x",
     "text/plain", {"n": 5, "big": 2 ** 40, "t": True, "b": b"raw", "f": {"k": "v"},
                    "l": ["a", 1], "none": None}, 2, None, True, 131064),  # other types: pika's
    (2, "xs_u", "v02.post", b"x", "text/plain", {"k" * 255: "v" * 70000}, 2, None, False, 131064),
]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_publish_frames_are_pikas_bytes(case):
    assert publish_frames(*case) == pika_bytes(*case)


@pytest.mark.parametrize("field", ["exchange", "topic", "content_type", "key", "expiration"])
def test_over_255_bytes_refused_as_pika_does(field):
    long = "é" * 128                       # 256 bytes
    args = dict(channel=1, exchange="x", routing_key="t", body=b"b", content_type="text/plain",
                headers={"sum": "s,1"}, delivery_mode=2, expiration=None, mandatory=False,
                body_max=131064)
    if field == "exchange":
        args["exchange"] = long
    elif field == "topic":
        args["routing_key"] = long
    elif field == "content_type":
        args["content_type"] = long
    elif field == "key":
        args["headers"] = {long: "v"}
    else:
        args["expiration"] = long
    with pytest.raises(pika.exceptions.ShortStringTooLong):
        publish_frames(**args)
    pika_args = dict(args)
    topic = pika_args.pop("routing_key")
    with pytest.raises(pika.exceptions.ShortStringTooLong):
        pika_bytes(pika_args["channel"], pika_args["exchange"], topic, pika_args["body"],
                   pika_args["content_type"], pika_args["headers"], pika_args["delivery_mode"],
                   pika_args["expiration"], pika_args["mandatory"], pika_args["body_max"])


def test_a_lone_surrogate_is_refused_as_pika_does():
    args = (1, "x", "t", b"b", "text/plain", {"sum": "\udcff"}, 2, None, False, 131064)
    with pytest.raises(UnicodeEncodeError):
        publish_frames(*args)
    with pytest.raises(UnicodeEncodeError):
        pika_bytes(*args)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
short = st.text(st.characters(blacklist_categories=("Cs",)), max_size=90)   # some over 255 bytes


@settings(max_examples=100, deadline=None)
@given(channel=st.integers(1, 65535), exchange=short, topic=short,
       body=st.binary(max_size=3000) | st.text(max_size=1500),
       content_type=st.none() | short, headers=st.none() | st.dictionaries(short, text, max_size=12),
       mode=st.none() | st.sampled_from([1, 2]),
       expiration=st.none() | st.integers(1, 10**9).map(str),
       mandatory=st.booleans(), body_max=st.integers(1, 4096))
def test_any_message_is_pikas_bytes(channel, exchange, topic, body, content_type, headers,
                                    mode, expiration, mandatory, body_max):
    args = (channel, exchange, topic, body, content_type, headers, mode, expiration,
            mandatory, body_max)
    try:
        want = pika_bytes(*args)
    except Exception as exc:                # pika refuses it: so do we
        with pytest.raises(type(exc)):
            publish_frames(*args)
        return
    assert publish_frames(*args) == want
