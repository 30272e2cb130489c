"""The log router's exchanges named after a message's source (Publisher with
``post_exchange xreport,xr_${SOURCE}``): never declared, only used when they
exist (dd_audit declared them for the switch's sources); a message naming
any other source is published nowhere. In-memory broker."""
from __future__ import annotations

import pytest

from sarra.broker import memory
from sarra.broker.memory import MemoryBroker
from sarra.errors import BrokerError, MessageError
from sarra.flow import publish
from sarra.flow.publish import Publisher
from sarra.message import Message, Report


@pytest.fixture
def space(request):
    name = f"routing-{request.node.name}"
    memory.reset(name)
    sp = memory.space(name)
    with sp.lock:
        sp.exchanges |= {"xr_alice"}          # what dd_audit declared
    yield name, sp
    memory.reset(name)


def router(space_name: str, home: str | None = "lab1") -> Publisher:
    broker = MemoryBroker(f"memory://{space_name}/")
    broker.connect()
    pub = Publisher(broker, "xreport,xr_${SOURCE}", "v02.report", home=home)
    pub.declare()
    return pub


def log_message(source: str, from_cluster: str = "lab1") -> Message:
    msg = Message("20261125120000.000", "http://switch.example.com/", f"{source}/a.dat",
                  {"sum": "d,00", "source": source, "from_cluster": from_cluster})
    msg.report = Report(201, "carol.example.com", "carol", 0.1, "Downloaded")
    return msg


def watch(sp, *exchanges: str) -> dict[str, str]:
    """A queue bound to each exchange (when it exists): exchange -> queue."""
    out = {}
    with sp.lock:
        for ex in exchanges:
            q = f"q_{ex}"
            sp.queues[q] = memory.deque()
            sp.bindings.append((ex, "#", q))
            out[ex] = q
    return out


def test_a_source_with_an_exchange_gets_its_log_messages(space):
    name, sp = space
    queues = watch(sp, "xreport", "xr_alice")
    pub = router(name)
    pub.publish(log_message("alice"))
    pub.flush()
    assert {ex: len(sp.queues[q]) for ex, q in queues.items()} == {"xreport": 1,
                                                                   "xr_alice": 1}


@pytest.mark.parametrize("source", ["evil", "carol2", "xreport"])
def test_a_source_without_an_exchange_is_published_nowhere(space, source):
    name, sp = space
    queues = watch(sp, "xreport", "xr_alice")
    pub = router(name)
    before = set(sp.exchanges)
    with pytest.raises(MessageError, match=f"no exchange xr_{source}: '{source}' is not a "
                                           "source of this switch"):
        pub.publish(log_message(source))
    assert sp.exchanges == before                       # nothing declared
    assert f"xr_{source}" not in sp.exchanges
    assert all(len(sp.queues[q]) == 0 for q in queues.values())   # not even xreport
    assert pub.count == 0
    pub.publish(log_message("alice"))                   # the next one goes on
    assert [len(sp.queues[q]) for q in queues.values()] == [1, 1]


def test_data_from_elsewhere_goes_to_xreport_only(space):
    name, sp = space
    queues = watch(sp, "xreport", "xr_alice")
    pub = router(name)
    pub.publish(log_message("evil", from_cluster="lab2"))   # its own switch's business
    assert [len(sp.queues[q]) for q in queues.values()] == [1, 0]


def test_a_source_added_later_is_found_and_one_removed_is_dropped(space, monkeypatch):
    """What was found (or not) is checked again after SOURCE_CHECK_TTL, and
    at each (re)connection: add-user and remove-user need no restart."""
    name, sp = space
    clock = [1000.0]
    monkeypatch.setattr(publish.time, "monotonic", lambda: clock[0])
    pub = router(name)
    with pytest.raises(MessageError):
        pub.publish(log_message("dave"))
    with sp.lock:
        sp.exchanges.add("xr_dave")                     # dd_audit add-user dave source
    with pytest.raises(MessageError):                   # still remembered as missing
        pub.publish(log_message("dave"))
    clock[0] += publish.SOURCE_CHECK_TTL + 1
    pub.publish(log_message("dave"))
    with sp.lock:
        sp.exchanges.discard("xr_dave")                 # dd_audit remove-user dave
    pub.declare()                                       # a reconnection: checked anew
    with pytest.raises(MessageError):
        pub.publish(log_message("dave"))


def test_made_up_names_are_not_remembered_without_bound(space):
    name, _sp = space
    pub = router(name)
    for i in range(publish.SOURCE_CHECK_MAX + 10):
        with pytest.raises(MessageError):
            pub.publish(log_message(f"x{i}"))
    assert len(pub._checked) <= publish.SOURCE_CHECK_MAX


class _Gone:
    """A broker whose publish channel was closed: the exchange was deleted."""

    def __init__(self, text: str, recoverable: bool = False):
        self.text, self.recoverable = text, recoverable

    def flush(self, timeout: float, leave: int = 0) -> None:
        raise BrokerError(self.text, self.recoverable)


def test_an_exchange_deleted_under_the_router_means_the_batch_again():
    gone = "broker closed the channel: 404 NOT_FOUND - no exchange 'xr_dave' in vhost '/'"
    pub = Publisher(_Gone(gone), "xreport,xr_${SOURCE}", "v02.report")
    with pytest.raises(BrokerError) as err:
        pub.flush()
    assert err.value.recoverable and "checked again" in str(err.value)
    # anything else is what it was
    refused = Publisher(_Gone("403 ACCESS_REFUSED"), "xreport,xr_${SOURCE}", "v02.report")
    with pytest.raises(BrokerError) as err:
        refused.flush()
    assert not err.value.recoverable
    fixed = Publisher(_Gone(gone), "xpublic", "v02.post")
    with pytest.raises(BrokerError) as err:
        fixed.flush()
    assert not err.value.recoverable
