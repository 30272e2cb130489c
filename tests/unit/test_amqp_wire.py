"""What the AMQP driver writes to pika's transport (sarra/broker/amqp.py)."""
from sarra.broker.amqp import _Output


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
    out(([b"open"]))                       # not held: at once
    out.holding = True
    out([b"m1", b"h1", b"b1"])
    out([b"m2", b"h2"])
    out.holding = False
    assert impl.written == [b"open"]
    out.release()
    assert impl.written == [b"open", b"m1h1b1m2h2"]
    out.release()                          # nothing held: nothing written
    assert len(impl.written) == 2
    assert impl.bytes_sent == len(b"open" + b"m1h1b1m2h2") and impl.frames_sent == 6


def test_other_frames_release_what_is_held_first():
    impl = FakeImpl()
    out = _Output.install(impl)
    out.holding = True
    out([b"pub"])
    out.holding = False
    out([b"ack"])                          # an ack, a heartbeat, a close...
    assert impl.written == [b"pub", b"ack"]


def test_nothing_written_once_the_connection_is_closed():
    impl = FakeImpl()
    out = _Output.install(impl)
    out.holding = True
    out([b"pub"])
    impl.is_closed = True
    out.release()
    assert impl.written == []


def test_another_pika_is_left_alone():
    class Other:
        pass
    assert _Output.install(Other()) is None
