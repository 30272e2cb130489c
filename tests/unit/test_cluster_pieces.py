"""The pieces of cluster support that need no broker: lists of broker URLs,
the failover between nodes, queue types refused before they reach a broker,
replay_from, and the stream position."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sarra.broker import make_broker
from sarra.broker.amqp import queue_arguments
from sarra.broker.base import Delivery
from sarra.broker.failover import FailoverBroker
from sarra.config import load_config
from sarra.errors import BrokerError, ConfigError
from sarra.flow.stream import Position, parse_replay_from


class FakeNode:
    """A node that answers or not; records what it was asked."""

    def __init__(self, name: str, up: bool = True, refuse: bool = False):
        self.name, self.up, self.refuse = name, up, refuse
        self.acked: list = []
        self.closed = 0

    def connect(self):
        if self.refuse:
            raise BrokerError(f"{self.name}: login refused", recoverable=False)
        if not self.up:
            raise BrokerError(f"{self.name}: connection refused", recoverable=True)

    def close(self):
        self.closed += 1

    def get(self, timeout):
        return [Delivery("x", "v02.post.a", {}, b"", None, 7)]

    def ack(self, tags):
        self.acked.extend(tags)


def test_failover_uses_the_first_node_that_answers_then_the_next_on_reconnect(caplog):
    caplog.set_level("INFO", "sarra.broker.failover")
    a, b, c = FakeNode("a", up=False), FakeNode("b"), FakeNode("c")
    broker = FailoverBroker([a, b, c])
    broker.connect()
    assert broker.node is b
    assert "a does not answer" in caplog.text and "trying b" in caplog.text
    assert "using broker node b (2 of 3)" in caplog.text
    broker.connect()                    # the connection to b was lost
    assert broker.node is c and b.closed == 1
    broker.connect()                    # round the list: a is still down
    assert broker.node is b


def test_failover_with_every_node_down_is_recoverable_and_names_them():
    broker = FailoverBroker([FakeNode("a", up=False), FakeNode("b", up=False)])
    with pytest.raises(BrokerError) as err:
        broker.connect()
    assert err.value.recoverable
    assert "no node of a,b answers" in str(err.value)


def test_a_refused_login_stops_the_failover_at_once():
    c = FakeNode("c")
    with pytest.raises(BrokerError) as err:
        FailoverBroker([FakeNode("a", refuse=True), c]).connect()
    assert not err.value.recoverable and "login refused" in str(err.value)


def test_delivery_tags_never_reach_another_node():
    a, b = FakeNode("a"), FakeNode("b")
    broker = FailoverBroker([a, b])
    broker.connect()
    tag_from_a = broker.get(0)[0].tag
    broker.connect()                    # now on b, whose deliveries are numbered 1.. too
    tag_from_b = broker.get(0)[0].tag
    assert tag_from_a != tag_from_b
    broker.ack([tag_from_a, tag_from_b])
    assert a.acked == [] and b.acked == [7]


def test_one_url_is_a_plain_driver_several_a_failover(tmp_path):
    assert not isinstance(make_broker(["memory://x"]), FailoverBroker)
    both = make_broker(["memory://x", "memory://y"])
    assert isinstance(both, FailoverBroker) and both.name == "memory://x,memory://y"


def _cfg(tmp_path, monkeypatch, text: str, tool: str = "subscribe"):
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "credentials.conf").write_text(
        "amqp://alice:pw1@node1/\namqp://alice:pw2@node2:5673/\n")
    (tmp_path / tool).mkdir(exist_ok=True)
    (tmp_path / tool / "c.conf").write_text(text)
    return load_config(tool, "c")


def test_a_list_of_brokers_gets_each_password_and_the_first_user(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, monkeypatch,
               "broker amqp://alice@node1/, amqp://alice@node2:5673/\n")
    assert cfg.broker == "amqp://alice@node1/,amqp://alice@node2:5673/"
    assert cfg.resolve_urls("broker") == ["amqp://alice:pw1@node1/",
                                          "amqp://alice:pw2@node2:5673/"]
    assert cfg.resolve_url("broker") == "amqp://alice:pw1@node1/"


def test_a_list_with_an_empty_address_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, monkeypatch, "broker amqp://alice@node1/,,amqp://alice@node2/\n")
    assert "empty address" in str(err.value) and "c.conf" in str(err.value)


@pytest.mark.parametrize("args, message", [
    ((False, 0, 0, "quorum"), "always durable"),
    ((True, 300, 0, "stream"), "does not expire"),
    ((True, 0, 60, "stream"), "does not expire"),
    ((True, 0, 0, "lazy"), "one of classic, quorum, stream"),
])
def test_queue_options_a_queue_type_does_not_support_are_refused(args, message):
    with pytest.raises(ConfigError) as err:
        queue_arguments(*args)
    assert message in str(err.value)


def test_queue_arguments_of_each_type():
    assert queue_arguments(True, 300, 0) == {"x-expires": 300000}
    assert queue_arguments(True, 300, 60, "quorum") == {
        "x-queue-type": "quorum", "x-expires": 300000, "x-message-ttl": 60000}
    assert queue_arguments(True, 0, 0, "stream") == {"x-queue-type": "stream"}


def test_replay_from_values():
    now = 1_800_000_000.0
    assert parse_replay_from("first") == "first"
    assert parse_replay_from("NEXT") == "next"
    assert parse_replay_from("1234") == 1234
    assert parse_replay_from("1h", now) == datetime.fromtimestamp(now - 3600, timezone.utc)
    assert parse_replay_from("2026-12-03T10:00:00Z") == datetime(2026, 12, 3, 10,
                                                                tzinfo=timezone.utc)
    assert parse_replay_from("2026-12-03T10:00:00").tzinfo == timezone.utc
    with pytest.raises(ConfigError) as err:
        parse_replay_from("yesterday")
    assert err.value.option == "replay_from"


def test_replay_from_without_a_stream_is_refused(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, monkeypatch, "broker amqp://alice@node1/\nreplay_from 1h\n")
    from sarra.flow.gather import BrokerSource
    with pytest.raises(ConfigError) as err:
        BrokerSource(cfg, "subscribe")
    assert "reads a stream" in str(err.value)


def test_the_position_moves_over_settled_runs_only_and_survives(tmp_path):
    path = str(tmp_path / "stream.00.offset")
    pos = Position(path)
    assert pos.resume("first") == "first"
    for o in range(10, 15):
        pos.delivered(o)
    pos.settle([10, 11, 13])
    assert pos.settled == 11            # 12 is not done: 13 waits behind it
    pos.settle([12])
    assert pos.settled == 13
    assert Position(path).resume("first") == 14
    pos.forget()                        # a lost channel: 14 comes again
    pos.delivered(14)
    pos.settle([14])
    assert Position(path).settled == 14


def test_a_garbled_position_file_falls_back_to_replay_from(tmp_path, caplog):
    path = tmp_path / "stream.00.offset"
    path.write_text("not a number")
    assert Position(str(path)).resume("last") == "last"
    assert "not an offset" in caplog.text


def test_a_replay_from_that_is_no_time_nor_offset_exits_2_naming_the_option(tmp_path):
    from tests.helpers import run_tool
    conf = tmp_path / "config"
    (conf / "subscribe").mkdir(parents=True)
    (conf / "subscribe" / "r.conf").write_text(
        "broker amqp://guest@127.0.0.1/\nstream xpublic_stream\nreplay_from yesterday\n")
    res = run_tool("subscribe", "foreground", "r", check=False, timeout=30,
                   env={"SARRA_CONFIG_DIR": str(conf), "SARRA_STATE_DIR": str(tmp_path / "s")})
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "replay_from" in res.stderr and "'yesterday'" in res.stderr, res.stderr
