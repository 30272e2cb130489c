"""Between switches: winnowing redundant feeds, routing by to_clusters,
no loops, log messages back to the source's switch.

Two switches are two virtual hosts of the local RabbitMQ (a second broker
process would cost more memory and start-up time than the two cores here
afford; vhosts are as separate for AMQP: exchanges, queues and bindings do
not cross them, only the shovel configurations do). The guest account plays
every part; users and permissions are dd_audit's tests.
"""
from __future__ import annotations

import os
from urllib.parse import quote

import requests

from tests.helpers import compare_trees, run_tool, wait_for
from tests.integration.flowkit import (BROKER, delete_queues, exchanges, queue_depth, slow_http,
                                       stop, taps)

__all__ = ["slow_http", "taps"]
API = "http://127.0.0.1:15672/api"
GUEST = ("guest", "guest")


def vhost(name: str) -> None:
    requests.put(f"{API}/vhosts/{quote(name, safe='')}", auth=GUEST, timeout=10).raise_for_status()
    requests.put(f"{API}/permissions/{quote(name, safe='')}/guest", auth=GUEST, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()


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


def test_to_clusters_routing_no_loops_and_logs_back_home(sarra_home, unique, procs, taps,
                                                         nginx, tmp_path):
    u = unique
    A, B = f"A{u}", f"B{u}"
    vb = f"b{u}"
    vhost(vb)
    broker_b = f"amqp://guest@127.0.0.1:5672/{vb}"
    a_tree, b_tree, sub_b = tmp_path / "a", tmp_path / "b", tmp_path / "sub_b"
    for name in ("for_b", "for_a", "for_all"):
        (a_tree / name).mkdir(parents=True)
        (a_tree / name / "f.dat").write_bytes(os.urandom(2000))
    b_tree.mkdir()
    a_web, b_web = nginx(a_tree, workers=1), nginx(b_tree, workers=1)
    a_pub, a_in = f"xpublic_{u}", f"xreport_in_{u}"
    exchanges(a_pub, a_in, "xr_alice")
    exchanges("xpublic", "xreport", "xreport_in", "xs_guest",
              binds=[("xreport_in", "xs_guest", "v02.report.#")], vhost=vb)
    alice_logs = taps("xr_alice")
    a_posts = taps(a_pub, "v02.post.#")
    try:
        names = [
            # B pulls from A what is destined to B (switch link: a sara on B)
            config(sarra_home, "sara", f"AtoB_{u}", (
                f"broker {BROKER}\nexchange {a_pub}\ncluster {B}\nmsg_to_clusters {B}\n"
                f"directory {b_tree}\npost_broker {broker_b}\npost_exchange xpublic\n"
                f"post_base_dir {b_tree}\npost_base_url {b_web.url}\n"
                f"report_exchange xreport_in\nreport_back off\nexpire 10m\n")),
            # and A would pull from B what is destined to A: never what came from A
            config(sarra_home, "shovel", f"BtoA_{u}", (
                f"broker {broker_b}\nexchange xpublic\ncluster {A}\nmsg_to_clusters {A}\n"
                f"post_broker {BROKER}\npost_exchange {a_pub}\nexpire 10m\n")),
            # a subscriber on B
            config(sarra_home, "subscribe", f"subB_{u}", (
                f"broker {broker_b}\nexchange xpublic\nmirror on\ndirectory {sub_b}\n"
                "accept .*\nreport_exchange xs_guest\nexpire 10m\n")),
            # B's log router, and the log link back to A (logs go where the data came from)
            config(sarra_home, "shovel", f"routeB_{u}", (
                f"broker {broker_b}\nexchange xreport_in\ntopic_prefix v02.report\n"
                "source_from_exchange on\npost_exchange xreport\nexpire 10m\n")),
            config(sarra_home, "shovel", f"logsBtoA_{u}", (
                f"broker {broker_b}\nexchange xreport\ntopic_prefix v02.report\n"
                f"msg_to_clusters {A}\npost_broker {BROKER}\npost_exchange {a_in}\n"
                "expire 10m\n")),
            # A's log router: to the source's xr_
            config(sarra_home, "shovel", f"routeA_{u}", (
                f"broker {BROKER}\nexchange {a_in}\ntopic_prefix v02.report\n"
                "source_from_exchange on\npost_exchange xr_${SOURCE}\nexpire 10m\n")),
        ]
        tools = ["sara", "shovel", "subscribe", "shovel", "shovel", "shovel"]
        running = [procs.start_tool(t, "foreground", n, log=tmp_path / f"{n}.log")
                   for t, n in zip(tools, names)]
        for name, dest in (("for_b", B), ("for_a", A), ("for_all", "ALL")):
            run_tool("post", "--post_broker", BROKER, "--post_exchange", a_pub,
                     "--post_base_url", a_web.url, "--post_base_dir", a_tree,
                     "--source", "alice", "--cluster", A, "--to_clusters", dest,
                     a_tree / name, timeout=60)
        wait_for(lambda: sorted(p.name for p in sub_b.glob("*")) == ["for_all", "for_b"],
                 timeout=30, what="B's subscriber to get what is for B")
        wait_for(lambda: compare_trees(a_tree / "for_b", sub_b / "for_b") == []
                 and compare_trees(a_tree / "for_all", sub_b / "for_all") == [], timeout=30,
                 what="the files, whole")
        # the subscriber's log messages on B reach alice's xr_ on A, by the log link
        logs = alice_logs.wait(lambda ms: {m.relpath for m in ms} >= {
            "for_b/f.dat", "for_all/f.dat"}, 30, "alice's log messages from B")
        assert {m.report.code for m in logs} == {201}
        assert {m.headers.get("from_cluster") for m in logs} == {A}
        # nothing came back to A: the three posts of A only
        assert len(a_posts.settle(2.0)) == 3
        texts = [stop(p) for p in running]
        assert "loop" not in texts[0]
        assert "to_clusters" in open(tmp_path / f"AtoB_{u}.log").read()   # for_a was refused
    finally:
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")
                        if "BtoA" not in str(f) and "subB" not in str(f)
                        and "routeB" not in str(f) and "logsBtoA" not in str(f)))
        requests.delete(f"{API}/vhosts/{quote(vb, safe='')}", auth=GUEST, timeout=10)


def test_a_link_survives_a_broker_restart_mid_flow(sarra_home, unique, procs, taps,
                                                   slow_http, rabbitmq_ctl, tmp_path):
    """A link (dd_sara on B pulling from A) with the broker restarted while
    files flow: every file reaches B's subscriber, none twice corrupt."""
    u = unique
    vb = f"b{u}"
    vhost(vb)
    broker_b = f"amqp://guest@127.0.0.1:5672/{vb}"
    a_tree, b_tree, sub_b = tmp_path / "a", tmp_path / "b", tmp_path / "sub_b"
    for i in range(120):
        (a_tree / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (a_tree / f"d{i % 3}" / f"f{i:03d}.dat").write_bytes(os.urandom(2000))
    b_tree.mkdir()
    a_web = slow_http(a_tree, 0.03)        # 30 ms a file: still flowing during the restart
    b_web = slow_http(b_tree, 0.0)
    a_pub = f"xpublic_{u}"
    exchanges(a_pub)
    exchanges("xpublic", vhost=vb)
    try:
        names = [config(sarra_home, "sara", f"link_{u}", (
                     f"broker {BROKER}\nexchange {a_pub}\ncluster {vb}\nmsg_to_clusters {vb}\n"
                     f"directory {b_tree}\npost_broker {broker_b}\npost_exchange xpublic\n"
                     f"post_base_dir {b_tree}\npost_base_url {b_web.url}\nreport_back off\n"
                     "expire 10m\n")),
                 config(sarra_home, "subscribe", f"subB_{u}", (
                     f"broker {broker_b}\nexchange xpublic\nmirror on\ndirectory {sub_b}\n"
                     "accept .*\nreport_back off\nexpire 10m\n"))]
        running = [procs.start_tool(t, "foreground", n, log=tmp_path / f"{n}.log")
                   for t, n in zip(("sara", "subscribe"), names)]
        run_tool("post", "--post_broker", BROKER, "--post_exchange", a_pub,
                 "--post_base_url", a_web.url, "--post_base_dir", a_tree,
                 "--to_clusters", vb, a_tree, timeout=60)
        wait_for(lambda: len(list(sub_b.rglob("*.dat"))) >= 20, timeout=30,
                 what="the first files on B")
        rabbitmq_ctl.restart_app(down_for=1.0)
        wait_for(lambda: compare_trees(a_tree, sub_b) == [], timeout=90,
                 what="every file on B after the restart")
        assert not [p for p in sub_b.rglob("*") if p.name.endswith(".tmp")]
        for p in running:
            assert p.poll() is None, "a component died with the broker"
            stop(p)
    finally:
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")
                        if "subB" not in str(f)))
        requests.delete(f"{API}/vhosts/{quote(vb, safe='')}", auth=GUEST, timeout=10)
