"""Pieces of the flow that keep data safe, without a broker: per-message
variables in directories, the inflight lock between writers, the retry
queue across crashes, dd_post's rewind, salvaging malformed messages."""
import hashlib
import json
import os
import threading
import time

import pytest

from sarra import codec
from sarra.errors import MessageError, UnsafePathError
from sarra.flow.filter import expand_directory
from sarra.flow.gather import PathSource
from sarra.flow.retry import RetryQueue
from sarra.worklist import Job
from sarra.message import Message, Report
from sarra.transfer import open_inflight


def post(relpath: str, **headers) -> Message:
    return Message("20261125120000.000", "file:/src/", relpath,
                   {"sum": "d," + "0" * 32, "parts": "1,1,1,0,0", **headers})


@pytest.mark.parametrize("source", ["../../escaped", "a/b", "..", ".", "", "x\x00y"])
def test_source_variable_cannot_leave_the_directory(source):
    with pytest.raises(UnsafePathError) as err:
        expand_directory("/data/${SOURCE}/in", post("f", source=source))
    assert err.value.field == "source"


def test_source_and_date_variables_expand():
    t = time.mktime((2026, 11, 25, 12, 0, 0, 0, 0, 0)) - time.timezone
    assert expand_directory("/d/${SOURCE}/${YYYYMMDD}", post("f", source="alice"), t) \
        == "/d/alice/20261125"
    assert expand_directory("/d/plain", post("f", source="../x")) == "/d/plain"


def test_two_writers_of_one_inflight_name_take_turns(tmp_path):
    """The second writer waits for the first, then starts over on a new
    file: the final file is one writer's whole content, never a mix."""
    tmp, final = tmp_path / "f.tmp", tmp_path / "f"
    order: list[str] = []

    def write(tag: bytes, hold: float) -> None:
        with open_inflight(str(tmp), timeout=10) as out:
            order.append(tag.decode())
            for _ in range(5):
                out.write(tag * 1000)
                out.flush()
                time.sleep(hold)
            os.replace(tmp, final)

    first = threading.Thread(target=write, args=(b"A", 0.05))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=write, args=(b"B", 0.0))
    second.start()
    first.join()
    second.join()
    assert order == ["A", "B"]
    assert final.read_bytes() == b"B" * 5000
    assert not tmp.exists()


def test_inflight_lock_times_out_while_another_writer_holds_it(tmp_path):
    tmp = str(tmp_path / "g.tmp")
    with open_inflight(tmp, timeout=5):
        done = []
        t = threading.Thread(target=lambda: done.append(_try_open(tmp)))
        t.start()
        t.join()
    assert "another process" in done[0]


def _try_open(path: str) -> str:
    try:
        with open_inflight(path, timeout=0.2):
            return "opened"
    except Exception as exc:  # noqa: BLE001 - the message is what we check
        return str(exc)


def test_inflight_symlink_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    tmp = tmp_path / "h.tmp"
    os.symlink(victim, tmp)
    with open_inflight(str(tmp), timeout=1) as out:
        out.write(b"new")
    assert victim.read_bytes() == b"precious"
    assert not tmp.is_symlink() and tmp.read_bytes() == b"new"


def test_retry_entries_survive_until_settled(tmp_path):
    path = str(tmp_path / "retry.jsonl")
    q = RetryQueue(path, base_delay=0)
    q.put([Job(post("a"), tries=1), Job(post("b"), tries=3)])
    q.save()
    taken = q.take_due(10)
    assert sorted(j.msg.relpath for j in taken) == ["a", "b"]
    assert sorted(j.tries for j in taken) == [1, 3] and all(j.from_retry for j in taken)
    assert q.take_due(10) == []                # taken ones are not handed out twice
    assert len(RetryQueue(path)) == 2          # a crash now loses nothing
    q.put([Job(post("c"))])                    # a batch that then fails (lost connection)
    assert len(q) == 3
    q.release()                                # the tries did not happen: all undone
    assert len(q) == 2
    again = q.take_due(10)
    assert len(again) == 2
    ok = next(j for j in again if j.msg.relpath == "a")
    bad = next(j for j in again if j.msg.relpath == "b")
    bad.tries = 4
    q.put([bad])                               # failed again: queued with 4 tries
    q.settle([ok])                             # succeeded: gone
    q.save()
    reloaded = RetryQueue(path, base_delay=0)
    jobs = reloaded.take_due(10)
    assert [(j.msg.relpath, j.tries) for j in jobs] == [("b", 4)]


def test_retry_gives_up_after_ttl(tmp_path, caplog):
    q = RetryQueue(str(tmp_path / "r.jsonl"), ttl=60, base_delay=0)
    q.put([Job(post("old"), tries=1)])
    q.save()
    q._items[0].first -= 120                  # first failed two minutes ago
    again = q.take_due(1)
    assert q.put(again) == again
    assert len(q) == 0 and "given up" in caplog.text


def test_retry_gives_up_after_max_tries(tmp_path):
    q = RetryQueue(str(tmp_path / "r.jsonl"), base_delay=0, max_tries=3)
    assert q.put([Job(post("flaky"), tries=2)]) == [] and len(q) == 1
    q.save()
    again = q.take_due(1)
    again[0].tries += 1                        # the engine counts the new attempt
    assert q.put(again) == again and len(q) == 0


class _Cfg:
    recursive = True
    follow_symlinks = realpath_post = False
    sum = "d"
    bufsize = 1 << 20
    preserve_time = preserve_mode = False
    source = to_clusters = cluster = None
    post_base_url = "file:/"
    post_base_dir = None


def test_path_source_rewind_gives_the_same_batch_again(tmp_path):
    for name in "abcde":
        (tmp_path / name).write_bytes(name.encode())
    src = PathSource(_Cfg(), [str(tmp_path)], batch=2)
    first, _ = src.get(0)
    src.ack([])                 # the first batch is confirmed
    second, _ = src.get(0)
    src.rewind()
    again, _ = src.get(0)
    assert [m.relpath for m in again] == [m.relpath for m in second]
    assert [os.path.basename(m.relpath) for m in first + second] == ["a", "b", "c", "d"]


def test_path_source_rewind_gives_every_batch_not_acknowledged_again(tmp_path):
    """dd_post's batches are pipelined (the engine's BEHIND): a lost
    connection gives again every batch whose confirms had not all come,
    from the oldest, and the counts go back with them."""
    for name in "abcdefg":
        (tmp_path / name).write_bytes(name.encode())
    src = PathSource(_Cfg(), [str(tmp_path)], batch=2)
    src.get(0)
    src.ack([])
    kept = [src.get(0)[0], src.get(0)[0]]       # c d, e f: not acknowledged
    assert src.messages == 6
    src.rewind()
    assert src.messages == 2 and not src.done
    again = [src.get(0)[0], src.get(0)[0], src.get(0)[0]]
    names = [[os.path.basename(m.relpath) for m in b] for b in again]
    assert names == [["c", "d"], ["e", "f"], ["g"]] and src.done
    assert [m.relpath for m in again[0] + again[1]] == [m.relpath for m in kept[0] + kept[1]]


def test_path_source_rewind_counts_errors_once(tmp_path):
    (tmp_path / "a").write_bytes(b"a")
    os.mkfifo(tmp_path / "b")                 # neither a file nor a link: an error
    src = PathSource(_Cfg(), [str(tmp_path)], batch=10)
    msgs, _ = src.get(0)
    assert [os.path.basename(m.relpath) for m in msgs] == ["a"] and src.errors == 1
    src.rewind()
    msgs, _ = src.get(0)
    assert [os.path.basename(m.relpath) for m in msgs] == ["a"] and src.errors == 1


def test_salvage_reads_what_a_log_message_needs():
    body = "20261125120000.5 file:/s/ dir/a%20b.bin"
    m = codec.salvage("v02.post.dir", {"parts": "q,z", "long": "x" * 300, "ok": b"yes"}, body)
    assert (m.pubtime, m.base_url, m.relpath) == ("20261125120000.5", "file:/s/", "dir/a b.bin")
    assert m.headers == {"parts": "q,z", "ok": "yes"}
    report = Message(m.pubtime, m.base_url, m.relpath, m.headers,
                     report=Report(417, "h", "u", 0.1))
    topic, headers, text, _ = codec.encode(report)
    assert topic == "v02.report.dir" and headers["parts"] == "q,z"
    assert text.endswith(" 417 h u 0.100000")
    for bad in ("onefield", "2024-13-99 file:/ x", b"\xff\xfe", "20261125120000 file:/ a\rb"):
        assert codec.salvage("v02.post", {}, bad) is None


@pytest.mark.parametrize("relpath", ["a\rb", "a\x00b"])
def test_names_with_line_breaks_or_nul_are_refused_on_input(relpath):
    with pytest.raises(MessageError) as err:
        codec.decode("v02.post", {"sum": "d," + hashlib.md5(b"").hexdigest()},
                     f"20261125120000.000 file:/ {relpath}")
    assert err.value.field == "relpath"
    with pytest.raises(MessageError) as err:
        codec.decode("v03", None, json.dumps({"pubTime": "20261125T120000",
                                              "baseUrl": "file:/", "relPath": relpath}))
    assert err.value.field == "relpath"


def test_a_broker_user_without_password_is_a_configuration_error(tmp_path, monkeypatch, capsys):
    from sarra.cli import run
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "f").write_bytes(b"x")
    rc = run("post", ["--post_broker", "amqp://nobody@127.0.0.1/", "--post_base_url", "file:/",
                      "--post_exchange", "xx", str(tmp_path / "f")])
    assert rc == 2
    assert "no password for amqp://nobody@127.0.0.1/" in capsys.readouterr().err


def test_a_long_failure_text_is_shortened_to_fit_the_message_header():
    from sarra.broker.memory import MemoryBroker
    from sarra.flow.publish import Reporter
    b = MemoryBroker("memory://shorten/")
    b.connect()
    b.declare_exchange("xr")
    b.declare_queue("q")
    b.bind("q", "xr", "#")
    b.consume("q", 10)
    rep = Reporter(b, "xr", "guest", "host")
    rep.report(post("a/é.bin"), 499, "GET http://h/a: " + "é" * 300)
    d = b.get(1)[0]
    text = codec.decode(d.topic, d.headers, d.body).report.message
    assert len(text.encode()) <= 255 and text.endswith("...") and text.startswith("GET http")


def test_a_source_may_not_have_the_switch_copy_its_local_files(tmp_path):
    from sarra.components import PRESETS
    from sarra.config import load_config
    from sarra.flow.engine import Flow
    from sarra.flow.gather import PathSource
    from sarra.worklist import Worklist
    cfg = load_config("sara", None, [("source_from_exchange", "on"), ("cluster", "lab"),
                                     ("directory", str(tmp_path))], PRESETS["sara"])
    flow = Flow(cfg, PathSource(cfg, []))
    secret, fine = post("etc/credentials.conf"), post("obs/a.dat")
    secret.base_url, fine.base_url = "file:/home/feeder/.config/sarra/", "http://alice/"
    secret.exchange = fine.exchange = "xs_alice"
    wl = Worklist.of([secret, fine])
    flow.filter(wl)
    refused, taken = wl.jobs
    assert wl.rejected == [refused] and refused.code == 403
    assert taken.state == "incoming" and fine.headers["source"] == "alice"


def test_instance_1_takes_over_the_retry_queues_of_instances_no_more(tmp_path, monkeypatch):
    """instances lowered from 3 to 1: the failed messages of instances 2 and
    3 are tried again by instance 1, not stranded in their files."""
    from sarra.components import _retry_queue
    from sarra.config import load_config, paths
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    conf = tmp_path / "sub.conf"
    conf.write_text("broker amqp://u@h/\ndirectory /tmp/x\ninstances 1\n")
    cfg = load_config("subscribe", str(conf))
    for n, names in ((2, ["a", "b"]), (3, ["c"])):
        q = RetryQueue(paths.state_path("subscribe", cfg.key, f"retry.{n:02d}.jsonl"),
                       base_delay=0)
        q.put([Job(post(x), tries=2) for x in names])
        q.save()
    monkeypatch.setenv("SARRA_INSTANCE", "0")        # a foreground run adopts nothing
    assert len(_retry_queue("subscribe", cfg)) == 0
    monkeypatch.setenv("SARRA_INSTANCE", "1")
    # an instance 3 still running (not stopped yet) keeps its file
    import subprocess
    import sys
    from sarra import service
    old = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "sarra.cli",
                            "subscribe", cfg.key])
    try:
        with open(service.pid_file("subscribe", cfg.key, 3), "w") as f:
            f.write(f"{old.pid}\n")
        q = _retry_queue("subscribe", cfg)
        assert sorted(j.msg.relpath for j in q.take_due(10)) == ["a", "b"]
        q.release()
    finally:
        old.kill()
        old.wait()
    q = _retry_queue("subscribe", cfg)             # instance 1 started again, 3 gone
    taken = q.take_due(10)
    assert sorted(j.msg.relpath for j in taken) == ["a", "b", "c"]
    assert {j.tries for j in taken} == {2}
    folder = os.path.dirname(q.path)
    assert sorted(f for f in os.listdir(folder) if f.startswith("retry.")) == ["retry.01.jsonl"]
    assert len(RetryQueue(q.path)) == 3                 # saved before the others went
