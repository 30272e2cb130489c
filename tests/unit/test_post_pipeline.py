"""dd_post's batches are pipelined (flow/engine.py, BEHIND): a batch's
confirms come while the next batches are made and published. A batch is
counted (and its progress shown) only once the broker confirmed it, and a
lost connection posts again every batch not confirmed."""
import itertools

import pytest

from sarra import components, tools
from sarra.broker import memory
from sarra.broker.memory import MemoryBroker
from sarra.config import load_config
from sarra.errors import BrokerError
from sarra.flow import engine
from sarra.flow.engine import BEHIND

BATCH = 256          # PathSource's batch


@pytest.fixture
def tree(tmp_path, request):
    """2,000 small files, an exchange and a queue bound to it (memory broker)."""
    name = f"pipeline-{request.node.name}"
    memory.reset(name)
    src = tmp_path / "src"
    for d in range(8):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(250):
            (src / f"d{d}" / f"f{f:03d}").write_bytes(b"%d %d" % (d, f))
    b = MemoryBroker(f"memory://{name}/")
    b.connect()
    b.declare_exchange("xp")
    b.declare_queue("q")
    b.bind("q", "xp", "#")
    yield name, src, b
    memory.reset(name)


def post_flow(name, src, on_batch=None):
    cfg = load_config("post", None, [("post_broker", f"memory://{name}/"),
                                     ("post_exchange", "xp"),
                                     ("post_base_url", "http://data.example/"),
                                     ("post_base_dir", str(src))], tools.tool("post").presets)
    return components.flow_for("post", cfg, targets=[str(src)], on_batch=on_batch)


def queued(b: MemoryBroker) -> list[str]:
    b.consume("q", 100000)
    return [d.body.split()[2] for d in b.get(0)]


@pytest.fixture
def flushes(monkeypatch):
    """Each flush of the memory broker: how many messages it confirmed
    (published before the last ``leave``)."""
    seen: list[int] = []
    real = MemoryBroker.flush

    def flush(self, timeout=60.0, leave=0):
        seen.append(self.published - leave)
        return real(self, timeout, leave)
    monkeypatch.setattr(MemoryBroker, "flush", flush)
    return seen


def test_a_batch_is_counted_once_confirmed_while_later_ones_are_published(tree, flushes):
    name, src, b = tree
    shown: list[tuple[int, int]] = []        # (posted, published) at each progress
    flow = post_flow(name, src, lambda f: shown.append(
        (f.stats["posted"], f.poster.broker.published)))
    assert flow.pipelined
    flow.run()
    assert flow.stats["posted"] == 2000
    # confirms waited for while later batches were out: the first batch
    # was concluded when BEHIND more had been published
    assert shown[0] == (BATCH, (BEHIND + 1) * BATCH)
    for (posted, _), confirmed in zip(shown, flushes):
        assert posted <= confirmed          # nothing counted before its confirm
    assert [p for p, _ in shown] == [min(2000, BATCH * (i + 1)) for i in range(len(shown))]
    got = queued(b)
    assert len(got) == 2000 and len(set(got)) == 2000


def test_a_lost_connection_posts_every_batch_not_confirmed_again(tree, monkeypatch):
    name, src, b = tree
    real = MemoryBroker.flush
    calls = itertools.count()

    def flush(self, timeout=60.0, leave=0):
        if next(calls) == 1:        # the second batch's confirms never come
            raise BrokerError("connection lost", recoverable=True)
        return real(self, timeout, leave)
    monkeypatch.setattr(MemoryBroker, "flush", flush)
    monkeypatch.setattr(engine.time, "sleep", lambda s: None)     # the reconnection's pause
    flow = post_flow(name, src)
    flow.run()
    assert flow.stats["posted"] == 2000       # each counted once, when confirmed
    got = queued(b)
    # the first batch was confirmed; the BEHIND + 1 after it were out when
    # the connection was lost, and are posted again: at least once each
    assert len(set(got)) == 2000
    assert len(got) == 2000 + (BEHIND + 1) * BATCH
