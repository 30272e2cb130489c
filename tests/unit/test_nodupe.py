"""Duplicate suppression: fingerprints, lifetime, crash safety, instances."""
import time

from sarra.flow.nodupe import DuplicateCache, fingerprint
from sarra.message import Message


def post(relpath: str, sum_value: str = "a" * 32, redelivered: bool = False) -> Message:
    m = Message("20261125120000.000", "http://feed1/", relpath,
                {"sum": f"d,{sum_value}", "parts": "1,10,1,0,0"})
    m.redelivered = redelivered
    return m


def test_fingerprints_by_basis():
    a, b = post("x/f.dat"), post("y/f.dat")
    assert fingerprint(a, "path") != fingerprint(b, "path")
    assert fingerprint(a, "name") == fingerprint(b, "name")
    assert fingerprint(a, "data") == fingerprint(post("z/other", "a" * 32), "data")
    assert fingerprint(a, "path") != fingerprint(post("x/f.dat", "b" * 32), "path")


def test_second_copy_from_another_feed_is_a_duplicate(tmp_path):
    cache = DuplicateCache(str(tmp_path / "n.db"), ttl=60)
    key = cache.admit(post("f"))
    assert key == fingerprint(post("f"), "path")
    cache.settle([key])
    other_feed = post("f")
    other_feed.base_url = "http://feed2/"
    assert cache.admit(other_feed) is None
    assert cache.admit(post("g"))


def test_lifetime(tmp_path):
    cache = DuplicateCache(str(tmp_path / "n.db"), ttl=0.2)
    cache.settle([cache.admit(post("f"))])
    time.sleep(0.3)
    assert cache.admit(post("f"))
    assert cache.purge() == 0 and len(cache) == 1
    time.sleep(0.3)
    assert cache.purge() == 1 and len(cache) == 0


def test_a_batch_not_acknowledged_takes_its_fingerprints_back(tmp_path):
    cache = DuplicateCache(str(tmp_path / "n.db"), ttl=60)
    key = cache.admit(post("f"))
    cache.release([key])                 # lost connection: the batch comes again
    assert cache.admit(post("f"))


def test_an_instance_that_died_does_not_hide_its_message(tmp_path):
    path = str(tmp_path / "n.db")
    dead, alive = DuplicateCache(path, ttl=60), DuplicateCache(path, ttl=60)
    assert dead.admit(post("f"))         # pending, never settled: that instance died
    assert alive.admit(post("f")) is None   # another feed's copy meanwhile: a duplicate
    key = alive.admit(post("f", redelivered=True))   # the broker gives it again: taken
    assert key
    alive.settle([key])
    assert alive.admit(post("f", redelivered=True)) is None   # done now: a real duplicate


def test_messages_a_stop_left_undone_are_not_duplicates_when_they_come_again(tmp_path):
    cache = DuplicateCache(str(tmp_path / "n.db"), ttl=60)
    done, undone = cache.admit(post("f0")), cache.admit(post("f1"))
    assert done and undone
    cache.settle([done], [undone])       # acknowledged: f0 only
    assert cache.admit(post("f0")) is None
    assert cache.admit(post("f1"))       # f1 comes again: taken


def test_a_batch_is_admitted_in_one_transaction_as_one_at_a_time(tmp_path):
    """admit_many gives what admit would, message after message: a copy
    later in the same batch is a duplicate of the earlier one, and what it
    admitted is committed (another instance's connection sees it)."""
    cache = DuplicateCache(str(tmp_path / "n.db"), ttl=60)
    cache.settle([cache.admit(post("old"))])
    keys = cache.admit_many([post("f"), post("g"), post("f"), post("old"),
                             post("old", redelivered=True)])
    assert keys[0] and keys[1] and keys[2:] == [None, None, None]
    other = DuplicateCache(str(tmp_path / "n.db"), ttl=60)
    assert other.admit(post("f")) is None and other.admit(post("g")) is None


def test_the_flow_sets_aside_alone_what_the_cache_cannot_admit(tmp_path):
    """When the batch's transaction fails, each message is admitted on its
    own: only the one that fails is set aside (417), the others go on."""
    from types import SimpleNamespace
    from sarra.flow.engine import Flow
    from sarra.worklist import Worklist

    class Flaky(DuplicateCache):
        def admit_many(self, msgs):
            if len(msgs) > 1:
                raise RuntimeError("database is locked")
            if msgs[0].relpath == "bad":
                raise RuntimeError("disk I/O error")
            return super().admit_many(msgs)
    flow = Flow.__new__(Flow)
    flow.cfg = SimpleNamespace(source_from_exchange=False, msg_to_clusters=None, masks=[],
                               accept_unmatch=True)
    flow.private, flow.worker, flow.fallback, flow.quarantine = None, None, "here", None
    flow.stats = __import__("collections").Counter()
    flow.nodupe = Flaky(str(tmp_path / "n.db"), ttl=60)
    wl = Worklist.of([post("a"), post("bad"), post("a"), post("c")])
    flow.filter(wl)
    assert [j.msg.relpath for j in wl.incoming] == ["a", "c"]
    assert all(j.placement == "here" and j.fingerprint for j in wl.incoming)
    assert sorted((j.msg.relpath, j.code) for j in wl.rejected) == [("a", None), ("bad", 417)]


def test_a_batch_is_settled_in_one_transaction(tmp_path):
    """settle, release and the quarantine's out_of_hand write a batch's rows
    in one transaction: in autocommit mode, each row would be one (its
    WAL frames and locks, a row: bench/bench_perfile.py --strace)."""
    from sarra.flow.quarantine import Quarantine
    from sarra.worklist import Worklist
    cache = DuplicateCache(str(tmp_path / "n.db"), ttl=60)
    keys = cache.admit_many([post(f"f{i}") for i in range(50)])
    seen: list[str] = []
    cache._db.set_trace_callback(seen.append)
    cache.settle(keys[:40], keys[40:])
    assert [s for s in seen if s in ("BEGIN IMMEDIATE", "COMMIT")] == \
        ["BEGIN IMMEDIATE", "COMMIT"] * 2
    assert cache.admit(post("f1")) is None and cache.admit(post("f45"))
    q = Quarantine(str(tmp_path / "state" / "quarantine"))
    wl = Worklist.of([post(f"g{i}") for i in range(30)])
    for j in wl.jobs:
        j.msg.delivery_tag = 1
    q.in_hand(wl.jobs)
    seen.clear()
    q._db.set_trace_callback(seen.append)
    q.out_of_hand(wl.jobs)
    assert seen.count("COMMIT") == 1
    assert q._db.execute("SELECT count(*) FROM inhand").fetchone()[0] == 0
