"""Bad input never takes the subscriber down, never writes outside its
directory, never puts a wrong file in place; and deletes and links posts
are applied.

Messages are hand-made here (hashlib sums, raw v02 bodies and headers,
published with sarra's broker driver but not its codec), so the subscriber
sees exactly what a careless or hostile poster could send.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from tests.helpers import make_tree, wait_for
from tests.integration.flowkit import (AMQP_URL, assert_logs_clean, codes_by_relpath, declare, dd_post,
                                       files_under, publish_raw, qname, queue_consumers, stop, sub_config,
                                       taps, tmp_files)

__all__ = ["taps"]


def v02_topic(relpath: str) -> str:
    dirs = [w.replace("#", "%23").replace(" ", "%20") for w in relpath.strip("/").split("/")[:-1] if w]
    return ".".join(["v02.post", *dirs])


def esc(text: str) -> str:
    return text.replace(" ", "%20").replace("#", "%23")


def pubtime() -> str:
    t = time.time()
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}"


@dataclass
class Bench:
    """One running subscriber (mirror, attempts 2) on a private exchange,
    the source tree it downloads from, and a tap on its log messages."""
    src: Path
    dst: Path
    outside: Path
    exchange: str
    proc: object
    reports: object
    queue: str
    n: int = 0

    def post(self, relpath: str, sum_header: str | None = None, base_url: str | None = None,
             extra: dict | None = None, data: bytes | None = None, size: int | None = None) -> None:
        """A hand-made v02 post for src/relpath (md5 sum of its content unless given)."""
        if data is None and (self.src / relpath.lstrip("/")).is_file():
            data = (self.src / relpath.lstrip("/")).read_bytes()
        headers = {}
        if sum_header is not None:
            headers["sum"] = sum_header
        else:
            headers["sum"] = "d," + hashlib.md5(data).hexdigest()
        if data is not None or size is not None:
            headers["parts"] = f"1,{size if size is not None else len(data)},1,0,0"
        headers.update(extra or {})
        base = base_url if base_url is not None else f"file:{self.src}/"
        publish_raw(self.exchange, v02_topic(relpath),
                    f"{pubtime()} {esc(base)} {esc(relpath)}", headers)

    def good(self) -> str:
        """Post a fresh, correct file and wait until it is in place and reported 201."""
        self.n += 1
        rel = f"good/ok_{self.n:03d}.bin"
        path = self.src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000 + self.n))
        self.post(rel)
        self.wait_code(rel, 201)
        assert (self.dst / rel).read_bytes() == path.read_bytes()
        assert self.proc.poll() is None, "the subscriber stopped"
        return rel

    def wait_code(self, relpath: str, code: int, timeout: float = 15):
        self.reports.wait(lambda ms: code in codes_by_relpath(ms).get(relpath, {}), timeout,
                          f"a {code} log message for {relpath}")
        return [m for m in self.reports.messages if m.relpath == relpath]

    def log(self) -> str:
        return Path(self.proc.log).read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def bench(sarra_home, unique, procs, taps, tmp_path):
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    for d in (src, dst, outside):
        d.mkdir()
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"bad_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra="attempts 2\n")
    declare(name)
    q = qname(sarra_home, name)
    taps.queues.append(q)
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    wait_for(lambda: queue_consumers(q) == 1, timeout=20, interval=0.1, what="the consumer")
    b = Bench(src, dst, outside, ex, proc, reports, q)
    yield b
    assert_logs_clean(proc.log)


def test_malformed_messages_are_logged_and_the_next_ones_processed(bench):
    ok = {"sum": "d," + "0" * 32, "parts": "1,10,1,0,0"}
    url = esc(f"file:{bench.src}/")
    bench.good()
    publish_raw(bench.exchange, "v02.post", "onefield", ok)
    bench.good()
    publish_raw(bench.exchange, "v02.post.x", f"2024-13-99T99 {url} x/bad_time.bin", ok)
    bench.good()
    publish_raw(bench.exchange, "v02.post", f"{pubtime()} {url} no_sum.bin", {"parts": "1,1,1,0,0"})
    bench.good()
    publish_raw(bench.exchange, "v02.post", b"\xff\xfe not utf-8 \xc3", ok)
    bench.good()
    publish_raw(bench.exchange, "v02.post", f"{pubtime()} {url} bad_parts.bin",
                {"sum": ok["sum"], "parts": "q,z"})
    last = bench.good()

    log = bench.log()
    assert "malformed message" in log
    for field in ("body:", "pubtime:", "sum:", "parts:"):
        assert field in log, f"the log does not name the field '{field}':\n{log[-3000:]}"
    # a malformed message whose pubtime, base URL and relpath are sound is
    # reported 417 (to its source); the others cannot be reported at all
    codes = {m.relpath: m.report.code for m in bench.reports.settle(0.5)}
    assert codes == {**{f"good/ok_{i:03d}.bin": 201 for i in range(1, bench.n + 1)},
                     "no_sum.bin": 417, "bad_parts.bin": 417}, codes
    assert last in codes and bench.proc.poll() is None
    text = stop(bench.proc)
    assert "'malformed': 5" in text, text[-1500:]
    # every malformed message was acknowledged (dropped), none is left to come back
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        assert conn.channel().queue_declare(bench.queue, passive=True).method.message_count == 0
    finally:
        conn.close()


def test_dotdot_and_absolute_relpaths_never_leave_the_directory(bench):
    tmp = bench.src.parent
    # '..' climbing out of the destination; the source (base URL src/a/b/)
    # exists, so only the destination's safety stops it
    (bench.src / "a" / "b").mkdir(parents=True)
    (bench.src / "etc").mkdir()
    (bench.src / "etc" / "evil.bin").write_bytes(b"evil")
    (bench.src / "a" / "etc").mkdir()
    (bench.src / "a" / "etc" / "evil.bin").write_bytes(b"evil")
    base = f"file:{bench.src}/a/b/"
    bench.post("../etc/evil.bin", base_url=base, data=b"evil")
    bench.post("../../etc/evil.bin", base_url=base, data=b"evil")
    for rel in ("../etc/evil.bin", "../../etc/evil.bin"):
        assert {m.report.code for m in bench.wait_code(rel, 403)} == {403}
    assert not (tmp / "etc").exists() and not (tmp.parent / "etc" / "evil.bin").exists()
    assert sorted(os.listdir(tmp)) == ["config", "dst", "outside", "src", "state", "sub.log"]
    assert files_under(bench.dst) == []
    bench.good()

    # an absolute relpath naming the outside directory: it must land under dst
    # (mirror keeps the path below the directory) or be refused, never outside
    abs_rel = str(bench.outside / "abs_evil.bin")
    served = Path(str(bench.src) + abs_rel)
    served.parent.mkdir(parents=True)
    served.write_bytes(b"absolute")
    bench.post(abs_rel, base_url=f"file:{bench.src}", data=b"absolute")
    bench.reports.wait(lambda ms: abs_rel in codes_by_relpath(ms), 15, "a log message")
    code = set(codes_by_relpath(bench.reports.messages)[abs_rel])
    assert not (bench.outside / "abs_evil.bin").exists(), "written outside the directory"
    assert code in ({201}, {403}), code
    if code == {201}:
        assert (bench.dst / abs_rel.lstrip("/")).read_bytes() == b"absolute"
    bench.good()
    assert os.listdir(bench.outside) == []


def test_symlinks_inside_the_directory_do_not_lead_outside(bench):
    victim = bench.outside / "victim.bin"
    victim.write_bytes(b"precious")

    # a symlink placed in the destination by someone else, pointing outside
    (bench.dst / "sneaky").symlink_to(bench.outside)
    (bench.src / "sneaky").mkdir()
    (bench.src / "sneaky" / "evil.bin").write_bytes(b"evil")
    bench.post("sneaky/evil.bin")
    bench.wait_code("sneaky/evil.bin", 403)
    bench.good()

    # the same trick sent as a message: a link post pointing outside is refused
    bench.post("trap", sum_header="L," + hashlib.sha512(str(bench.outside).encode()).hexdigest(),
               extra={"link": str(bench.outside)})
    bench.wait_code("trap", 403)
    assert not os.path.lexists(bench.dst / "trap")
    bench.good()

    # a remove through the planted link must not delete the file outside
    bench.post("sneaky/victim.bin", sum_header="R," + hashlib.sha512(b"victim.bin").hexdigest())
    bench.wait_code("sneaky/victim.bin", 403)
    bench.good()

    assert sorted(os.listdir(bench.outside)) == ["victim.bin"]
    assert victim.read_bytes() == b"precious"
    assert bench.proc.poll() is None


def test_inflight_name_planted_as_symlink_is_not_written_through(bench):
    """A symlink planted (by someone with access to the directory) where the
    next download writes its inflight file (``NAME.tmp``) is not followed."""
    victim = bench.outside / "victim2.bin"
    victim.write_bytes(b"precious")
    os.symlink(victim, bench.dst / "x.bin.tmp")
    (bench.src / "x.bin").write_bytes(b"overwrite " * 100)
    bench.post("x.bin")
    bench.wait_code("x.bin", 201)
    assert (bench.dst / "x.bin").read_bytes() == b"overwrite " * 100
    assert not (bench.dst / "x.bin").is_symlink()
    assert victim.read_bytes() == b"precious", "the download wrote through a planted symlink"
    bench.good()


def test_checksum_mismatch_is_retried_reported_499_and_never_put_in_place(bench, nginx):
    server = nginx(bench.src, workers=1)
    data = os.urandom(5000)
    (bench.src / "sums").mkdir()
    (bench.src / "sums" / "liar.bin").write_bytes(data)
    wrong = "d," + hashlib.md5(b"some other content").hexdigest()
    bench.post("sums/liar.bin", sum_header=wrong, base_url=server.url, data=data)
    reps = bench.wait_code("sums/liar.bin", 499, timeout=20)
    rep = [m for m in reps if m.report.code == 499][0]
    assert rep.headers["sum"] == wrong
    assert "checksum" in rep.report.message.lower(), rep.report.message
    # retried (attempts 2) before it was given up
    gets = [r for r in server.requests() if r["path"] == "/sums/liar.bin"]
    assert len(gets) >= 2, gets
    bench.good()
    assert not (bench.dst / "sums" / "liar.bin").exists()
    assert tmp_files(bench.dst) == []
    assert "checksum mismatch" in bench.log()
    assert {m.report.code for m in bench.reports.messages if m.relpath == "sums/liar.bin"} == {499}


def test_delete_and_symlink_posts_are_applied(bench):
    # through dd_post: a file, then a symlink to it (posted as sum L + link header)
    make_tree(bench.src / "tree", 3, depth=1, size=300, seed=51)
    os.symlink("target.bin", bench.src / "tree" / "link.bin")
    (bench.src / "tree" / "target.bin").write_bytes(b"target")
    dd_post(bench.exchange, f"file:{bench.src}/", bench.src, bench.src / "tree")
    bench.wait_code("tree/target.bin", 201)
    bench.wait_code("tree/link.bin", 201)
    assert (bench.dst / "tree" / "link.bin").is_symlink()
    assert os.readlink(bench.dst / "tree" / "link.bin") == "target.bin"
    assert (bench.dst / "tree" / "link.bin").read_bytes() == b"target"

    assert sorted(files_under(bench.dst / "tree")) == sorted(files_under(bench.src / "tree"))
    # a remove (sum R): the local file goes; removing it again is accepted
    bench.post("tree/target.bin", sum_header="R," + hashlib.sha512(b"target.bin").hexdigest())
    bench.reports.wait(lambda ms: len([m for m in ms if m.relpath == "tree/target.bin"]) == 2,
                       15, "the remove reported")
    reps = [m for m in bench.reports.messages if m.relpath == "tree/target.bin"]
    assert [m.report.code for m in reps] == [201, 201]
    assert reps[1].headers["sum"].startswith("R,")
    assert not (bench.dst / "tree" / "target.bin").exists()
    assert not os.path.lexists(bench.dst / "tree" / "target.bin")
    bench.post("tree/target.bin", sum_header="R," + hashlib.sha512(b"target.bin").hexdigest())
    bench.reports.wait(lambda ms: len([m for m in ms if m.relpath == "tree/target.bin"]) == 3,
                       15, "the second remove reported")
    codes = [m.report.code for m in bench.reports.messages if m.relpath == "tree/target.bin"]
    assert codes[2] in (201, 202), codes

    # a hand-made link post replaces an existing file by a symlink
    target = "../elsewhere/t.bin"
    (bench.src / "tree" / "plain.bin").write_bytes(b"plain")
    bench.post("tree/plain.bin")
    bench.wait_code("tree/plain.bin", 201)
    assert (bench.dst / "tree" / "plain.bin").read_bytes() == b"plain"
    bench.post("tree/plain.bin", sum_header="L," + hashlib.sha512(target.encode()).hexdigest(),
               extra={"link": target})
    bench.reports.wait(lambda ms: len([m for m in ms if m.relpath == "tree/plain.bin"]) == 2,
                       15, "the link post reported")
    assert [m.report.code for m in bench.reports.messages if m.relpath == "tree/plain.bin"] \
        == [201, 201]
    assert os.readlink(bench.dst / "tree" / "plain.bin") == target
    bench.good()


def test_symlink_posts_pointing_outside_the_directory_are_refused(bench):
    for rel, target in (("ln/abs.bin", "/etc"), ("ln/up.bin", "../../etc/passwd"),
                        ("ln/deep/up.bin", "../../../x")):
        bench.post(rel, sum_header="L," + hashlib.sha512(target.encode()).hexdigest(),
                   extra={"link": target})
        assert {m.report.code for m in bench.wait_code(rel, 403)} == {403}
        assert not os.path.lexists(bench.dst / rel)
    ok = "ln/deep/ok.bin"           # ../../x from ln/deep stays inside: it is made
    bench.post(ok, sum_header="L," + hashlib.sha512(b"../../x").hexdigest(),
               extra={"link": "../../x"})
    bench.wait_code(ok, 201)
    assert os.readlink(bench.dst / ok) == "../../x"
    bench.good()
