"""A running dd_subscribe keeps its tree contained, sweeps only its own
inflight files, refuses an unusable directory at start, and reports local
write errors as local.

Posts are hand-made and published raw (as in test_bad_input.py) to a real
dd_subscribe on RabbitMQ (127.0.0.1:5672): the chain attack (``u ->
d1/d2/d3/d4``, ``t -> u/../../..``, ``u -> .``) and the rename attack (a
link that is fine where it is, moved by an ``R`` + ``newname`` post to a
shallower place) leave nothing in the tree resolving outside it; a
delivered ``f.tmp`` survives the stale sweep, while the inflight file a
killed instance left is removed by its successor.
"""
from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import run_tool, wait_for
from tests.hostile import HostileServer
from tests.integration.flowkit import (codes_by_relpath, declare, publish_raw, qname,
                                       queue_consumers, stop, sub_config, taps)
from tests.integration.test_bad_input import Bench, pubtime, v02_topic

__all__ = ["taps"]

L = "L,"


def link_sum(target: str) -> str:
    return L + hashlib.sha512(target.encode()).hexdigest()


def escapes(root: Path) -> list[str]:
    """Every path of the tree (links not followed while walking) that
    resolves outside ``root``."""
    real = os.path.realpath(root)
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            resolved = os.path.realpath(path)
            if resolved != real and not resolved.startswith(real + os.sep):
                out.append(f"{os.path.relpath(path, root)} -> {resolved}")
    return out


def start_subscriber(sarra_home, unique, procs, taps, tmp_path, extra: str = "",
                     reports=None, log: str = "sub.log") -> Bench:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    for d in (src, dst, outside):
        d.mkdir(exist_ok=True)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"tree_{unique}"
    reports = reports or taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra=f"attempts 1\nretry_delay 60\n{extra}")
    declare(name)
    q = qname(sarra_home, name)
    taps.queues.append(q)
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / log)
    wait_for(lambda: queue_consumers(q) == 1, timeout=20, interval=0.1, what="the consumer")
    return Bench(src, dst, outside, ex, proc, reports, q)


@pytest.fixture
def bench(sarra_home, unique, procs, taps, tmp_path):
    b = start_subscriber(sarra_home, unique, procs, taps, tmp_path)
    yield b
    stop(b.proc)


def links_of(bench: Bench, relpath: str) -> list[int]:
    return [m.report.code for m in bench.reports.messages if m.relpath == relpath]


def test_the_chain_and_rename_attacks_leave_nothing_resolving_outside(bench):
    dst = bench.dst
    bench.post("d1/d2/d3/d4", sum_header="m," + hashlib.sha512(b"d4").hexdigest())
    bench.wait_code("d1/d2/d3/d4", 201)
    # the chain: t -> u/../../.. is inside while u is deep, outside once u -> .
    bench.post("esc/u", sum_header=link_sum("../d1/d2/d3/d4"), extra={"link": "../d1/d2/d3/d4"})
    bench.wait_code("esc/u", 201)
    bench.post("esc/t", sum_header=link_sum("u/../../.."), extra={"link": "u/../../.."})
    reps = bench.wait_code("esc/t", 403)
    assert "after a name" in reps[0].report.message, reps[0].report.message
    bench.post("esc/u", sum_header=link_sum("."), extra={"link": "."})
    bench.reports.wait(lambda ms: links_of(bench, "esc/u") == [201, 201], 15, "u -> . made")
    assert os.readlink(dst / "esc" / "u") == "."
    assert not os.path.lexists(dst / "esc" / "t")

    # the rename: a/b/c/l -> ../../.. is the root itself there; moved to the
    # top it would be three levels above it
    bench.post("a/b/c/l", sum_header=link_sum("../../.."), extra={"link": "../../.."})
    bench.wait_code("a/b/c/l", 201)
    publish_raw(bench.exchange, v02_topic("a/b/c/l"),
                f"{pubtime()} file:{bench.src}/ a/b/c/l",
                {"sum": "R," + hashlib.sha512(b"l").hexdigest(), "newname": "top/l"})
    bench.reports.wait(lambda ms: links_of(bench, "a/b/c/l") == [201, 403], 15,
                       "the rename refused")
    rep = [m for m in bench.reports.messages if m.relpath == "a/b/c/l"][-1]
    assert rep.report.message.startswith("unsafe path:") and "climbs 3" in rep.report.message
    # the new-name half of the rename: the same link at the new place, refused too
    bench.post("top/l", sum_header=link_sum("../../.."), extra={"link": "../../..",
                                                                "oldname": "a/b/c/l"})
    bench.wait_code("top/l", 403)
    assert os.readlink(dst / "a" / "b" / "c" / "l") == "../../.."      # left where it was
    assert not os.path.lexists(dst / "top" / "l")

    assert escapes(dst) == [], escapes(dst)
    assert bench.proc.poll() is None, "the subscriber stopped"
    bench.good()
    assert os.listdir(bench.outside) == []
    log = bench.log()
    assert "unsafe path" in log


def test_a_local_write_error_is_reported_as_local(bench):
    (bench.dst / "blocker").write_bytes(b"a file where a directory is wanted")
    (bench.src / "blocker").mkdir()
    (bench.src / "blocker" / "f.bin").write_bytes(b"data" * 10)
    bench.post("blocker/f.bin")
    reps = bench.wait_code("blocker/f.bin", 500)
    text = reps[0].report.message
    assert "ENOTDIR" in text and str(bench.dst / "blocker") in text, text
    bench.good()


def test_a_delivered_tmp_file_survives_and_a_killed_instances_leftover_goes(
        sarra_home, unique, procs, taps, tmp_path):
    server = HostileServer(tmp_path / "served", trickle_every=0.5, give_up=30)
    try:
        (tmp_path / "served").mkdir(exist_ok=True)
        b = start_subscriber(sarra_home, unique, procs, taps, tmp_path, extra="heartbeat 1\n")
        # delivered files named like inflight files, with old modification times
        old = time.time() - 3600
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(old)) + ".000"
        for rel in ("f.tmp", "sub/g.bin.tmp"):
            (b.src / rel).parent.mkdir(parents=True, exist_ok=True)
            (b.src / rel).write_bytes(rel.encode() * 100)
            b.post(rel, extra={"mtime": stamp, "atime": stamp})
            b.wait_code(rel, 201)
            assert (b.dst / rel).stat().st_mtime < time.time() - 3000
        # a download that hangs (one byte every 0.5 s); the instance is killed in it
        (tmp_path / "served" / "slow.bin").write_bytes(os.urandom(4000))
        b.post("slow.bin", base_url=server.url + "trickle/",
               data=(tmp_path / "served" / "slow.bin").read_bytes())
        leftover = b.dst / "slow.bin.tmp"
        wait_for(lambda: leftover.exists() and any(h.sent for h in server.hits_of("slow.bin")),
                 timeout=15, interval=0.05, what="the slow download under way")
        os.kill(b.proc.pid, signal.SIGKILL)
        b.proc.wait(10)
        # its successor (the same configuration, now leaving the slow post
        # out, so that it does not start it again)
        conf = sarra_home.config_dir / "subscribe" / f"tree_{unique}.conf"
        conf.write_text("reject .*slow\\.bin$\n" + conf.read_text())
        proc = procs.start_tool("subscribe", "foreground", f"tree_{unique}",
                                log=tmp_path / "sub2.log")
        wait_for(lambda: queue_consumers(b.queue) == 1, timeout=20, interval=0.1,
                 what="the successor")
        wait_for(lambda: not leftover.exists(), timeout=25, interval=0.2,
                 what="the successor to sweep the killed instance's inflight file")
        text = Path(proc.log).read_text()
        assert "removed 1 stale inflight files" in text, text[-2000:]
        # two more housekeeping rounds (each one sweeps): the delivered ones stay
        rounds = text.count("housekeeping:")
        wait_for(lambda: Path(proc.log).read_text().count("housekeeping:") >= rounds + 2,
                 timeout=20, interval=0.2, what="two more heartbeats")
        for rel in ("f.tmp", "sub/g.bin.tmp"):
            assert (b.dst / rel).read_bytes() == rel.encode() * 100
        assert proc.poll() is None
        b.proc = proc
        b.good()
        stop(proc)
    finally:
        server.close()


def test_a_directory_through_a_regular_file_is_refused_at_start(sarra_home, unique, tmp_path):
    (tmp_path / "file").write_bytes(b"a regular file")
    name = f"baddir_{unique}"
    sub_config(sarra_home, name, f"xt_{unique}", tmp_path / "file" / "sub", f"xr_{unique}")
    for action in ("foreground", "start"):
        res = run_tool("subscribe", action, name, check=False, timeout=60)
        text = res.stdout + res.stderr
        assert res.returncode == 2, (action, res.returncode, text)
        assert "option 'directory'" in text and f"{tmp_path}/file is not a directory" in text
    status = run_tool("subscribe", "status", name, check=False, timeout=60)
    assert "running" not in status.stdout.replace("not running", ""), status.stdout
