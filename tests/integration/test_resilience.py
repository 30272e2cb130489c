"""The flow survives what production does to it: a subscriber killed with
SIGKILL mid-flow, RabbitMQ stopped and started under a running subscriber,
and a broker that refuses a poster.

The SIGKILL test runs over nginx (500 files of 64 KiB last a few seconds);
the broker restart test over a plain HTTP server that answers each GET
after 30 ms, so that the flow is still going while stop_app runs.
"""
from __future__ import annotations

import os
import signal
import time

from tests.helpers import compare_trees, kill_process, make_tree, run_tool, wait_for
from tests.integration.flowkit import (assert_logs_clean, assert_no_password,
                                       codes_by_relpath, declare, dd_post, files_under, qname,
                                       queue_consumers, slow_http, stop, sub_config, taps, tmp_files,
                                       wait_same_tree)

__all__ = ["slow_http", "taps"]

N_FILES = 500
SIZE = 64 * 1024


def landed(dst) -> int:
    """Files under their final name."""
    return sum(1 for f in files_under(dst) if not f.endswith(".tmp"))


def test_sigkill_mid_flow_then_restart_loses_and_corrupts_nothing(
        sarra_home, unique, procs, taps, nginx, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_tree(src, N_FILES, depth=3, size=SIZE, seed=21)
    server = nginx(src, workers=1)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"kill_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr)
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    dd_post(ex, server.url, src, src)

    first = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub1.log")
    wait_for(lambda: first.poll() is not None or landed(dst) >= 100, timeout=30, interval=0.005,
             what="100 files to land")
    kill_process(first, signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL, first.returncode
    at_kill = landed(dst)
    assert 100 <= at_kill < N_FILES, f"{at_kill} files had landed: the kill was not mid-flow"

    second = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub2.log")
    wait_same_tree(src, dst, timeout=40, proc=second)
    assert tmp_files(dst) == [], "inflight files left behind"
    # every file was reported done at least once: downloaded (201), or found
    # already complete when its unacknowledged message came again (304)
    reports.wait(lambda ms: set(codes_by_relpath(ms)) == set(rels), 20,
                 "a log message for every file")
    reports.settle(0.5)
    bad = [(r.relpath, r.report.code) for r in reports.messages if r.report.code not in (201, 304)]
    assert bad == []
    stop(second)
    assert compare_trees(src, dst) == []
    assert tmp_files(dst) == []
    assert_logs_clean(first.log, second.log)


def test_rabbitmq_restart_mid_flow_subscriber_reconnects_and_loses_nothing(
        sarra_home, unique, procs, taps, slow_http, rabbitmq_ctl, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    half1, half2 = tmp_path / "src" / "half1", tmp_path / "src" / "half2"
    rels1 = make_tree(half1, 150, depth=2, size=SIZE, seed=31)
    rels2 = make_tree(half2, 150, depth=2, size=SIZE, seed=32)
    # 30 ms a file: the first half still flows when stop_app begins
    server = slow_http(src, 0.03)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"bounce_{unique}"
    sub_config(sarra_home, name, ex, dst, xr)
    declare(name)
    q = qname(sarra_home, name)
    taps.queues.append(q)
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    wait_for(lambda: queue_consumers(q) == 1, timeout=20, interval=0.1, what="the consumer")

    dd_post(ex, server.url, src, half1)
    wait_for(lambda: landed(dst) >= 30, timeout=30, interval=0.01, what="30 files to land")
    # mid-flow when the stop begins: messages delivered and not yet settled
    # (the subscriber goes on with the batch it holds while stop_app runs,
    # which takes 1.5 s, or more on a loaded machine: how many land by its
    # end says nothing)
    stopping_at = landed(dst)
    assert stopping_at < len(rels1), f"{stopping_at} files had landed: the stop was not mid-flow"
    rabbitmq_ctl.stop_app()
    time.sleep(1.0)
    assert proc.poll() is None, "the subscriber exited when the broker went away"
    rabbitmq_ctl.start_app()

    dd_post(ex, server.url, src, half2)
    wait_same_tree(src, dst, timeout=60, proc=proc)
    assert tmp_files(dst) == []
    assert sorted(files_under(dst / "half1")) == rels1
    assert sorted(files_under(dst / "half2")) == rels2
    wait_for(lambda: queue_consumers(q) == 1, timeout=10, interval=0.1,
             what="the subscriber consuming again")
    text = stop(proc)
    assert "broker connection lost" in text or "reconnect" in text, text[-3000:]
    assert_logs_clean(proc.log)


def test_dd_post_refused_exchange_exits_1_and_says_why(sarra_home, tmp_path):
    src = tmp_path / "src"
    make_tree(src, 3, depth=1, size=100, seed=41)
    res = dd_post("amq.foo", f"file:{src}/", src, src, check=False)
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "amq.foo" in res.stderr
    assert "ACCESS_REFUSED" in res.stderr or "NOT_FOUND" in res.stderr, res.stderr
    assert "posted 3 of 3" not in res.stdout


def test_dd_post_login_refused_exits_1_without_showing_the_password(sarra_home, tmp_path):
    src = tmp_path / "src"
    make_tree(src, 2, depth=1, size=100, seed=42)
    secret = f"pw{os.getpid()}Zq9"
    sarra_home.add_credentials(f"amqp://nobody_{os.getpid()}:{secret}@127.0.0.1:5672/")
    res = run_tool("post", "--post_broker", f"amqp://nobody_{os.getpid()}@127.0.0.1/",
                   "--post_exchange", "xs_nobody", "--post_base_url", f"file:{src}/",
                   "--post_base_dir", src, src, check=False, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 1, (res.returncode, out)
    assert "login refused" in res.stderr.lower() or "ACCESS_REFUSED" in res.stderr, res.stderr
    assert secret not in out
    assert_no_password(out, "dd_post output")
