"""A hostile HTTP server never holds the subscriber, never fills its disk.

A real dd_subscribe (RabbitMQ on 127.0.0.1:5672) with ``timeout 3``,
``attempts 1``, ``retry_delay 1`` and ``download_size_max 1M`` is given
posts of files served by tests/hostile.py: a trickle (one byte every 2 s),
a stall (headers, then nothing), an endless body without Content-Length, a
lying Content-Length. Each bad transfer is cut off within a stated time,
with its reason in the log message sent back; nothing partial sits under a
final name and the inflight file is gone; the subscriber keeps running, and
a good post made meanwhile arrives byte for byte while the bad one is
being retried. The disk reserve: a download stops before it eats the
reserve, and is retried.

Posts are hand-made (as in test_bad_input.py): the size announced or not.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.hostile import HostileServer
from tests.integration.flowkit import (codes_by_relpath, declare, files_under, publish_raw,
                                       qname, queue_consumers, stop, sub_config, taps)

__all__ = ["taps"]

TIMEOUT = 3.0           # the subscriber's timeout (and rate window): more than
                        # the trickle's 2 s, so that no single read times out
# a bad transfer is cut off, from the request's arrival to the client leaving,
# within: a stall, one timeout; a trickle, the rate window plus one read
# (2 timeouts); with a second of slack for a shared machine
STALL_CUT = TIMEOUT + 1.5
TRICKLE_CUT = 2 * TIMEOUT + 1.5


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    server = HostileServer(tmp_path_factory.mktemp("hostile"), trickle_every=2.0, give_up=60)
    yield server
    server.close()


def pubtime() -> str:
    t = time.time()
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}"


class Bench:
    """A running subscriber on a private exchange, the tap on its log messages."""

    def __init__(self, server: HostileServer, dst: Path, exchange: str, proc, reports, tag: str):
        self.server, self.dst, self.exchange = server, dst, exchange
        self.proc, self.reports, self.tag = proc, reports, tag
        self.n = 0

    def file(self, rel: str, data: bytes) -> str:
        """``data`` served as ``<tag>/rel``; returns that relpath."""
        rel = f"{self.tag}/{rel}"
        path = self.server.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel

    def post(self, kind: str, rel: str, sized: bool = True, data: bytes | None = None) -> None:
        """A v02 post of ``rel`` from the server's ``kind`` path; the md5 of
        ``data`` (default: the file); its size in ``parts`` when ``sized``."""
        if data is None:
            data = (self.server.root / rel).read_bytes()
        headers = {"sum": "d," + hashlib.md5(data).hexdigest()}
        if sized:
            headers["parts"] = f"1,{len(data)},1,0,0"
        base = f"{self.server.url}{kind}/"
        topic = ".".join(["v02.post", *rel.split("/")[:-1]])
        publish_raw(self.exchange, topic, f"{pubtime()} {base} {rel}", headers)

    def good(self, timeout: float = 10) -> float:
        """Post a good file, wait for it in place byte for byte (and its 201);
        return how long that took."""
        self.n += 1
        data = os.urandom(20_000 + self.n)
        rel = self.file(f"good/ok_{self.n}.bin", data)
        t0 = time.monotonic()
        self.post("good", rel)
        self.wait_code(rel, 201, timeout)
        took = time.monotonic() - t0
        assert (self.dst / rel).read_bytes() == data
        self.alive()
        return took

    def wait_code(self, rel: str, code: int, timeout: float = 15) -> list:
        self.reports.wait(lambda ms: code in codes_by_relpath(ms).get(rel, {}), timeout,
                          f"a {code} log message for {rel}")
        return [m for m in self.reports.messages if m.relpath == rel and m.report.code == code]

    def alive(self) -> None:
        assert self.proc.poll() is None, "the subscriber stopped:\n" + self.log()[-3000:]

    def log(self) -> str:
        return Path(self.proc.log).read_text(encoding="utf-8", errors="replace")

    def hits_ended(self, rel: str, n: int, timeout: float = 20) -> list:
        """The first ``n`` requests for ``rel``, once the server saw each end."""
        def ended():
            hits = self.server.hits_of(rel)
            return hits[:n] if len(hits) >= n and all(h.end for h in hits[:n]) else None
        return wait_for(ended, timeout=timeout, interval=0.05,
                        what=f"{n} finished requests for {rel}")

    def nothing_left(self, *rels: str) -> None:
        """No final name for ``rels``, and no inflight file anywhere."""
        for rel in rels:
            assert not (self.dst / rel).exists(), f"{rel} was put in place"
        leftovers = [f for f in files_under(self.dst) if f.endswith(".tmp")]
        assert leftovers == [], leftovers


def make_bench(sarra_home, unique, procs, taps, tmp_path, server, extra: str = "") -> Bench:
    dst = tmp_path / "dst"
    dst.mkdir()
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"hostile_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra=(
        f"timeout {TIMEOUT:g}\nattempts 1\nretry_delay 1\ndownload_size_max 1M\n{extra}"))
    declare(name)
    q = qname(sarra_home, name)
    taps.queues.append(q)
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    wait_for(lambda: queue_consumers(q) == 1, timeout=20, interval=0.1, what="the consumer")
    return Bench(server, dst, ex, proc, reports, unique)


@pytest.fixture
def bench(sarra_home, unique, procs, taps, tmp_path, hostile):
    b = make_bench(sarra_home, unique, procs, taps, tmp_path, hostile)
    yield b
    b.alive()
    stop(b.proc)


def test_a_trickle_is_cut_off_and_retried_while_good_posts_flow(bench):
    rel = bench.file("trickle/slow.bin", os.urandom(5000))
    bench.post("trickle", rel)
    rep = bench.wait_code(rel, 499, timeout=TRICKLE_CUT + 5)[0]
    assert "too slow" in rep.report.message and "transfer_rate_min" in rep.report.message, \
        rep.report.message
    first = bench.hits_ended(rel, 1)[0]
    assert first.how == "client left" and first.lasted <= TRICKLE_CUT, first
    assert first.sent <= 3
    print(f"trickle: cut off after {first.lasted:.2f}s")
    # the trickle is retried (retry_delay 1, doubling): a good post made
    # meanwhile arrives, byte for byte, within one cut-off of a retry
    took = bench.good(timeout=TRICKLE_CUT + 5)
    assert took <= TRICKLE_CUT + 3, took
    # and one made while a retry round holds the subscriber waits for its cut-off only
    wait_for(lambda: len(bench.server.hits_of(rel)) >= 2, timeout=10, interval=0.02,
             what="the trickle's first retry")
    during = bench.good(timeout=TRICKLE_CUT + 5)
    assert during <= TRICKLE_CUT + 3, during
    retried = bench.hits_ended(rel, 2, timeout=10)
    assert all(h.how == "client left" and h.lasted <= TRICKLE_CUT for h in retried), retried
    print(f"trickle: good posts in {took:.2f}s, and {during:.2f}s during a retry; "
          f"the retry cut off after {retried[1].lasted:.2f}s")
    bench.nothing_left(rel)
    # reported once (the first failure); the retries stay quiet
    assert codes_by_relpath(bench.reports.settle(0.3))[rel] == {499: 1}


def test_a_stalled_server_is_cut_off_after_timeout(bench):
    rel = bench.file("stall/stuck.bin", os.urandom(5000))
    bench.post("stall", rel)
    rep = bench.wait_code(rel, 499, timeout=STALL_CUT + 5)[0]
    assert "stalled: no data for 3s (timeout)" in rep.report.message, rep.report.message
    hit = bench.hits_ended(rel, 1)[0]
    assert hit.how == "client left" and hit.lasted <= STALL_CUT and hit.sent == 0, hit
    print(f"stall: cut off after {hit.lasted:.2f}s")
    bench.good(timeout=STALL_CUT + 5)
    bench.nothing_left(rel)
    bench.alive()


def test_an_endless_body_of_unannounced_size_stops_at_the_ceiling(bench):
    rel = bench.file("forever/endless.bin", os.urandom(5000))
    bench.post("forever", rel, sized=False)
    rep = bench.wait_code(rel, 413, timeout=10)[0]
    assert "larger than download_size_max (1048576 bytes)" in rep.report.message, \
        rep.report.message
    hit = bench.hits_ended(rel, 1)[0]
    assert hit.how == "client left" and hit.lasted <= 3, hit
    print(f"endless: cut off after {hit.lasted:.2f}s, {hit.sent} bytes sent")
    bench.good()
    bench.nothing_left(rel)
    # not worth retrying: asked for once, reported once
    time.sleep(2.5)       # two retry rounds would have come by
    assert len(bench.server.hits_of(rel)) == 1
    assert codes_by_relpath(bench.reports.settle(0.3))[rel] == {413: 1}


def test_a_lying_content_length_is_held_to_the_post(bench):
    # no size in the post, 1 TB said by the server: refused before reading
    rel = bench.file("liar/huge.bin", os.urandom(5000))
    bench.post("liar", rel, sized=False)
    rep = bench.wait_code(rel, 413, timeout=10)[0]
    assert "announced by the server: 1000000000000 bytes" in rep.report.message, \
        rep.report.message
    # the post says 5000 bytes: those are taken, the rest of the endless body is not
    ok = bench.file("liar/sized.bin", os.urandom(5000))
    bench.post("liar", ok)
    bench.wait_code(ok, 201, timeout=10)
    assert (bench.dst / ok).read_bytes() == (bench.server.root / ok).read_bytes()
    hit = bench.hits_ended(ok, 1)[0]
    assert hit.how == "client left" and hit.lasted <= 3, hit
    bench.good()
    bench.nothing_left(rel)


def test_a_download_stops_before_it_eats_the_disk_reserve(sarra_home, unique, procs, taps,
                                                           tmp_path, hostile):
    # the reserve: what is free now, less 64 MiB; an endless body (ceiling 1G) fills those
    st = os.statvfs(tmp_path)
    reserve = st.f_bavail * st.f_frsize - (64 << 20)
    b = make_bench(sarra_home, unique, procs, taps, tmp_path, hostile,
                   extra=f"download_size_max 1G\ndisk_reserve {reserve}\n")
    # (make_bench's download_size_max 1M comes first: the later line wins)
    rel = b.file("forever/filler.bin", os.urandom(5000))
    b.post("forever", rel, sized=False)
    rep = b.wait_code(rel, 507, timeout=15)[0]
    assert "disk_reserve" in rep.report.message and f"{reserve} to be kept free" in \
        rep.report.message, rep.report.message
    hit = b.hits_ended(rel, 1)[0]
    assert hit.how == "client left" and hit.sent < (1 << 30), hit
    print(f"disk reserve: cut off after {hit.lasted:.2f}s, {hit.sent} bytes sent")
    b.nothing_left(rel)
    # worth retrying later (the disk may be cleaned up): asked for again
    b.hits_ended(rel, 2, timeout=10)
    b.alive()
    stop(b.proc)
    b.nothing_left(rel)


def test_an_sftp_put_too_slow_is_cut_off_and_leaves_nothing(sshd, tmp_path):
    """dd_sender's put shares the copy loop: a put that cannot keep up
    transfer_rate_min is cut off, its remote temporary file removed. (The
    slowness here is a checksum that takes 0.2 s per 1 KiB chunk: 5 KiB/s.)"""
    from sarra.config import Credentials
    from sarra.errors import TransferError
    from sarra.transfer import SCHEMES

    class Slow:
        def update(self, _chunk):
            time.sleep(0.2)

    src = tmp_path / "local.bin"
    src.write_bytes(os.urandom(64 * 1024))
    remote = tmp_path / "remote"
    url = f"{sshd.url}{remote}/f.bin"
    creds = Credentials.from_text(sshd.credentials)
    slow = SCHEMES.get("sftp")(timeout=1, credentials=creds, known_hosts=str(tmp_path / "kh"),
                               transfer_rate_min=10 * 1024)
    try:
        slow.mkdir(f"{sshd.url}{remote}")          # connected (and pooled) before the clock
        t0 = time.monotonic()
        with pytest.raises(TransferError, match="too slow") as info:
            slow.put(str(src), url, inflight=url + ".tmp", bufsize=1024, summers=[Slow()])
        took = time.monotonic() - t0
        assert info.value.recoverable and took <= 2.5, took
        assert not (remote / "f.bin").exists() and not (remote / "f.bin.tmp").exists()
    finally:
        slow.close()
    # the same put with no minimum rate goes through
    easy = SCHEMES.get("sftp")(timeout=1, credentials=creds, known_hosts=str(tmp_path / "kh"),
                               transfer_rate_min=0)
    try:
        assert easy.put(str(src), url, bufsize=16 * 1024, summers=[Slow()]) == 64 * 1024
        assert (remote / "f.bin").read_bytes() == src.read_bytes()
    finally:
        easy.close()
