"""Hostile messages never stop a process.

Each case here made ``dd_subscribe`` (or ``dd_shovel``) exit 1, and again at
every restart, since the message was never acknowledged: a v02 post with a
header over 255 bytes whose download fails (the retry queue could not
write it), the same in v03 with a long field, a lone surrogate or a field
nested 600 deep, a body of 50,000 nested JSON objects, block sizes beyond
any file, a v03 sum that is a lone surrogate (the text of its log message),
a header of arrays nested 800 deep (the key of the message in hand), a log
message with a duration of 1e30 re-encoded in v03 by a shovel, and a
message that kills its process while in hand.

A real daemon runs against RabbitMQ on 127.0.0.1:5672 (one per test), fed
hand-made messages (raw bodies and headers: no codec on the sending side).
For each case: the process is still running, the next good post arrives
byte for byte, nothing partial sits under a final name, the message is in
the quarantine (``sarra quarantine list``, and the JSON files in
``<state>/<tool>/<config>/quarantine/``) when it is kept aside, and a log
message (417, 'kept aside' or 'invalid message') reached the source's
exchange when one can be formed. The operator's commands are run for real:
``sarra quarantine retry`` of a message that failed only because of
something the test then fixes, and ``drop``.

The hook classes below are loaded by the daemons by dotted name
(``tests.integration.test_hostile_messages:KillOn``; tests.helpers puts the
repository first on PYTHONPATH).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import run_tool, wait_for
from tests.hostile import HostileServer
from tests.integration.flowkit import (BROKER, assert_logs_clean, codes_by_relpath, files_under,
                                       publish_raw, queue_consumers, taps)

__all__ = ["taps"]

HERE = "tests.integration.test_hostile_messages"


# -- hooks the daemons load -----------------------------------------------------

class KillOn:
    """on_message: the process kills itself (SIGKILL: no clean-up, as the
    kernel's OOM killer or a crash of the interpreter) on a relpath holding WORD."""

    def __init__(self, cfg, word: str):
        self.word = word

    def on_message(self, msg):
        if self.word in msg.relpath:
            os.kill(os.getpid(), signal.SIGKILL)
        return True


class BreakWhile:
    """on_message: while the file MARKER exists, a relpath holding WORD gets
    an ``int`` for its ``parts`` header (what a buggy hook may do): the
    download then raises AttributeError, which nothing in the flow expects.
    The message fails only because of the marker."""

    def __init__(self, cfg, word: str, marker: str):
        self.word, self.marker = word, marker

    def on_message(self, msg):
        if self.word in msg.relpath and os.path.exists(self.marker):
            msg.headers["parts"] = 1234
        return True


# -- the bench ------------------------------------------------------------------

def pubtime(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}"


def v3time(t: float | None = None) -> str:
    text = pubtime(t)
    return text[:8] + "T" + text[8:]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Rig:
    """One daemon configuration (``tool``/``name``), its source tree, the
    exchange it consumes from and a tap on where its log messages go."""

    def __init__(self, home, tool: str, name: str, exchange: str, src: Path, dst: Path,
                 reports, procs, logdir: Path):
        self.home, self.tool, self.name, self.exchange = home, tool, name, exchange
        self.src, self.dst, self.reports, self.procs = src, dst, reports, procs
        self.logdir = logdir
        self.proc = None
        self.runs = 0
        self.n = 0

    # the daemon
    def start(self, check: bool = True):
        """``dd_TOOL foreground NAME``, once it consumes (``check``: and still runs)."""
        self.runs += 1
        self.proc = self.procs.start_tool(self.tool, "foreground", self.name,
                                          log=self.logdir / f"{self.tool}.{self.runs}.log")
        qfile = self.state / f"{self.tool}.{self.name}.guest.qname"
        wait_for(lambda: qfile.exists() or self.proc.poll() is not None, timeout=15,
                 interval=0.05, what="the queue name")
        wait_for(lambda: self.proc.poll() is not None or queue_consumers(self.queue) == 1,
                 timeout=15, interval=0.05, what="the consumer")
        if check:
            self.alive()
        return self.proc

    @property
    def state(self) -> Path:
        return self.home.state_dir / self.tool / self.name

    @property
    def queue(self) -> str:
        return (self.state / f"{self.tool}.{self.name}.guest.qname").read_text().strip()

    def alive(self) -> None:
        assert self.proc.poll() is None, \
            f"dd_{self.tool} exited {self.proc.returncode}:\n{self.log()[-3000:]}"

    def log(self) -> str:
        return Path(self.proc.log).read_text(encoding="utf-8", errors="replace")

    # what is sent
    def file(self, rel: str, data: bytes) -> str:
        path = self.src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel

    def post(self, rel: str, data: bytes, base: str | None = None, **extra) -> None:
        """A hand-made v02 post of ``rel`` (md5 and size of ``data``)."""
        headers = {"sum": "d," + md5(data), "parts": f"1,{len(data)},1,0,0", **extra}
        topic = ".".join(["v02.post", *rel.split("/")[:-1]])
        publish_raw(self.exchange, topic,
                    f"{pubtime()} {base or f'file:{self.src}/'} {rel}", headers)

    def good(self) -> str:
        """A fresh good post: in place byte for byte, reported 201, the daemon up."""
        self.n += 1
        data = os.urandom(2000 + self.n)
        rel = self.file(f"good/ok_{self.n:02d}.bin", data)
        self.post(rel, data)
        self.wait_code(rel, 201)
        assert (self.dst / rel).read_bytes() == data
        self.alive()
        return rel

    # what comes back
    def wait_code(self, rel: str, code: int, timeout: float = 10) -> list:
        def arrived(ms):
            if code in codes_by_relpath(ms).get(rel, {}):
                return True
            self.alive()                     # a dead daemon sends nothing: say so now
            return False
        self.reports.wait(arrived, timeout, f"a {code} log message for {rel}")
        return [m for m in self.reports.messages if m.relpath == rel and m.report.code == code]

    def kept(self) -> list[dict]:
        """The entries of the quarantine folder (the JSON files themselves)."""
        folder = self.state / "quarantine"
        out = []
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.name.endswith(".tmp"):
                continue
            entry = json.loads(path.read_text(encoding="ascii"))
            entry["file"] = path.name
            out.append(entry)
        return out

    def quarantine(self, *args: str) -> list[str]:
        """``sarra quarantine ARGS... TOOL/NAME``: its lines of output."""
        verb, rest = (args[0], args[1:]) if args else ("list", ())
        res = run_tool("sarra", "quarantine", verb, f"{self.tool}/{self.name}", *rest,
                       timeout=30)
        return res.stdout.splitlines()

    def nothing_partial(self, *rels: str) -> None:
        for rel in rels:
            assert not os.path.lexists(self.dst / rel), f"{rel} was put in place"
        left = [f for f in files_under(self.dst) if f.endswith(".tmp") or ".inflight" in f]
        assert left == [], left


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    server = HostileServer(tmp_path_factory.mktemp("hostile-msgs"), give_up=20)
    yield server
    server.close()


@pytest.fixture
def rig(sarra_home, unique, procs, taps, tmp_path):
    """Factory ``rig(extra='', tool='subscribe')``: the configuration written
    (mirror into tmp/dst, attempts 1, retry_delay 1, report_exchange
    xr_<unique>; a shovel copies xt_<unique> to xo_<unique> in v03), the
    daemon started and consuming. At most one per test."""
    made: list[Rig] = []

    def make(extra: str = "", tool: str = "subscribe") -> Rig:
        assert not made, "one daemon per test"
        src, dst = tmp_path / "src", tmp_path / "dst"
        src.mkdir()
        dst.mkdir()
        ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"hm_{unique}"
        if tool == "subscribe":
            reports = taps(xr)
            text = (f"broker {BROKER}\nexchange {ex}\nsubtopic #\nexpire 10m\n"
                    f"report_exchange {xr}\nmirror on\ninflight .tmp\ndirectory {dst}\n"
                    f"attempts 1\nretry_delay 1\ntimeout 3\n{extra}accept .*\n")
        else:
            reports = taps(f"xo_{unique}", "#")
            text = (f"broker {BROKER}\nexchange {ex}\ntopic_prefix v02.report\nexpire 10m\n"
                    f"post_exchange xo_{unique}\npost_topic_prefix v03.report\n{extra}")
        sarra_home.write_config(tool, name, text)
        r = Rig(sarra_home, tool, name, ex, src, dst, reports, procs, tmp_path)
        made.append(r)
        r.start()
        taps.queues.append(r.queue)
        return r

    yield make
    for r in made:
        assert_logs_clean(*r.logdir.glob(f"{r.tool}.*.log"))


# -- 1, 2: a post the retry queue must hold -------------------------------------

def test_a_v02_post_with_a_header_over_255_bytes_is_retried_and_arrives(rig, hostile):
    """Its download fails once (wrong content over HTTP: a checksum error,
    retried): it goes to the retry queue, the source hears 499 (the long
    header cut to fit), the next try downloads it."""
    r = rig()
    data = os.urandom(3000)
    rel = f"{r.name}/long/h.bin"
    spoilt = hostile.root / rel
    spoilt.parent.mkdir(parents=True, exist_ok=True)
    spoilt.write_bytes(bytes(reversed(data)))            # same size, other bytes
    note = "n" * 300 + "é" * 20
    r.post(rel, data, base=hostile.url_of("good", ""), x_note=note)

    (first,) = r.wait_code(rel, 499)
    r.alive()
    cut = first.headers["x_note"]
    assert len(cut.encode()) <= 255 and cut.endswith("...") and cut.startswith("n" * 200), cut
    assert first.headers["sum"] == "d," + md5(data)
    r.nothing_partial(rel)
    (retry_file,) = wait_for(lambda: list(r.state.glob("retry.*.jsonl")), timeout=5,
                             what="the retry queue's file")    # saved after the report
    wait_for(lambda: rel in retry_file.read_text(), timeout=5, what="the entry saved")

    spoilt.write_bytes(data)                             # the server is right again
    (done,) = r.wait_code(rel, 201)
    assert (r.dst / rel).read_bytes() == data
    assert len(done.headers["x_note"].encode()) <= 255
    wait_for(lambda: retry_file.read_text() == "", timeout=5, what="the retry queue emptied")
    r.good()
    assert r.kept() == [] and r.quarantine() == []       # handled, not set aside
    r.nothing_partial()
    assert len(hostile.hits_of(rel)) >= 2


def test_v03_posts_with_a_long_field_a_lone_surrogate_or_a_deep_field_are_retried(rig):
    """v03 bodies: a string field over 255 bytes; ``"mtime": "\\ud800"`` (JSON
    accepts it); a field of arrays nested 600 deep (the decoder accepts it;
    the retry queue's copy of the message recursed). Each fails once
    (checksum), goes to the retry queue, is reported 499 (texts escaped and
    cut), and arrives on the next try."""
    r = rig()
    datas = {"v3/long.bin": os.urandom(1500), "v3/surrogate.bin": os.urandom(1600),
             "v3/deep.bin": os.urandom(1700)}
    for rel, data in datas.items():
        r.file(rel, bytes(reversed(data)))               # same size, other bytes
    fields = {"v3/long.bin": {"x_long": "L" * 400},
              "v3/surrogate.bin": {"mtime": "\ud800", "atime": "\udfff"},
              "v3/deep.bin": {}}
    for rel, data in datas.items():
        body = json.dumps({"pubTime": v3time(), "baseUrl": f"file:{r.src}/", "relPath": rel,
                           "identity": {"method": "md5",
                                        "value": base64.b64encode(hashlib.md5(data).digest())
                                        .decode()},
                           "size": len(data), **fields[rel]})
        if rel == "v3/deep.bin":
            body = body[:-1] + ', "deep": ' + "[" * 600 + "]" * 600 + "}"
        publish_raw(r.exchange, "v02.post.v3", body, {})

    long_499 = r.wait_code("v3/long.bin", 499)[0]
    sur_499 = r.wait_code("v3/surrogate.bin", 499)[0]
    r.wait_code("v3/deep.bin", 499)
    r.alive()
    assert long_499.headers["x_long"] == "L" * 252 + "..."
    assert sur_499.headers["mtime"] == "\\ud800" and sur_499.headers["atime"] == "\\udfff"
    r.nothing_partial(*datas)

    for rel, data in datas.items():
        r.file(rel, data)
    for rel, data in datas.items():
        r.wait_code(rel, 201)
        assert (r.dst / rel).read_bytes() == data
    r.good()
    assert r.kept() == [] and r.quarantine() == []
    r.nothing_partial()


# -- 3, 4: messages that cannot be decoded ------------------------------------

def test_deep_nesting_and_block_sizes_beyond_any_file_are_kept_aside(rig):
    """A body of 50,000 nested JSON objects (RecursionError in the decoder,
    and in what reads a log message's fields out of a bad message),
    ``parts`` of ``p,99999999999999999999,2,5,1`` and ``i,...``, and a v03
    ``"sum": "\\ud800"``. Each is acknowledged and kept in the quarantine;
    those that name their file are reported 417 'invalid message'."""
    r = rig()
    deep = '{"a":' * 50_000 + "0" + "}" * 50_000
    publish_raw(r.exchange, "v02.post.deep", deep, {})
    huge = {"p": "parts/p.bin", "i": "parts/i.bin"}
    for method, rel in huge.items():
        r.post(r.file(rel, b"x" * 10), b"x" * 10, parts=f"{method},99999999999999999999,2,5,1")
    # a v03 sum that is a lone surrogate: its reason, quoted in the log message
    # text, could not be cut to fit (UnicodeEncodeError: exit 1 at every restart)
    sur = r.file("sur/sum.bin", b"x")
    publish_raw(r.exchange, "v02.post.sur", json.dumps(
        {"pubTime": v3time(), "baseUrl": f"file:{r.src}/", "relPath": sur, "sum": "\ud800"}),
        {})
    r.good()                                             # after them in the queue

    for rel in huge.values():
        (rep,) = r.wait_code(rel, 417)
        assert rep.report.message.startswith("invalid message"), rep.report.message
        assert "parts" in rep.report.message
    (rep,) = r.wait_code(sur, 417)
    assert rep.report.message.startswith("invalid message: sum: '\\ud800'"), rep.report.message
    r.alive()
    r.nothing_partial(*huge.values(), sur)

    kept = r.kept()
    assert sorted(e["relpath"] for e in kept) == ["", *sorted(huge.values()), sur], kept
    assert {e["stage"] for e in kept} == {"decode"}
    by_rel = {e["relpath"]: e for e in kept}
    assert base64.b64decode(by_rel[""]["message"]["body"]).decode() == deep
    for method, rel in huge.items():
        wire = by_rel[rel]["message"]
        assert wire["headers"]["parts"] == f"{method},99999999999999999999,2,5,1"
        assert wire["exchange"] == r.exchange
    listed = r.quarantine("list")
    assert len(listed) == 4, listed
    assert "\\ud800" in [ln for ln in listed if sur in ln][0]     # escaped, printable
    for e in kept:
        (line,) = [ln for ln in listed if e["id"] in ln]
        assert f"subscribe/{r.name}" in line and " kept " in line and " decode " in line
        assert (e["relpath"] or "-") in line
    # nothing else was reported about them (the deep one has no relpath to name)
    codes = codes_by_relpath(r.reports.settle(0.5))
    assert set(codes) == {*huge.values(), sur, "good/ok_01.bin"}, codes
    r.good()


def test_a_header_of_arrays_nested_800_deep_does_not_stop_the_subscriber(rig):
    """AMQP headers are tables: a value may be an array of arrays... RabbitMQ
    and pika carry one nested 800 deep. Whatever the subscriber makes of
    that post (a header it flattens, or a malformed message), it is
    acknowledged, and the next good post arrives."""
    import pika                                          # the test's own client

    r = rig()
    data = b"deep header"
    rel = r.file("hdr/deep.bin", data)
    value: object = "x"
    for _ in range(800):
        value = [value]
    headers = {"sum": "d," + md5(data), "parts": f"1,{len(data)},1,0,0", "deep": value}
    conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/"))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(r.exchange, "v02.post.hdr", f"{pubtime()} file:{r.src}/ {rel}",
                         pika.BasicProperties(headers=headers))
    finally:
        conn.close()
    r.good()
    r.alive()
    reports = [m for m in r.reports.messages if m.relpath == rel]
    kept = [e for e in r.kept() if e["relpath"] == rel]
    assert [m.report.code for m in reports] in ([201], [417]), reports
    if reports[0].report.code == 201:             # the header flattened to text
        assert (r.dst / rel).read_bytes() == data and kept == []
        assert len(reports[0].headers["deep"].encode()) <= 255   # cut to fit
    else:                                          # or too deep to read: malformed
        r.nothing_partial(rel)
        assert [e["stage"] for e in kept] == ["decode"]


# -- 5: a shovel re-encoding log messages in v03 -------------------------------

def test_a_shovel_posting_v03_is_not_stopped_by_a_duration_of_1e30(rig):
    """dd_shovel (post_topic_prefix v03.report) receives log messages with a
    duration of 1e30 (v02 body; v03 ``elapsedTime``): a time no calendar
    holds once added to now. Each is kept aside; the good log message after
    them is copied, as it came."""
    r = rig(tool="shovel")
    sum_h = "d," + md5(b"abc")
    url = "http://data.example.com/"
    publish_raw(r.exchange, "v02.report.d",
                f"{pubtime()} {url} d/v2huge.bin 201 host.example.com alice 1e30",
                {"sum": sum_h, "parts": "1,3,1,0,0", "message": "Downloaded"})
    publish_raw(r.exchange, "v02.report.d", json.dumps({
        "pubTime": v3time(), "baseUrl": url, "relPath": "d/v3huge.bin",
        "identity": {"method": "md5", "value": base64.b64encode(hashlib.md5(b"abc").digest())
                     .decode()},
        "size": 3, "report": {"code": 201, "elapsedTime": 1e30, "message": "Downloaded",
                              "host": "h", "user": "alice"}}), {})
    t0 = pubtime()
    publish_raw(r.exchange, "v02.report.d",
                f"{t0} {url} d/fine.bin 201 host.example.com alice 0.250000",
                {"sum": sum_h, "parts": "1,3,1,0,0", "message": "Downloaded", "from": "here"})

    (out,) = r.reports.wait(lambda ms: any(m.relpath == "d/fine.bin" for m in ms)
                            or r.alive(), 10, "the good log message copied")
    r.alive()
    assert (out.pubtime, out.base_url, out.relpath) == (t0, url, "d/fine.bin")
    assert out.headers["sum"] == sum_h and out.headers["from"] == "here"
    assert out.headers["parts"] == "1,3,1,0,0"
    assert (out.report.code, out.report.user, out.report.message) == (201, "alice", "Downloaded")
    # v03 carries timeCompleted (received + duration): the latency to the shovel adds in
    assert abs(out.report.duration - 0.25) < 0.5
    kept = r.kept()
    assert sorted(e["relpath"] for e in kept) == ["d/v2huge.bin", "d/v3huge.bin"], kept
    assert all(e["stage"] == "decode" and "range" in e["reason"] for e in kept), kept
    listed = r.quarantine()
    assert len(listed) == 2 and all(f"shovel/{r.name}" in ln for ln in listed), listed
    assert [m.relpath for m in r.reports.settle(0.5)] == ["d/fine.bin"]
    r.alive()


# -- 6: a message that kills the process while in hand --------------------------

def test_a_message_that_kills_its_process_is_kept_aside_after_quarantine_deaths(rig):
    """An on_message hook SIGKILLs the process on the poison message: the
    broker gives it again at each start. With quarantine_deaths 2, the third
    process keeps it aside (417 'kept aside'), keeps running, and the next
    good post arrives."""
    r = rig(extra=f"quarantine_deaths 2\non_message {HERE}:KillOn poison\n")
    data = os.urandom(1200)
    rel = r.file("bad/poison.bin", data)
    r.post(rel, data)
    for death in (1, 2):
        wait_for(lambda: r.proc.poll() is not None, timeout=10, interval=0.05,
                 what=f"death {death}")
        assert r.proc.returncode == -signal.SIGKILL, r.log()[-2000:]
        r.nothing_partial(rel)
        r.start(check=False)                             # as an operator or sanity would

    (rep,) = r.wait_code(rel, 417)
    r.alive()
    assert rep.report.message.startswith("kept aside"), rep.report.message
    assert "in hand when 2 processes died" in rep.report.message
    (entry,) = r.kept()
    assert (entry["relpath"], entry["stage"]) == (rel, "delivery")
    assert entry["id"] in rep.report.message
    body = base64.b64decode(entry["message"]["body"]).decode()
    assert body.endswith(f" file:{r.src}/ {rel}")
    (line,) = r.quarantine()
    assert entry["id"] in line and "delivery" in line and rel in line
    r.good()
    r.nothing_partial(rel)
    time.sleep(0.3)
    r.alive()
    assert "kept aside" in r.log()


def test_the_messages_that_shared_the_poison_s_batch_are_not_kept_aside(rig):
    """Two good posts in the very batch of a poison message (posted while no
    subscriber ran): the first death is charged to all three, so the next
    process handles them one at a time; the second death is the poison's
    alone, and with quarantine_deaths 2 only the poison is kept aside, the
    two good files arriving."""
    r = rig(extra=f"quarantine_deaths 2\non_message {HERE}:KillOn poison\n")
    r.proc.terminate()
    r.proc.wait(10)
    mates = {}
    for name in ("a.bin", "b.bin"):
        data = os.urandom(900)
        mates[r.file(f"mates/{name}", data)] = data
    for rel, data in mates.items():
        r.post(rel, data)
    poison = r.file("mates/poison.bin", os.urandom(700))
    r.post(poison, (r.src / poison).read_bytes())
    r.start(check=False)
    for death in (1, 2):
        wait_for(lambda: r.proc.poll() is not None, timeout=10, interval=0.05,
                 what=f"death {death}")
        assert r.proc.returncode == -signal.SIGKILL, r.log()[-2000:]
        r.start(check=False)
    wait_for(lambda: [e["relpath"] for e in r.kept()] == [poison], timeout=10,
             what="the poison alone kept aside")
    for rel, data in mates.items():
        wait_for(lambda rel=rel: (r.dst / rel).exists(), timeout=10, what=rel)
        assert (r.dst / rel).read_bytes() == data
    assert [e["relpath"] for e in r.kept()] == [poison]
    r.alive()
    r.good()


# -- the operator's commands ----------------------------------------------------

def test_quarantine_retry_takes_a_message_again_and_drop_removes_one(rig, tmp_path):
    """Two posts kept aside because of a marker file (their download raised
    what the flow does not expect). ``sarra quarantine list`` shows them;
    the marker removed, ``retry --id`` has the running subscriber take one
    again: it arrives and its entry is gone; ``drop --id`` removes the
    other, which never arrives."""
    marker = tmp_path / "broken"
    marker.write_text("")
    r = rig(extra=f"on_message {HERE}:BreakWhile flaky {marker}\n")
    datas = {"flaky/a.bin": os.urandom(900), "flaky/b.bin": os.urandom(901)}
    for rel, data in datas.items():
        r.post(r.file(rel, data), data)
    for rel in datas:
        (rep,) = r.wait_code(rel, 417)
        assert rep.report.message.startswith("kept aside") and "(work)" in rep.report.message
        assert "AttributeError" in rep.report.message
    r.alive()
    r.nothing_partial(*datas)

    listed = r.quarantine("list")
    assert len(listed) == 2, listed
    ids = {}
    for line in listed:
        words = line.split()
        assert words[0] == f"subscribe/{r.name}" and words[4] == "kept" and words[5] == "work"
        ids[words[6]] = words[1]
    assert sorted(ids) == sorted(datas)
    assert sorted(e["id"] for e in r.kept()) == sorted(ids.values())

    marker.unlink()                                      # what made them fail is fixed
    assert r.quarantine("retry", "--id", ids["flaky/a.bin"]) == \
        [f"subscribe/{r.name}: 1 quarantined message marked for retry (a running instance "
         "takes them)"]
    r.wait_code("flaky/a.bin", 201, timeout=15)          # within RETRY_EVERY (5 s) and a step
    assert (r.dst / "flaky/a.bin").read_bytes() == datas["flaky/a.bin"]
    wait_for(lambda: [e["id"] for e in r.kept()] == [ids["flaky/b.bin"]], timeout=5,
             what="the retried entry gone")
    (line,) = r.quarantine("list")
    assert ids["flaky/b.bin"] in line and " kept " in line

    assert r.quarantine("drop", "--id", ids["flaky/b.bin"]) == \
        [f"subscribe/{r.name}: 1 quarantined message dropped"]
    assert r.kept() == [] and r.quarantine("list") == []
    r.good()
    r.nothing_partial("flaky/b.bin")
    assert codes_by_relpath(r.reports.messages)["flaky/b.bin"] == {417: 1}
    r.alive()
