"""One switch's flow, as one broker account sees it: a source posts on its
xs_ exchange, dd_sara acquires the files (the source named by the exchange,
whatever the post said), re-announces them on the switch's public exchange
with the switch's URL (nginx serving its tree), a subscriber downloads them,
the log messages come back through a log router (dd_shovel) to the source's
xr_ exchange, and dd_log shows them.

Users and permissions (dd_audit) are tested in test_audit.py; here the
local broker's guest account plays every part, and the switch's internal
exchanges have unique names.
"""
from __future__ import annotations

import json
import os

from sarra.codec import decode
from sarra.broker import Outgoing, open_broker
from sarra.codec import encode
from tests.helpers import AMQP_URL, compare_trees, run_tool, wait_for
from tests.integration.flowkit import (BROKER, assert_logs_clean, delete_queues, exchanges,
                                       stop, sub_config, taps)

__all__ = ["taps"]


def test_source_to_switch_to_subscriber_and_logs_back_home(sarra_home, unique, procs, taps,
                                                           nginx, tmp_path):
    alice_tree, data, mirror = tmp_path / "alice", tmp_path / "switch", tmp_path / "mirror"
    for day in ("2026-11-24", "2026-11-25"):
        for node in range(3):
            d = alice_tree / "results-A" / day / f"node{node:02d}"
            d.mkdir(parents=True)
            (d / "capture.dat").write_bytes(os.urandom(4000))
    data.mkdir()
    alice_web, switch_web = nginx(alice_tree, workers=1), nginx(data, workers=1)
    xs, xsarra, xin = "xs_guest", f"xsarra_{unique}", f"xreport_in_{unique}"
    xpublic, xreport = f"xpublic_{unique}", f"xreport_{unique}"
    exchanges(xs, xsarra, xin, xpublic, xreport,
              binds=[(xsarra, xs, "v02.post.#"), (xin, xs, "v02.report.#")])
    try:
        sara, sub, router = f"sara_{unique}", f"sub_{unique}", f"route_{unique}"
        sarra_home.write_config("sara", sara, (
            f"broker {BROKER}\nexchange {xsarra}\nsource_from_exchange on\ncluster lab1\n"
            f"directory {data}/${{SOURCE}}\npost_broker {BROKER}\npost_exchange {xpublic}\n"
            f"post_base_dir {data}\npost_base_url {switch_web.url}\n"
            f"report_exchange {xin}\nexpire 10m\n"))
        sub_config(sarra_home, sub, xpublic, mirror, xs)       # its logs go to xs_guest
        sarra_home.write_config("shovel", router, (
            f"broker {BROKER}\nexchange {xin}\ntopic_prefix v02.report\n"
            f"source_from_exchange on\npost_exchange {xreport},xr_${{SOURCE}}\nexpire 10m\n"))
        for tool, name in (("sara", sara), ("subscribe", sub), ("shovel", router)):
            run_tool(tool, "declare", name, timeout=60)
        first_log = run_tool("log", "--broker", BROKER, "--format", "json", timeout=60)
        assert first_log.stdout == ""     # subscribed: from now on, logs wait for dd_log
        public = taps(xpublic, "v02.post.#")
        logs = taps("xr_guest")
        everyone = [procs.start_tool(t, "foreground", n, log=tmp_path / f"{n}.log")
                    for t, n in (("sara", sara), ("subscribe", sub), ("shovel", router))]

        # alice posts, claiming to be bob: the switch labels the data alice's
        res = run_tool("post", "--post_broker", BROKER, "--post_exchange", xs,
                       "--post_base_url", alice_web.url, "--post_base_dir", alice_tree,
                       "--source", "bob", "--cluster", "elsewhere", alice_tree, timeout=60)
        assert "posted 6 of 6 files" in res.stdout
        wait_for(lambda: compare_trees(alice_tree, mirror / "guest") == [], timeout=30,
                 what="the mirror of alice's tree through the switch")
        assert compare_trees(alice_tree, data / "guest") == []

        posts = public.wait(lambda ms: len(ms) >= 6, 20, "the switch's re-posts")
        one = next(m for m in posts if m.relpath.endswith("2026-11-25/node01/capture.dat"))
        assert one.base_url == switch_web.url
        assert one.relpath == "guest/results-A/2026-11-25/node01/capture.dat"
        assert {(m.headers["source"], m.headers["from_cluster"]) for m in posts} == {
            ("guest", "lab1")}
        routed = logs.wait(lambda ms: len(ms) >= 2, 20, "log messages routed home")
        assert all(m.headers.get("source") == "guest" for m in routed)

        shown = run_tool("log", "--broker", BROKER, "--format", "json", timeout=60)
        rows = [json.loads(line) for line in shown.stdout.splitlines()]
        by = {(r["relpath"], r["code"]) for r in rows}
        # the sara's own log (201 Downloaded, relpath as alice posted it) and
        # the subscriber's (under the switch's tree)
        assert ("results-A/2026-11-24/node00/capture.dat", 201) in by, rows[:3]
        assert ("guest/results-A/2026-11-24/node00/capture.dat", 201) in by, rows[:3]
        table = run_tool("log", "--broker", BROKER, timeout=60).stdout
        assert table.startswith("POSTED (UTC)")

        # a log message forged on xs_guest in another user's name is dropped
        fake = decode("v02.report.x", {"sum": "d," + "0" * 32, "source": "guest"},
                      "20261125120000.000 http://h/ x/forged.dat 201 h mallory 0.1")
        b = open_broker(AMQP_URL)
        topic, headers, body, ctype = encode(fake)
        b.publish(Outgoing(xs, topic, headers, body, ctype))
        b.flush(10)
        b.close()
        logs.settle(1.5)
        assert not [m for m in logs.messages if m.relpath == "x/forged.dat"]
        texts = [stop(p) for p in everyone]
        assert "'spoofed': 1" in texts[2], texts[2][-800:]
        assert_logs_clean(*(tmp_path / f"{n}.log" for n in (sara, sub, router)))
    finally:
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")))
        exchanges(xsarra, xin, xpublic, xreport, delete=True)


def test_switch_takes_posts_from_user_exchanges_and_its_own_only(sarra_home, unique, procs,
                                                                  nginx, tmp_path):
    """A user who binds the switch's xpublic to its own xs_ (RabbitMQ lets it:
    read on xpublic, write on xs_<user>) would feed dd_sara the switch's own
    announcements: they arrive with exchange xpublic and are refused; posts
    on xs_<user>, and those published straight to xsarra, are taken."""
    tree, data = tmp_path / "tree", tmp_path / "switch"
    for name in ("via_user", "straight", "rogue"):
        (tree / name).mkdir(parents=True)
        (tree / name / "f.dat").write_bytes(os.urandom(1000))
    web = nginx(tree, workers=1)
    xs, xsarra, xpub = "xs_guest", f"xsarra_{unique}", f"xpub_{unique}"
    exchanges(xs, xsarra, xpub, binds=[(xsarra, xs, "v02.post.#"), (xs, xpub, "v02.post.#")])
    try:
        sara = f"sara_{unique}"
        sarra_home.write_config("sara", sara, (
            f"broker {BROKER}\nexchange {xsarra}\nsource_from_exchange on\ncluster lab1\n"
            f"directory {data}/${{SOURCE}}\nreport_back off\nexpire 10m\n"))
        run_tool("sara", "declare", sara, timeout=60)
        proc = procs.start_tool("sara", "foreground", sara, log=tmp_path / "sara.log")
        for exchange, name in ((xs, "via_user"), (xsarra, "straight"), (xpub, "rogue")):
            run_tool("post", "--post_broker", BROKER, "--post_exchange", exchange,
                     "--post_base_url", web.url, "--post_base_dir", tree, "--source", "feed",
                     tree / name, timeout=60)
        wait_for(lambda: (data / "guest" / "via_user" / "f.dat").exists()     # source: xs_
                 and (data / "feed" / "straight" / "f.dat").exists(),          # as posted
                 timeout=30, what="the two good posts")
        text = stop(proc)
        assert f"not from a user exchange: {xpub}" in text, text[-2000:]
        assert not list(data.rglob("rogue*")), sorted(data.rglob("*"))
    finally:
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")))
        exchanges(xsarra, xpub, delete=True)
