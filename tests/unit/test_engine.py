"""The engine's rules, driven through Flow.step and Flow.run over the
in-memory broker (real topic matching, redelivery of what was not
acknowledged) with file: downloads: no servers.

- a batch is acknowledged only after its posts and log messages are confirmed;
- a broker error mid-batch rewinds it (nothing acknowledged, the retry
  entries taken and the duplicate fingerprints recorded are given back) and
  the batch comes again;
- a failing worker's message goes to the retry queue, acknowledged, and
  is tried again; a SKIP from a hook ends the message there.
"""
import errno
import itertools
import os
import threading
import time
import uuid

import pytest

from sarra import codec
from sarra.broker import Outgoing
from sarra.broker.memory import MemoryBroker
from sarra.checksum import sum_file
from sarra.components import PRESETS, flow_for
from sarra.config import load_config
from sarra.errors import BrokerError
from sarra.flow import durable
from sarra.message import Message, format_time

HERE = __name__


class SkipIf:
    """on_message hook: SKIP the messages whose relpath holds WORD."""

    def __init__(self, cfg, word):
        self.word = word

    def on_message(self, msg):
        return self.word not in msg.relpath


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A memory broker space of its own, an exchange with a producer, and a
    source tree of files to announce with file: URLs."""
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    space = f"memory://engine-{uuid.uuid4().hex[:8]}/"
    producer = MemoryBroker(space)
    producer.connect()
    for ex in ("xpublic", "xs_anonymous", "xmirror"):
        producer.declare_exchange(ex)
    logs = _listen(producer, "q_logs", "xs_anonymous", "v02.report.#")
    reposts = _listen(producer, "q_reposts", "xmirror", "v02.post.#")
    src = tmp_path / "src"
    src.mkdir()

    class Lab:
        url, root, dst = space, src, tmp_path / "dst"

        def post(self, name: str, body: bytes = b"data", spoilt: bool = False,
                 **headers) -> Message:
            """Announce src/NAME holding BODY on xpublic (``spoilt``: the file
            then changes, so that its download fails its checksum)."""
            path = src / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            h = {"sum": sum_file(str(path), "d"), "parts": f"1,{len(body)},1,0,0", **headers}
            if spoilt:
                path.write_bytes(body.upper())
            m = Message(format_time(time.time()), f"file:{src}/", name, h)
            topic, hdrs, text, ctype = codec.encode(m, "v02.post")
            producer.publish(Outgoing("xpublic", topic, hdrs, text, ctype))
            return m

        def flow(self, *options):
            cfg = load_config("subscribe", None, [
                ("broker", space), ("exchange", "xpublic"), ("directory", str(self.dst)),
                ("mirror", "on"), ("accept", ".*"), ("post_broker", space),
                ("post_exchange", "xmirror"), ("post_base_url", "http://mirror/"),
                ("retry_delay", "0"), ("attempts", "1"), *options], PRESETS["subscribe"])
            flow = flow_for("subscribe", cfg)
            flow.connect()
            return flow

        @staticmethod
        def logs() -> list[tuple[str, int]]:
            return [(m.relpath, m.report.code) for m in _drain(producer, logs)]

        @staticmethod
        def reposts() -> list[str]:
            return [m.relpath for m in _drain(producer, reposts)]

        @staticmethod
        def waiting(queue: str) -> int:
            return len(producer._sp().queues[queue])

    return Lab()


def _listen(broker: MemoryBroker, queue: str, exchange: str, key: str) -> str:
    broker.declare_queue(queue)
    broker.bind(queue, exchange, key)
    return queue


def _drain(broker: MemoryBroker, queue: str) -> list[Message]:
    q = broker._sp().queues[queue]
    out = []
    while q:
        d = q.popleft()
        out.append(codec.decode(d.topic, d.headers, d.body, d.content_type, d.exchange))
    return out


def _queue_of(flow) -> str:
    return flow.source.queue


@pytest.fixture
def events(monkeypatch):
    """What every memory broker is asked to do, in order: ('publish',
    exchange), ('flush',), ('ack', n)."""
    seen: list[tuple] = []
    publish, flush, ack = MemoryBroker.publish, MemoryBroker.flush, MemoryBroker.ack
    monkeypatch.setattr(MemoryBroker, "publish",
                        lambda self, m: (seen.append(("publish", m.exchange)), publish(self, m))[1])
    monkeypatch.setattr(MemoryBroker, "flush",
                        lambda self, timeout=60.0, leave=0: (seen.append(("flush",)),
                                                             flush(self, timeout, leave))[1])
    monkeypatch.setattr(MemoryBroker, "ack",
                        lambda self, tags: (seen.append(("ack", len(tags))), ack(self, tags))[1])
    return seen


def test_a_batch_is_acknowledged_after_its_posts_and_logs_are_confirmed(lab, events):
    flow = lab.flow()
    for n in range(3):
        lab.post(f"d/f{n}")
    events.clear()                         # the producer's own publishes
    assert flow.step(timeout=1.0) == 3
    assert sorted(p.name for p in (lab.dst / "d").iterdir()) == ["f0", "f1", "f2"]
    assert sorted(lab.logs()) == [("d/f0", 201), ("d/f1", 201), ("d/f2", 201)]
    assert sorted(lab.reposts()) == ["d/f0", "d/f1", "d/f2"]
    acks = [i for i, e in enumerate(events) if e[0] == "ack"]
    assert len(acks) == 1 and events[acks[0]] == ("ack", 3)
    publishes = [i for i, e in enumerate(events) if e[0] == "publish"]
    assert len(publishes) == 6             # 3 re-posts, 3 log messages
    # the two publishers were each told to confirm after their last publish,
    # and before the acknowledgement
    flushes = [i for i, e in enumerate(events) if e == ("flush",)]
    assert len([i for i in flushes if publishes[-1] < i < acks[0]]) == 2
    assert lab.waiting(_queue_of(flow)) == 0
    flow.close()


def _record_syncs(monkeypatch, seen: list, fails: bool = False) -> None:
    """Each file-system sync of flow/durable.py noted in ``seen`` as
    ('sync', device), then done for real (``fails``: it fails, EIO)."""
    real = durable.syncfs

    def syncfs(fd):
        seen.append(("sync", os.fstat(fd).st_dev))
        if fails:
            raise OSError(errno.EIO, "syncfs: Input/output error")
        return real(fd)
    monkeypatch.setattr(durable, "syncfs", syncfs)


def test_a_batch_is_on_stable_storage_before_anything_is_posted_or_acknowledged(
        lab, events, monkeypatch):
    _record_syncs(monkeypatch, events)
    flow = lab.flow()
    for n in range(4):
        lab.post(f"s/{n % 2}/f{n}")        # two directories, one file system
    events.clear()
    assert flow.step(timeout=1.0) == 4
    assert sorted(lab.logs()) == [(f"s/{n % 2}/f{n}", 201) for n in (0, 2, 1, 3)]
    syncs = [i for i, e in enumerate(events) if e[0] == "sync"]
    first_out = min(i for i, e in enumerate(events) if e[0] in ("publish", "ack"))
    assert len(syncs) == 1 and syncs[0] < first_out      # one sync for the batch, first
    assert events[-1] == ("ack", 4)
    assert flow.worker.pending.syncs == 1 and len(flow.worker.pending) == 0
    flow.close()


def test_fsync_off_syncs_nothing(lab, events, monkeypatch):
    _record_syncs(monkeypatch, events)
    flow = lab.flow(("fsync", "off"))
    lab.post("o/f")
    assert flow.step(timeout=1.0) == 1
    assert (lab.dst / "o" / "f").read_bytes() == b"data"
    assert not [e for e in events if e[0] == "sync"] and events[-1] == ("ack", 1)
    flow.close()


def test_a_failed_sync_fails_what_the_batch_wrote_and_it_is_tried_again(
        lab, events, monkeypatch):
    _record_syncs(monkeypatch, events, fails=True)
    flow = lab.flow()
    lab.post("e/f")
    assert flow.step(timeout=1.0) == 1
    assert lab.logs() == [("e/f", 500)] and lab.reposts() == []
    assert len(flow.retry) == 1            # saved before the acknowledgement
    flow.close()


def test_a_broker_error_mid_batch_acknowledges_nothing_and_the_batch_comes_again(
        lab, events, monkeypatch):
    flow = lab.flow(("nodupe_ttl", "5m"))
    lab.post("a/one")
    lab.post("a/gone", spoilt=True)        # fails its checksum: to the retry queue
    flow.step(timeout=1.0)
    assert len(flow.retry) == 1 and lab.logs() == [("a/one", 201), ("a/gone", 499)]
    (lab.root / "a" / "gone").write_bytes(b"data")
    lab.post("a/two")
    real_flush = MemoryBroker.flush
    calls = itertools.count()

    def flush_fails_once(self, timeout=60.0, leave=0):
        if next(calls) == 0:
            raise BrokerError("connection lost", recoverable=True)
        return real_flush(self, timeout, leave)
    monkeypatch.setattr(MemoryBroker, "flush", flush_fails_once)
    events.clear()
    with pytest.raises(BrokerError):
        flow.step(timeout=1.0)             # a/two from the queue, a/gone from the retry queue
    assert not [e for e in events if e[0] == "ack"]
    assert len(flow.retry) == 1            # the entry taken is given back, not lost
    flow._reconnect()                      # what the loop does: a/two is delivered again
    assert flow.step(timeout=1.0) == 2
    assert (lab.dst / "a" / "two").read_bytes() == b"data"
    assert (lab.dst / "a" / "gone").read_bytes() == b"data"
    assert len(flow.retry) == 0 and lab.waiting(_queue_of(flow)) == 0
    # a/two's fingerprint was given back with the failed batch: not a duplicate now
    assert ("a/two", 201) in lab.logs()
    assert flow.stats["duplicate"] == 0
    flow.close()


def test_a_failing_worker_queues_the_message_for_later_and_acknowledges_it(lab):
    flow = lab.flow()
    lab.post("b/missing", spoilt=True)
    lab.post("b/here")
    flow.step(timeout=1.0)
    assert lab.waiting(_queue_of(flow)) == 0 and len(flow.retry) == 1
    assert sorted(lab.logs()) == [("b/here", 201), ("b/missing", 499)]
    assert lab.reposts() == ["b/here"]
    flow.step(timeout=0.1)                 # still wrong: queued again, the source not told again
    assert len(flow.retry) == 1 and lab.logs() == []
    (lab.root / "b" / "missing").write_bytes(b"data")
    flow.step(timeout=0.1)
    assert len(flow.retry) == 0 and lab.logs() == [("b/missing", 201)]
    assert (lab.dst / "b" / "missing").read_bytes() == b"data"
    flow.close()


def test_a_skip_from_on_message_ends_the_message_there(lab):
    flow = lab.flow(("on_message", f"{HERE}:SkipIf quiet"))
    lab.post("c/loud")
    lab.post("c/quiet")
    assert flow.step(timeout=1.0) == 2
    assert [p.name for p in (lab.dst / "c").iterdir()] == ["loud"]
    assert lab.logs() == [("c/loud", 201)] and lab.reposts() == ["c/loud"]
    assert lab.waiting(_queue_of(flow)) == 0          # acknowledged all the same
    flow.close()


def test_run_consumes_until_stopped_then_closes(lab):
    flow = lab.flow()
    names = [f"r/f{n}" for n in range(5)]
    for name in names:
        lab.post(name)
    runner = threading.Thread(target=flow.run)
    runner.start()
    deadline = time.monotonic() + 10
    while len(list((lab.dst / "r").glob("f*")) if (lab.dst / "r").exists() else []) < 5:
        assert time.monotonic() < deadline, "the files never arrived"
        time.sleep(0.05)
    flow.stopping = True
    runner.join(10)
    assert not runner.is_alive()
    assert sorted(lab.logs()) == [(n, 201) for n in names]
    assert flow.source.broker._space is None          # closed
    assert flow.stats[201] == 5


def test_run_of_a_poster_ends_when_its_paths_are_posted(lab, tmp_path):
    tree = tmp_path / "tree"
    (tree / "x").mkdir(parents=True)
    for n in range(4):
        (tree / "x" / f"p{n}").write_bytes(b"p" * n)
    cfg = load_config("post", None, [
        ("post_broker", lab.url), ("post_exchange", "xmirror"),
        ("post_base_url", "http://source/"), ("post_base_dir", str(tree))], PRESETS["post"])
    flow = flow_for("post", cfg, targets=[str(tree)])
    flow.run()
    assert flow.stats["posted"] == 4
    assert sorted(lab.reposts()) == [f"x/p{n}" for n in range(4)]
