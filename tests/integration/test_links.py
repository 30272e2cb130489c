"""Between switches: winnowing redundant feeds (two feeds of the same
products, one download each), on the local RabbitMQ with the guest account.

Routing by to_clusters, loops, log messages back to the source and a link
through a broker outage are in test_three_switches.py: three RabbitMQ
nodes set up with dd_audit and sarra.
"""
from __future__ import annotations

import os

from tests.helpers import compare_trees, run_tool, wait_for
from tests.integration.flowkit import BROKER, delete_queues, exchanges, queue_depth, stop, taps

__all__ = ["taps"]


def qname_of(sarra_home, tool: str, name: str) -> str:
    return next((sarra_home.state_dir / tool / name).glob("*.qname")).read_text().strip()


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
        for feed in (f1, f2):       # the same 100 products announced by two feeds
            run_tool("post", "--post_broker", BROKER, "--post_exchange", feed,
                     "--post_base_url", web.url, "--post_base_dir", src, src, timeout=60)
        wait_for(lambda: compare_trees(src, dst) == [], timeout=30, what="the mirror")
        winnow_q = qname_of(sarra_home, "winnow", f"w_{unique}")
        wait_for(lambda: queue_depth(winnow_q) == 0, timeout=30, interval=0.2,
                 what="the winnow to take every post of both feeds")
        texts = [stop(p) for p in running]
        assert "'duplicate': 100" in texts[0], texts[0][-600:]
        gets = [r for r in web.requests() if r["method"] == "GET"]
        assert len(gets) == 100, len(gets)            # each file downloaded once, not twice
    finally:
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")))
