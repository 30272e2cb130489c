"""Posts and log messages over MQTT end to end: dd_post -> mosquitto ->
dd_subscribe, the files from a real nginx, byte for byte.

A private mosquitto (the ``mosquitto`` fixture: MQTT and websockets
listeners, password file); users and passwords in credentials.conf as
always; the tools run as subprocesses, the test's own observers (Tap) use
the MQTT driver in-process.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

from sarra.config import paths
from tests.helpers import compare_trees, make_tree, run_tool, wait_for
from tests.integration.flowkit import (Tap, codes_by_relpath, files_under, stop, tmp_files,
                                       wait_same_tree)


def subscriber(sarra_home, name: str, broker: str, exchange: str, directory: Path,
               report_exchange: str, extra: str = "") -> None:
    sarra_home.write_config("subscribe", name, (
        f"broker {broker}\n"
        f"exchange {exchange}\n"
        "subtopic #\n"
        "expire 10m\n"
        f"report_exchange {report_exchange}\n"
        "mirror on\n"
        "inflight .tmp\n"
        f"directory {directory}\n"
        f"{extra}"
        "accept .*\n"))


def post(broker: str, exchange: str, base_url: str, base_dir: Path, *paths) -> str:
    res = run_tool("post", "--post_broker", broker, "--post_exchange", exchange,
                   "--post_base_url", base_url, "--post_base_dir", str(base_dir),
                   *[str(p) for p in paths], timeout=120)
    out = res.stdout + res.stderr
    assert "mqtt-pw" not in out, out
    return res.stdout


def logs_clean(*texts: str) -> None:
    for text in texts:
        assert "mqtt-pw" not in text


def test_a_tree_posted_over_mqtt_is_mirrored_by_a_websockets_subscriber(
        sarra_home, unique, procs, nginx, mosquitto, tmp_path):
    """dd_post publishes on mqtt:// (QoS 1, PUBACKs awaited), dd_subscribe
    reads over ws:// (websockets) and sends its log messages there, where a
    tap reads them: one 201 per file, and nginx served each file once."""
    sarra_home.add_credentials(*mosquitto.credentials.split())
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_tree(src, 40, depth=2, size=4096, seed=31)
    server = nginx(src, workers=1)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"mqtt_ws_{unique}"
    url = mosquitto.url("alice", password=True)
    reports = Tap(xr, "v02.report.#", f"q_tap.{unique}.r", url=url)
    posts = Tap(ex, "v02.post.#", f"q_tap.{unique}.p", url=url)
    subscriber(sarra_home, name, mosquitto.ws_url("alice"), ex, dst, xr)
    run_tool("subscribe", "declare", name, timeout=60)
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")

    out = post(mosquitto.url("alice"), ex, server.url, src, src)
    assert "posted 40 of 40 files" in out, out
    wait_same_tree(src, dst, timeout=40, proc=proc)
    assert tmp_files(dst) == []
    got = reports.wait_count(40, 20)
    reports.settle(0.5)
    by_rel = codes_by_relpath(got)
    assert sorted(by_rel) == rels and {sum(c.values()) for c in by_rel.values()} == {1}
    assert {r.report.code for r in got} == {201}
    assert {r.report.user for r in got} == {"alice"}
    announced = posts.wait_count(40, 10)
    assert sorted(p.relpath for p in announced) == rels
    assert all(p.headers["sum"].startswith("s,") for p in announced)   # headers travelled
    wait_for(lambda: len(server.requests()) >= 40, timeout=10, what="nginx's access log")
    served = [r["path"] for r in server.requests()]
    assert len(served) == 40 and len(set(served)) == 40, "a file was downloaded twice"
    logs_clean(stop(proc))
    reports.close()
    posts.close()


def instance_log(name: str, n: int) -> str:
    path = paths.log_path("subscribe", name, n)
    return Path(path).read_text(errors="replace") if os.path.exists(path) else ""


def pid_of(name: str, n: int) -> int:
    path = Path(paths.state_path("subscribe", name, f"subscribe_{name}_{n:02d}.pid"))
    return int(path.read_text().split()[0])


def test_two_instances_keep_their_session_share_it_and_survive_sigkill(
        sarra_home, unique, nginx, mosquitto, tmp_path):
    """200 files posted while no subscriber runs all come once it starts
    (the persistent session); the next files are shared by the two
    instances, each file downloaded once; an instance killed (SIGKILL) in
    the middle of a third batch loses nothing and leaves nothing partial
    once started again."""
    sarra_home.add_credentials(*mosquitto.credentials.split())
    src, dst = tmp_path / "src", tmp_path / "dst"
    server = nginx(src, workers=1)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"mqtt_two_{unique}"
    broker = mosquitto.url("bob")
    subscriber(sarra_home, name, broker, ex, dst, xr, "instances 2\nprefetch 10\n")
    run_tool("subscribe", "declare", name, timeout=60)

    first = make_tree(src / "first", 200, depth=2, size=2048, seed=32)
    assert "posted 200 of 200 files" in post(broker, ex, server.url, src, src / "first")
    run_tool("subscribe", "start", name, timeout=60)
    wait_same_tree(src, dst, timeout=60)

    second = make_tree(src / "second", 60, depth=1, size=2048, seed=33)
    post(broker, ex, server.url, src, src / "second")
    wait_same_tree(src, dst, timeout=40)
    wait_for(lambda: len(server.requests()) >= 260, timeout=10, what="nginx's access log")
    served = [r["path"] for r in server.requests()]
    assert len(served) == 260 and len(set(served)) == 260, "a file was downloaded twice"
    for n in (1, 2):                    # both instances took part in the second batch
        assert "second/" in instance_log(name, n), f"instance {n} downloaded none"

    third = make_tree(src / "third", 100, depth=1, size=64 * 1024, seed=34)
    post(broker, ex, server.url, src, src / "third")
    wait_for(lambda: any(f.startswith("third/") for f in files_under(dst)), timeout=20,
             interval=0.01, what="the third batch to start arriving")
    os.kill(pid_of(name, 1), signal.SIGKILL)
    run_tool("subscribe", "start", name, timeout=60)      # starts instance 1 again
    wait_same_tree(src, dst, timeout=60)
    assert tmp_files(dst) == [] and compare_trees(src, dst) == []
    assert len(first) + len(second) + len(third) == 360
    run_tool("subscribe", "stop", name, timeout=60)
    logs_clean(instance_log(name, 1), instance_log(name, 2))
