"""Mirroring a tree end to end: dd_post -> RabbitMQ -> dd_subscribe, over file: and HTTP.

Real RabbitMQ (127.0.0.1:5672), real files, a real nginx; the tools run as
subprocesses. Every flow also checks the log messages (v02.report) the
subscriber sends back, and that no password shows in any output.
"""
from __future__ import annotations

import re
from collections import Counter

from tests.helpers import compare_trees, make_tree, wait_for
from tests.integration.flowkit import (assert_logs_clean, codes_by_relpath, declare, dd_post,
                                       files_under, qname, queue_consumers, stop, sub_config,
                                       taps, tmp_files, wait_same_tree)

__all__ = ["taps"]  # the fixture, imported for pytest

N_FILES = 500
SUMMARY = re.compile(r"summary: (\d+) messages handled .* by status (\{.*\})")


def summary(log_text: str) -> tuple[int, str]:
    m = SUMMARY.search(log_text)
    assert m, f"no summary line in the subscriber log:\n{log_text[-2000:]}"
    return int(m.group(1)), m.group(2)


def check_reports(reports, posts, rels: list[str], code: int, base_url: str) -> None:
    """Exactly one log message per file, with ``code``, its relpath, user guest,
    and the sum header of the post it answers."""
    by_rel = codes_by_relpath(reports)
    assert sorted(by_rel) == rels, (
        f"reported relpaths differ: missing {sorted(set(rels) - set(by_rel))[:5]}, "
        f"unexpected {sorted(set(by_rel) - set(rels))[:5]}")
    multi = {r: c for r, c in by_rel.items() if sum(c.values()) != 1}
    assert not multi, f"files reported more than once: {list(multi.items())[:5]}"
    assert Counter(r.report.code for r in reports) == Counter({code: len(rels)})
    post_sum = {p.relpath: p.headers["sum"] for p in posts}
    for r in reports:
        assert r.report.user == "guest", r
        assert r.topic.startswith("v02.report"), r.topic
        assert r.base_url == base_url, r
        assert r.headers.get("sum") == post_sum[r.relpath], (r.relpath, r.headers, post_sum[r.relpath])
        assert r.headers.get("parts") == "1,4096,1,0,0", r.headers


def test_mirror_tree_over_file_url(sarra_home, unique, procs, taps, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_tree(src, N_FILES, depth=3, size=4096, seed=11)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"mirror_file_{unique}"
    reports, posts = taps(xr), taps(ex, "v02.post.#")
    sub_config(sarra_home, name, ex, dst, xr)
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")

    base_url = f"file:{src}/"
    res = dd_post(ex, base_url, src, src)
    assert f"posted {N_FILES} of {N_FILES} files" in res.stdout, res.stdout

    wait_same_tree(src, dst, timeout=40, proc=proc)
    assert tmp_files(dst) == []
    posts.wait_count(N_FILES, 10)
    got = reports.wait_count(N_FILES, 20)
    reports.settle(0.5)
    assert len(posts.messages) == N_FILES
    check_reports(got, posts.messages, rels, 201, base_url)

    log_text = stop(proc)
    assert summary(log_text) == (N_FILES, "{'201': %d}" % N_FILES)
    assert_logs_clean(proc.log)


def test_mirror_tree_over_http_then_repost_is_not_modified(sarra_home, unique, procs, taps,
                                                           nginx, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_tree(src, N_FILES, depth=3, size=4096, seed=12)
    server = nginx(src, workers=1)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"mirror_http_{unique}"
    reports, posts = taps(xr), taps(ex, "v02.post.#")
    sub_config(sarra_home, name, ex, dst, xr)
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")

    dd_post(ex, server.url, src, src)
    wait_same_tree(src, dst, timeout=40, proc=proc)
    assert tmp_files(dst) == []
    posts.wait_count(N_FILES, 10)
    reports.wait_count(N_FILES, 20)
    reports.settle(0.5)
    check_reports(reports.messages, posts.messages, rels, 201, server.url)

    # exactly one GET per file, each served whole (200, or 206 for a whole-file range)
    wait_for(lambda: len(server.requests()) >= N_FILES, timeout=10, what="access log")
    reqs = server.requests()
    assert len(reqs) == N_FILES
    assert {(r["method"], r["bytes"]) for r in reqs} == {("GET", 4096)}
    assert {r["status"] for r in reqs} <= {200, 206}
    assert len({r["path"] for r in reqs}) == N_FILES
    served = server.access_log.read_text()

    # the same tree again: every file is already there, identical
    reports.messages.clear()
    posts.messages.clear()
    dd_post(ex, server.url, src, src)
    posts.wait_count(N_FILES, 10)
    reports.wait_count(N_FILES, 30)
    reports.settle(1.0)
    check_reports(reports.messages, posts.messages, rels, 304, server.url)
    assert server.access_log.read_text() == served, "files were downloaded again"
    assert compare_trees(src, dst) == []

    log_text = stop(proc)
    assert summary(log_text) == (2 * N_FILES, "{'201': %d, '304': %d}" % (N_FILES, N_FILES))
    assert_logs_clean(proc.log)


def test_two_instances_share_one_queue(sarra_home, unique, procs, taps, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_tree(src, N_FILES, depth=3, size=4096, seed=13)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"mirror_inst_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra="instances 2\n")
    declare(name)
    q = qname(sarra_home, name)
    taps.queues.append(q)
    subs = [procs.start_tool("subscribe", "foreground", name, log=tmp_path / f"sub{i}.log",
                             env={"SARRA_INSTANCE": str(i)}) for i in (1, 2)]
    wait_for(lambda: queue_consumers(q) == 2, timeout=20, interval=0.1,
             what="two consumers on the shared queue")

    dd_post(ex, f"file:{src}/", src, src)
    wait_same_tree(src, dst, timeout=40)
    assert tmp_files(dst) == []
    reports.wait_count(N_FILES, 20)
    reports.settle(0.5)
    by_rel = codes_by_relpath(reports.messages)
    assert sorted(by_rel) == rels
    assert all(c == Counter({201: 1}) for c in by_rel.values()), \
        [(r, c) for r, c in by_rel.items() if c != Counter({201: 1})][:5]

    handled = []
    for p in subs:
        text = stop(p)
        assert f"queue {q} bound" in text, "the instance did not consume the shared queue"
        handled.append(summary(text)[0])
        assert_logs_clean(p.log)
    # both worked, and together they did each file exactly once (no redelivery here)
    assert all(n > 0 for n in handled), handled
    assert sum(handled) == N_FILES, handled
    state = sarra_home.state_dir / "subscribe" / name
    assert [f.name for f in state.glob("*.qname")] == [f"subscribe.{name}.guest.qname"]
    assert sorted(files_under(dst)) == rels
