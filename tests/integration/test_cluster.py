"""sarra on a RabbitMQ cluster: three private nodes on loopback, clustered
(tools/localrabbit.start_cluster), started once for the session (the
``cluster`` fixture, tests/conftest.py: the admin guide's cluster section
runs on it too).

- a subscriber given the three nodes, on a quorum queue, while the node it
  is connected to and then the leader of its queue are SIGKILLed mid-flow
  (450 files):
  every file arrives once, byte for byte, nothing partial, nothing left
  unacknowledged; the poster on another node keeps posting;
- a subscriber reading a stream from a chosen point, killed mid-replay and
  restarted: it resumes after what it settled;
- a switch declared by dd_audit on the cluster (quorum queues, its stream),
  the node its components use SIGKILLed mid-flow: the subscriber reading the
  stream gets everything, and its log messages reach the source.
"""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from urllib.parse import quote

import pika

from tests.helpers import kill_process, make_tree, run_tool, wait_for
from tests.integration.flowkit import (assert_logs_clean, files_under, slow_http, stop,
                                       tmp_files, wait_same_tree)
from tests.clusterkit import alive, all_running, api
from tools.localrabbit import RabbitNode

__all__ = ["slow_http"]
SIZE = 4096


def node_urls(nodes: list[RabbitNode], password: bool = False) -> list[str]:
    return [n.url(password="guest" if password else None) for n in nodes]


def queue_info(nodes, queue: str) -> dict:
    return api(alive(nodes)[0], f"queues/%2F/{quote(queue, safe='')}")


def by_port(nodes, port: int) -> RabbitNode:
    return next(n for n in nodes if n.amqp_port == port)


def node_in_use(log: Path, nodes, after: int = 0) -> tuple[RabbitNode, int]:
    """The node the subscriber's log last said it uses (and where that line ends)."""
    found = []

    def said():
        text = log.read_text(errors="replace")
        found[:] = [(m.end(), int(m.group(1))) for m in
                    re.finditer(r"using broker node amqp://guest(?::\*\*\*)?@127\.0\.0\.1:(\d+)/", text)
                    if m.end() > after]
        return found
    wait_for(said, timeout=60, interval=0.1, what="the subscriber to name its node")
    end, port = found[-1]
    return by_port(nodes, port), end


def landed(dst: Path) -> int:
    return sum(1 for f in files_under(dst) if not f.endswith(".tmp"))


def post(nodes, node: RabbitNode, exchange: str, base_url: str, src: Path, *paths,
         procs, log: Path, user: str = "guest"):
    """dd_post through ``node`` only (in the background)."""
    return procs.start_tool("post", "--post_broker", node.url(user, password=None),
                            "--post_exchange", exchange, "--post_base_url", base_url,
                            "--post_base_dir", str(src), *[str(p) for p in paths], log=log)


def declare_exchange(node: RabbitNode, name: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    conn.channel().exchange_declare(name, "topic", durable=True)
    conn.close()


def test_quorum_queue_flow_survives_killing_the_subscribers_node_then_the_leader(
        cluster, sarra_home, unique, procs, slow_http, tmp_path):
    all_running(cluster)
    sarra_home.add_credentials(*node_urls(cluster, password=True))
    src, dst = tmp_path / "src", tmp_path / "dst"
    parts = [src / f"p{i}" for i in range(3)]
    rels = [make_tree(p, 150, depth=2, size=SIZE, seed=70 + i) for i, p in enumerate(parts)]
    server = slow_http(src, 0.01)       # 10 ms a file: the flow lasts through the kills
    ex, queue = f"xcl_{unique}", f"q_guest.cluster_{unique}"
    declare_exchange(cluster[0], ex)
    sarra_home.write_config("subscribe", "cl", (
        f"broker {','.join(node_urls(cluster))}\n"
        f"exchange {ex}\nqueue_name {queue}\nqueue_type quorum\nexpire 1d\n"
        "report_back off\nmirror on\ninflight .tmp\n"
        f"directory {dst}\naccept .*\n"))
    run_tool("subscribe", "declare", "cl", timeout=60)
    info = queue_info(cluster, queue)
    assert info["type"] == "quorum" and len(info["members"]) == 3, info
    sub = procs.start_tool("subscribe", "foreground", "cl", log=tmp_path / "sub.log")
    first, seen = node_in_use(sub.log, cluster)

    # the poster goes through a node that is not the subscriber's
    poster_node = next(n for n in cluster if n is not first)
    p1 = post(cluster, poster_node, ex, server.url, src, parts[0], procs=procs,
              log=tmp_path / "post1.log")
    wait_for(lambda: landed(dst) >= 40, timeout=60, interval=0.01, what="40 files")
    p2 = post(cluster, poster_node, ex, server.url, src, parts[1], procs=procs,
              log=tmp_path / "post2.log")
    first.kill()
    at_kill = landed(dst)
    assert at_kill < 300, f"{at_kill} files had landed: the kill was not mid-flow"
    second, seen = node_in_use(sub.log, cluster, seen)
    assert second is not first
    assert p1.wait(60) == 0, (tmp_path / "post1.log").read_text()
    assert p2.wait(60) == 0, (tmp_path / "post2.log").read_text()
    wait_for(lambda: landed(dst) >= 300, timeout=90, interval=0.1, what="the first 300 files")
    all_running(cluster)        # the killed node back in the cluster

    # now the leader of the queue, whichever node it is
    leader = next(n for n in cluster if n.nodename == queue_info(cluster, queue)["leader"])
    poster_node = next(n for n in cluster if n is not leader)
    p3 = post(cluster, poster_node, ex, server.url, src, parts[2], procs=procs,
              log=tmp_path / "post3.log")
    wait_for(lambda: landed(dst) >= 330, timeout=60, interval=0.01, what="330 files")
    leader.kill()
    assert landed(dst) < 450, "the leader's kill was not mid-flow"
    assert p3.wait(90) == 0, (tmp_path / "post3.log").read_text()
    wait_same_tree(src, dst, timeout=120, proc=sub)
    all_running(cluster)
    assert tmp_files(dst) == []
    for part, want in zip(parts, rels):
        assert sorted(files_under(dst / part.name)) == want
    # nothing left in the queue, nothing left unacknowledged
    wait_for(lambda: (lambda q: q.get("messages", 1) == 0
                      and q.get("messages_unacknowledged", 1) == 0)(queue_info(cluster, queue)),
             timeout=60, interval=1, what="the queue empty and nothing unacknowledged")
    text = stop(sub)
    assert "trying" in text or "using broker node" in text
    assert_logs_clean(sub.log)


def test_a_subscriber_replays_the_stream_and_resumes_after_what_it_settled(
        cluster, sarra_home, unique, procs, nginx, tmp_path):
    """The switch's stream holds 300 posts made while no subscriber ran; a new
    subscriber reads it from 1h ago, is SIGKILLed mid-replay, and its restart
    goes on from its saved position: every file once, none downloaded again
    that was settled before the kill; then it follows live posts."""
    all_running(cluster)
    node = cluster[0]
    sarra_home.add_credentials(*node_urls(cluster, password=True))
    src, dst = tmp_path / "src", tmp_path / "dst"
    old, new = src / "old", src / "new"
    rels_old = make_tree(old, 300, depth=2, size=SIZE, seed=81)
    rels_new = make_tree(new, 20, depth=1, size=SIZE, seed=82)
    server = nginx(src, workers=1)
    ex, stream = f"xcl_{unique}", f"xcl_{unique}.stream"
    declare_exchange(node, ex)
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    ch = conn.channel()
    ch.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream",
                                                      "x-max-age": "7D"})
    ch.queue_bind(stream, ex, "#")
    conn.close()
    p = post(cluster, node, ex, server.url, src, old, procs=procs, log=tmp_path / "post.log")
    assert p.wait(60) == 0
    sarra_home.write_config("subscribe", "replay", (
        f"broker {','.join(node_urls(cluster))}\nstream {stream}\nreplay_from 1h\n"
        "prefetch 10\nreport_back off\nmirror on\ninflight .tmp\n"
        f"directory {dst}\naccept .*\n"))
    first = procs.start_tool("subscribe", "foreground", "replay", log=tmp_path / "r1.log")
    wait_for(lambda: first.poll() is not None or landed(dst) >= 60, timeout=60,
             interval=0.005, what="60 files")
    kill_process(first, signal.SIGKILL)
    first.wait(10)
    # 1h ago is before the stream's first post: the log says where it began
    assert "the oldest message stream" in first.log.read_text(), first.log.read_text()[-2000:]
    settled = int((sarra_home.state_dir / "subscribe" / "replay" /
                   "stream.00.offset").read_text())
    before = {f: (dst / f).stat().st_mtime_ns for f in files_under(dst)
              if not f.endswith(".tmp")}
    assert 0 < len(before) < 300, f"{len(before)} files before the kill"
    second = procs.start_tool("subscribe", "foreground", "replay", log=tmp_path / "r2.log")
    wait_for(lambda: second.poll() is not None or landed(dst) >= 300, timeout=60,
             interval=0.05, what="the whole replay")
    assert f"offset {settled + 1}" in second.log.read_text()
    p = post(cluster, node, ex, server.url, src, new, procs=procs, log=tmp_path / "post2.log")
    assert p.wait(60) == 0
    wait_same_tree(src, dst, timeout=60, proc=second)
    assert sorted(files_under(dst / "old")) == rels_old
    assert sorted(files_under(dst / "new")) == rels_new
    assert tmp_files(dst) == []
    # what was settled before the kill was not downloaded again (at most the
    # batch in hand at the kill was)
    again = [f for f, t in before.items() if (dst / f).stat().st_mtime_ns != t]
    assert len(again) <= 10, again
    stop(second)
    assert_logs_clean(second.log)


SWITCH = """\
cluster: labq
broker: amqp://guest@127.0.0.1:{admin}/
feeder: [{feeders}]
data_dir: {data}
base_url: {base_url}
management_url: {management}
users:
  alice: source
  bob: subscriber
queue_type: quorum
stream: 7d
"""


def test_a_switch_on_the_cluster_quorum_queues_a_node_lost_and_logs_home(
        cluster, sarra_home, procs, nginx, tmp_path):
    """dd_audit declares a switch on the cluster (its components' queues
    quorum, its announcements kept in a stream); the node its components
    use, where their queues' leaders live, is SIGKILLed mid-flow: dd_sara
    and the log router go on from another node, bob (reading the switch's
    stream from the test's start) gets every file, and his log messages reach xr_alice."""
    all_running(cluster)
    one, two, three = cluster
    alice_tree, data, mirror = tmp_path / "alice", tmp_path / "data", tmp_path / "bob"
    rels = make_tree(alice_tree, 150, depth=2, size=SIZE, seed=90)
    data.mkdir()
    alice_web, switch_web = nginx(alice_tree, workers=1), nginx(data, workers=1)
    for node in cluster:
        sarra_home.add_credentials(node.url(), *(
            f"amqp://{u}:pw-{u}@127.0.0.1:{node.amqp_port}/" for u in ("alice", "bob")))
    # the components use node three first
    feeders = ", ".join(f"amqp://guest@127.0.0.1:{n.amqp_port}/" for n in (three, two, one))
    desc = tmp_path / "switch.yaml"
    desc.write_text(SWITCH.format(admin=one.amqp_port, feeders=feeders, data=data,
                                  base_url=switch_web.url, management=one.management_url))
    run_tool("audit", "declare", desc, timeout=60)
    run_tool("audit", "configs", desc, "--directory", sarra_home.config_dir, timeout=60)
    conf = (sarra_home.config_dir / "sara" / "switch.conf").read_text()
    assert "queue_type" in conf and "quorum" in conf, conf
    stream = queue_info(cluster, "xpublic_stream")
    assert stream["type"] == "stream" and stream["arguments"]["x-max-age"] == "604800s"

    # alice's log messages, as dd_log would read them (xr_alice on node one)
    conn = pika.BlockingConnection(pika.URLParameters(one.url()))
    ch = conn.channel()
    ch.queue_declare("q_alice.test.logs", durable=True)
    ch.queue_bind("q_alice.test.logs", "xr_alice", "#")
    # bob gives the three nodes: one that holds no replica of the stream
    # (nodes killed earlier in the session) sends him to the next
    bob_nodes = ",".join(f"amqp://bob@127.0.0.1:{n.amqp_port}/" for n in cluster)
    sarra_home.write_config("subscribe", "bob", (
        f"broker {bob_nodes}\nstream xpublic_stream\n"
        # from now: the session's cluster keeps in xpublic_stream what
        # earlier tests (the admin guide's) announced, from servers now gone
        f"replay_from {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - 2))}\n"
        "mirror on\ninflight .tmp\n"
        f"directory {mirror}\naccept .*\n"))
    everyone = [procs.start_tool(t, "foreground", n, log=tmp_path / f"{n}.log")
                for t, n in (("sara", "switch"), ("shovel", "logs"), ("subscribe", "bob"))]
    node_in_use(everyone[0].log, cluster)
    p = post(cluster, one, "xs_alice", alice_web.url, alice_tree, alice_tree, procs=procs,
             log=tmp_path / "post.log", user="alice")
    try:
        wait_for(lambda: landed(data) >= 30, timeout=60, interval=0.01,
                 what="30 files on the switch")
        three.kill()
        assert p.wait(60) == 0, (tmp_path / "post.log").read_text()
        wait_same_tree(alice_tree, mirror / "alice", timeout=90, proc=everyone[2])
    except AssertionError as exc:
        logs = "\n".join(f"--- {proc.log.name}\n" + proc.log.read_text(errors="replace")[-1500:]
                         for proc in everyone)
        raise AssertionError(f"{exc}\n{logs}") from None
    assert sorted(files_under(mirror / "alice")) == rels and tmp_files(data) == []
    sara_log = everyone[0].log.read_text()
    assert "(2 of 3)" in sara_log, sara_log[-2000:]

    def bobs_logs():
        got = set()
        while True:
            method, _props, body = ch.basic_get("q_alice.test.logs", auto_ack=True)
            if method is None:
                return got
            if b" bob " in body:
                got.add(body.split()[2].decode())
    seen: set = set()
    wait_for(lambda: seen.update(bobs_logs()) or len(seen) >= len(rels), timeout=60,
             interval=0.5, what="bob's log messages in xr_alice")
    conn.close()
    for proc in everyone:
        stop(proc)
    all_running(cluster)
