"""Between switches: winnowing redundant feeds (two feeds of the same
products, one download each), on the local RabbitMQ with the guest account.

Routing by to_clusters, loops, log messages back to the source and a link
through a broker outage are in test_three_switches.py: three RabbitMQ
nodes set up with dd_audit and sarra.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import compare_trees, run_tool, wait_for
from tests.integration.flowkit import BROKER, delete_queues, exchanges, stop, taps

__all__ = ["taps"]


def config(sarra_home, tool: str, name: str, text: str) -> str:
    sarra_home.write_config(tool, name, text)
    run_tool(tool, "declare", name, timeout=60)
    return name


def test_winnow_posts_each_file_of_two_feeds_once(sarra_home, unique, procs, taps, nginx,
                                                  tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(100):
        (src / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 4}" / f"p{i:03d}.dat").write_bytes(os.urandom(1000))
    web = nginx(src, workers=1)
    f1, f2, out = f"xfeed1_{unique}", f"xfeed2_{unique}", f"xwin_{unique}"
    exchanges(f1, f2, out)
    try:
        config(sarra_home, "winnow", f"w_{unique}", (
            f"broker {BROKER}\nexchange {f1},{f2}\npost_exchange {out}\nexpire 10m\n"))
        config(sarra_home, "subscribe", f"s_{unique}", (
            f"broker {BROKER}\nexchange {out}\nmirror on\ndirectory {dst}\naccept .*\n"
            "report_back off\nexpire 10m\n"))
        running = [procs.start_tool(t, "foreground", n, log=tmp_path / f"{t}.log")
                   for t, n in (("winnow", f"w_{unique}"), ("subscribe", f"s_{unique}"))]
        # the same 100 products announced by two feeds at the same time
        with ThreadPoolExecutor(2) as pool:
            feeds = [pool.submit(run_tool, "post", "--post_broker", BROKER, "--post_exchange",
                                 feed, "--post_base_url", web.url, "--post_base_dir", src, src,
                                 timeout=60) for feed in (f1, f2)]
            for feed in feeds:
                feed.result()               # a failed dd_post fails the test here
        # One more product after both feeds: the winnow's queue is in order and it
        # has one consumer, so once this one is mirrored, every post of both feeds
        # before it has been judged (the management API's message counts lag by
        # seconds and cannot tell that).
        last = src / "last.dat"
        last.write_bytes(os.urandom(1000))
        run_tool("post", "--post_broker", BROKER, "--post_exchange", f2,
                 "--post_base_url", web.url, "--post_base_dir", src, last, timeout=60)
        wait_for(lambda: compare_trees(src, dst) == [], timeout=30, what="the mirror")
        texts = [stop(p) for p in running]
        assert "'duplicate': 100" in texts[0], texts[0][-600:]
        gets = [r for r in web.requests() if r["method"] == "GET"]
        assert len(gets) == 101, len(gets)            # each file downloaded once, not twice
    finally:
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")))
