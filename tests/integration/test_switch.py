"""A switch shared by several users, end to end: dd_audit declares it, two
sources and two subscribers use it, dd_sara acquires, nginx serves, the log
router (dd_shovel) brings each delivery's log message to its source only.

Real RabbitMQ (users with their own passwords and the permissions of their
roles) and nginx.
"""
from __future__ import annotations

import json
import os

import requests

from tests.helpers import compare_trees, run_tool, wait_for
from tests.integration.flowkit import assert_logs_clean, delete_queues, stop, taps

__all__ = ["taps"]
HOST = "127.0.0.1:5672"


def url(user: str) -> str:
    return f"amqp://{user}@{HOST}/"


def dd_log(user: str) -> list[dict]:
    res = run_tool("log", "--broker", url(user), "--format", "json", timeout=60)
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_two_sources_two_subscribers_one_switch(sarra_home, unique, procs, taps, nginx,
                                                tmp_path):
    u = unique
    alice, bob, carol, dave, feeder = (f"{n}{u}" for n in ("alice", "bob", "carol", "dave",
                                                          "feed"))
    sarra_home.add_credentials(*(f"amqp://{n}:pw-{n}-Z9@{HOST}/"
                                 for n in (alice, bob, carol, dave, feeder)))
    data = tmp_path / "switch"
    data.mkdir()
    switch_web = nginx(data, workers=1)
    alice_tree = tmp_path / "alice_tree"
    for day in ("2026-11-24", "2026-11-25"):
        d = alice_tree / day
        d.mkdir(parents=True)
        for i in range(5):
            (d / f"obs{i}.dat").write_bytes(os.urandom(3000))
    alice_web = nginx(alice_tree, workers=1)
    description = tmp_path / "switch.yaml"
    description.write_text(
        f"cluster: lab{u}\nbroker: amqp://guest@{HOST}/\nfeeder: {url(feeder)}\n"
        f"data_dir: {data}\nbase_url: {switch_web.url}\n"
        f"users:\n  {alice}: source\n  {bob}: source\n  {carol}: subscriber\n"
        f"  {dave}: subscriber\n  {feeder}: feeder\n")
    try:
        out = run_tool("audit", "declare", description, timeout=60).stdout
        assert f"xs_{alice}" in out
        assert run_tool("audit", "check", description, check=False).returncode == 0
        sarra_home.write_config("sara", "switch", (
            f"broker {url(feeder)}\nexchange xsarra\nsource_from_exchange on\ncluster lab{u}\n"
            f"directory {data}/${{SOURCE}}\npost_broker {url(feeder)}\npost_exchange xpublic\n"
            f"post_base_dir {data}\npost_base_url {switch_web.url}\n"
            "report_exchange xreport_in\nexpire 10m\n"))
        sarra_home.write_config("shovel", "logs", (
            f"broker {url(feeder)}\nexchange xreport_in\ntopic_prefix v02.report\n"
            "source_from_exchange on\npost_exchange xreport,xr_${SOURCE}\nexpire 10m\n"))
        for who in (carol, dave):
            sarra_home.write_config("subscribe", who, (
                f"broker {url(who)}\nexchange xpublic\nsubtopic {alice}.#\nmirror on\n"
                f"directory {tmp_path / who}\naccept .*\nexpire 10m\n"))
        for tool, name in (("sara", "switch"), ("shovel", "logs"), ("subscribe", carol),
                           ("subscribe", dave)):
            run_tool(tool, "declare", name, timeout=60)
        assert dd_log(alice) == [] and dd_log(bob) == []     # both subscribed to their logs
        running = [procs.start_tool(t, "foreground", n, log=tmp_path / f"{n}.log")
                   for t, n in (("sara", "switch"), ("shovel", "logs"), ("subscribe", carol),
                                ("subscribe", dave))]
        public = taps("xpublic", f"v02.post.{alice}.#")

        # alice posts on her own exchange, pretending to be bob
        res = run_tool("post", "--post_broker", url(alice), "--post_base_url", alice_web.url,
                       "--post_base_dir", alice_tree, "--source", bob, alice_tree, timeout=60)
        assert "posted 10 of 10 files" in res.stdout and f"xs_{alice}" in res.stdout
        for who in (carol, dave):
            wait_for(lambda who=who: compare_trees(alice_tree, tmp_path / who / alice) == [],
                     timeout=40, what=f"{who}'s mirror")
        posts = public.wait(lambda ms: len(ms) >= 10, 20, "the switch's posts")
        assert {m.headers["source"] for m in posts} == {alice}          # not bob
        assert {m.base_url for m in posts} == {switch_web.url}

        # alice sees who got her files; bob sees nothing of it
        def delivered():
            rows = dd_log(alice)
            delivered.rows += rows
            return {(r["user"], r["code"]) for r in delivered.rows} >= {
                (carol, 201), (dave, 201), (feeder, 201)}
        delivered.rows = []
        wait_for(delivered, timeout=30, interval=0.5, what="alice's delivery log")
        mine = [r for r in delivered.rows if r["user"] in (carol, dave)]
        assert len(mine) == 20 and all(r["source"] == alice for r in delivered.rows)
        assert {r["relpath"].split("/", 1)[0] for r in mine} == {alice}
        assert dd_log(bob) == []

        for p in running:
            stop(p)
        assert_logs_clean(*(tmp_path / f"{n}.log" for n in ("switch", "logs", carol, dave)))
        for n in (alice, bob, carol, dave, feeder):
            assert f"pw-{n}-Z9" not in "".join(
                p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    finally:
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")))
        for n in (alice, bob, carol, dave):
            run_tool("audit", "remove-user", description, n, check=False, timeout=60)
        # the feeder account (dd_audit keeps the switch's own accounts)
        requests.delete(f"http://127.0.0.1:15672/api/users/{feeder}", auth=("guest", "guest"),
                        timeout=10)
