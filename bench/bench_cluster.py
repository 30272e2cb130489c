#!/usr/bin/env python3
"""Cluster benchmark (issue 16): a three-node RabbitMQ cluster on loopback
with quorum queues against one node with classic queues, same files, same
run; and the time from SIGKILLing the node a subscriber uses to the flow
going on (the next file verified), p50 over several kills.

Three figures per setup, interleaved: dd_post's rate (persistent, confirmed,
routed to the subscriber's queue), the end-to-end rate (posted, downloaded
from nginx, verified), and the broker's own confirmed-ingest rate (one pika
client publishing the same number of messages, pipelined confirms) as the
limit. On this machine all three nodes share 2 cores: a quorum queue writes
each message on every node (Raft), so the cluster's cost here is three
times the broker's work on the same cores; with a node per machine that
work is spread and the cost is mostly the network round trip to a majority.

Needs rabbitmq-server and nginx (tools/setup.sh); the shared broker is not
used. Usage: python bench/bench_cluster.py [--files 2000] [--size 4096]
[--rounds 2] [--kills 5]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pika  # noqa: E402

from bench.common import cli, count_files, make_files, wait_until  # noqa: E402
from tools.localnginx import find_nginx, start_nginx  # noqa: E402
from tools.localrabbit import start_cluster, start_rabbit  # noqa: E402


def broker_ingest(url: str, n: int, queue_type: str, size: int = 400) -> float:
    """Messages/s one pika client gets confirmed (persistent, pipelined
    confirms through a window of 1,000), into a queue of ``queue_type``."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    q = f"q_guest.ingest.{os.getpid()}.{time.monotonic_ns()}"
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": queue_type})
    impl, body = ch._impl, b"x" * size
    state = {"sent": 0, "confirmed": 0}

    def confirmed(frame):     # a multiple ack settles everything up to its tag
        state["confirmed"] = max(state["confirmed"], frame.method.delivery_tag)
    ready = []
    impl.confirm_delivery(ack_nack_callback=confirmed, callback=lambda _f: ready.append(1))
    while not ready:
        conn.process_data_events(0.01)
    props = pika.BasicProperties(delivery_mode=2)
    t0 = time.perf_counter()
    while state["sent"] < n:
        while state["sent"] - state["confirmed"] < 1000 and state["sent"] < n:
            impl.basic_publish("", q, body, props)
            state["sent"] += 1
        conn.process_data_events(0)
    while state["confirmed"] < n:
        conn.process_data_events(0.002)
    rate = n / (time.perf_counter() - t0)
    ch.queue_delete(q)
    conn.close()
    return rate


class Setup:
    """A broker (one node, or a cluster) and a sarra home with credentials for it."""

    def __init__(self, name: str, nodes, home: Path, queue_type: str):
        self.name, self.nodes, self.queue_type = name, nodes, queue_type
        self.home = home
        (home / "config" / "subscribe").mkdir(parents=True)
        (home / "state").mkdir()
        cred = home / "config" / "credentials.conf"
        cred.write_text("".join(n.url() + "\n" for n in nodes))
        cred.chmod(0o600)
        self.env = {"SARRA_CONFIG_DIR": str(home / "config"),
                    "SARRA_STATE_DIR": str(home / "state")}

    @property
    def broker(self) -> str:
        return ",".join(n.url(password=None) for n in self.nodes)

    def run(self, *args, **kw):
        env = dict(os.environ, **self.env)
        return cli(*args, env=env, **kw)

    def subscriber(self, name: str, exchange: str, dst: Path):
        conf = self.home / "config" / "subscribe" / f"{name}.conf"
        conf.write_text(f"broker {self.broker}\nexchange {exchange}\nqueue_type "
                        f"{self.queue_type}\nexpire 1h\nprefetch 100\nreport_back off\n"
                        f"mirror on\ndirectory {dst}\naccept .*\n")
        self.run("subscribe", "declare", name)
        out = open(self.home / f"{name}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "sarra.cli", "subscribe", "foreground",
                                 name], cwd=ROOT, stdout=out, stderr=out,
                                env=dict(os.environ, **self.env), start_new_session=True)

    def post(self, exchange: str, base_url: str, base_dir: Path, path: Path,
             node: int = 0) -> float:
        """dd_post of ``path`` through one node; its time, start-up included."""
        t0 = time.perf_counter()
        self.run("post", "--post_broker", self.nodes[node].url(password=None),
                 "--post_exchange", exchange, "--post_base_url", base_url,
                 "--post_base_dir", str(base_dir), str(path))
        return time.perf_counter() - t0


def declare_exchange(node, name: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    conn.channel().exchange_declare(name, "topic", durable=True)
    conn.close()


def finish(setup: Setup, proc, name: str, dst: Path) -> None:
    """Stop a subscriber, delete its queue and state, and its copies."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    setup.run("subscribe", "cleanup", name)
    shutil.rmtree(dst)


def one_round(setup: Setup, src: Path, n: int, base_url: str, tmp: Path, k: int) -> dict:
    ex = f"xbench_{setup.name}_{k}"
    declare_exchange(setup.nodes[0], ex)
    # dd_post alone: into the subscriber's queue, nobody consuming yet
    dst = tmp / f"dst_{setup.name}_{k}"
    name = f"b{setup.name}{k}"
    proc = setup.subscriber(name, ex, dst)
    proc.send_signal(signal.SIGSTOP)          # declared and bound, not consuming
    post_s = setup.post(ex, base_url, src, src)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGCONT)
    wait_until(lambda: count_files(dst) >= n, [proc], f"{n} files", 0.01)
    drain_s = time.perf_counter() - t0
    finish(setup, proc, name, dst)
    # end to end: posting and downloading at once
    dst = tmp / f"dst2_{setup.name}_{k}"
    proc = setup.subscriber(name, ex, dst)
    time.sleep(0.5)
    t0 = time.perf_counter()
    setup.post(ex, base_url, src, src)
    wait_until(lambda: count_files(dst) >= n, [proc], f"{n} files", 0.01)
    e2e_s = time.perf_counter() - t0
    finish(setup, proc, name, dst)
    return {"post": n / post_s, "drain": n / drain_s, "e2e": n / e2e_s,
            "ingest": broker_ingest(setup.nodes[0].url(), n, setup.queue_type)}


def resume_times(setup: Setup, tmp: Path, src_root: Path, base_url: str, kills: int,
                 kill: bool = True) -> list:
    """SIGKILL the node the subscriber uses, post one file (dd_post, through
    another node), time until it is verified on disk; the node is started
    again before the next kill. With ``kill`` off, the same without the
    kill: what posting one file and fetching it takes anyway."""
    tag = "kill" if kill else "nokill"
    ex = f"xbench_{setup.name}_{tag}"
    declare_exchange(setup.nodes[0], ex)
    dst = tmp / f"dst_{tag}"
    proc = setup.subscriber(f"b{setup.name}{tag}", ex, dst)
    log = setup.home / f"b{setup.name}{tag}.log"
    marker = "using broker node amqp://guest:***@127.0.0.1:"
    times = []
    try:
        for i in range(kills):
            wait_until(lambda: marker in log.read_text(errors="replace"), [proc],
                       "the subscriber to name its node", 0.05)
            text = log.read_text(errors="replace")
            port = int(text.rsplit(marker, 1)[1].split("/", 1)[0])
            victim = next(n for n in setup.nodes if n.amqp_port == port)
            other = next(j for j, n in enumerate(setup.nodes) if n is not victim)
            f = src_root / f"{tag}{i}.dat"
            f.write_bytes(os.urandom(4096))
            if kill:
                victim.kill()
            t0 = time.perf_counter()
            setup.post(ex, base_url, src_root, f, node=other)
            wait_until(lambda: (dst / f.name).exists(), [proc], f.name, 0.005)
            times.append(time.perf_counter() - t0)
            if kill:
                victim.start()
                time.sleep(2)       # the node back in the cluster before the next kill
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kills", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    src = tmp / "src"
    make_files(src, args.files, args.size)
    kill_src = tmp / "ksrc"
    kill_src.mkdir()
    web = start_nginx(tmp / "nginx", tmp, 1, "", find_nginx())
    base = web.url
    print(f"bench_cluster: {args.files} files of {args.size} B, {args.rounds} rounds "
          f"interleaved; {os.cpu_count()} cores shared by every node")
    single = start_rabbit(tmp / "single", f"bench_one_{os.getpid()}")
    nodes = start_cluster(tmp / "cluster", f"bench_cl{os.getpid()}_", 3)
    setups = [Setup("one", [single], tmp / "home_one", "classic"),
              Setup("three", nodes, tmp / "home_three", "quorum")]
    figures = {s.name: [] for s in setups}
    try:
        for k in range(args.rounds):
            for s in setups:
                figures[s.name].append(one_round(s, src, args.files, f"{base}src/", tmp, k))
        for s in setups:
            rows = figures[s.name]
            med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
            label = ("one node, classic queues" if s.name == "one"
                     else "three nodes, quorum queues")
            print(f"  {label:28s} post {med['post']:6.0f} msgs/s   drain {med['drain']:5.0f} "
                  f"files/s   end to end {med['e2e']:5.0f} files/s   | broker's confirmed "
                  f"ingest {med['ingest']:6.0f} msgs/s (the limit; post at "
                  f"{100 * med['post'] / med['ingest']:.0f}%)")
        url = base.rstrip("/") + "/ksrc/"
        plain = resume_times(setups[1], tmp, kill_src, url, args.kills, kill=False)
        times = resume_times(setups[1], tmp, kill_src, url, args.kills)
        print(f"  node SIGKILLed -> next file verified: p50 {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s over {len(times)} kills "
              f"({', '.join(f'{t:.2f}' for t in times)}); without a kill the same file takes "
              f"p50 {statistics.median(plain):.2f} s (dd_post's start-up mostly): the failover "
              f"costs {statistics.median(times) - statistics.median(plain):+.2f} s")
    finally:
        web.stop()
        threads = [threading.Thread(target=n.close) for n in [single, *nodes]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
