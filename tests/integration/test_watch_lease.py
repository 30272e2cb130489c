"""Two dd_watch processes on one tree with ``vip`` (standing for two
machines that share the tree and the state directory): exactly one posts;
SIGKILL it and the other posts the next files within seconds, none lost,
none posted twice. Real RabbitMQ (the lease is a queue there), real files.
"""
from __future__ import annotations

import signal
import time

from tests.helpers import iter_lines, kill_process, run_tool, wait_for
from tests.integration.flowkit import taps
from tests.integration.test_watch import posts_by_relpath, watch_config

__all__ = ["taps"]


def write(src, names):
    for name in names:
        (src / name).write_bytes(name.encode() * 100)


def said(log, text: str) -> bool:
    return any(text in line for line in iter_lines(log))


def test_one_watcher_of_two_posts_and_the_other_takes_over_when_it_dies(
        sarra_home, unique, procs, taps, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ex, name = f"xw_{unique}", f"ha_{unique}"
    watch_config(sarra_home, name, ex, src, "vip 192.0.2.7\n")
    posts = taps(ex, "v02.post.#")
    first = procs.start_tool("watch", "foreground", name, log=tmp_path / "a.log")
    wait_for(lambda: said(first.log, "this instance does the watching"), timeout=20,
             interval=0.05, what="the first watcher to take the lease")
    second = procs.start_tool("watch", "foreground", name, log=tmp_path / "b.log")
    time.sleep(1.5)             # connected, contending, and not given the lease
    assert second.poll() is None, second.log.read_text()
    assert not said(second.log, "this instance does the watching")

    write(src, [f"a{i}.dat" for i in range(5)])
    posts.wait(lambda ms: len(ms) >= 5, 20, "the first five posts")
    time.sleep(1.0)         # anything more would come now
    assert not said(second.log, "watching " + str(src)), "the second one watches too"

    kill_process(first, signal.SIGKILL)
    first.wait(10)
    killed = time.monotonic()
    write(src, [f"b{i}.dat" for i in range(5)])
    posts.wait(lambda ms: len(ms) >= 10, 30, "the next five posts, from the other watcher")
    took = time.monotonic() - killed
    assert said(second.log, "this instance does the watching")
    assert took < 10, f"the takeover took {took:.1f}s"
    posts.settle(1.5)
    counts = posts_by_relpath(posts.messages)
    assert sorted(counts) == sorted([f"a{i}.dat" for i in range(5)] +
                                    [f"b{i}.dat" for i in range(5)])
    assert set(counts.values()) == {1}, counts      # none posted twice


def test_vip_elsewhere_is_refused_with_what_to_do_instead(sarra_home):
    sarra_home.write_config("subscribe", "v", "broker amqp://guest@127.0.0.1/\n"
                            "vip 192.0.2.7\naccept .*\n")
    res = run_tool("subscribe", "foreground", "v", check=False, timeout=30)
    assert res.returncode == 2, res.stderr
    assert "v.conf:2" in res.stderr and "no floating IP" in res.stderr, res.stderr
