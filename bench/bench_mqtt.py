#!/usr/bin/env python3
"""MQTT benchmark (issue 18): post rate and end-to-end files/s over MQTT
(a private mosquitto; a private RabbitMQ node with its MQTT plugin) beside
AMQP (the RabbitMQ on 127.0.0.1:5672), the same files, the same run.

Beside each broker, its raw rate in this run: as many small pre-encoded
messages published through the same driver, persistent (QoS 1), each
confirmed (PUBACK or publisher confirm), into a queue or session that keeps
them, with no file, checksum or codec work: the ceiling a post rate is
measured against. dd_post runs in-process (its flow, as dd_post runs it);
the subscriber is a dd_subscribe process downloading over HTTP from nginx.
Needs RabbitMQ on 127.0.0.1:5672, nginx and mosquitto (tools/setup.sh).
Usage: python bench/bench_mqtt.py [--files 2000] [--size 4096] [--raw 5000]
"""
import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BROKER, cli, count_files, env_dirs, make_files,  # noqa: E402
                          wait_until)
from sarra.broker import Outgoing, open_broker  # noqa: E402
from sarra.components import post_flow  # noqa: E402
from sarra.config import load_config  # noqa: E402
from tools.localmosquitto import start_mosquitto  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402
from tools.localrabbit import start_rabbit  # noqa: E402

BODY = ('{"pubTime": "20261203T120000.000", "baseUrl": "http://127.0.0.1/", '
        '"relPath": "d00/e0/f000000.dat", "size": 4096}')


def raw_rate(url: str, n: int, tag: str) -> float:
    """Messages/s of ``n`` confirmed publishes into a queue that keeps them."""
    broker = open_broker(url)
    queue, exchange = f"q_bench.raw.{tag}", f"xbench_raw_{tag}"
    try:
        broker.declare_exchange(exchange)
        broker.declare_queue(queue, durable=True, expire_s=600)
        broker.bind(queue, exchange, "v03.#")
        t0 = time.perf_counter()
        for i in range(n):
            broker.publish(Outgoing(exchange, "v03.raw", {}, BODY, "application/json"))
            if i % 1000 == 999:
                broker.flush()
        broker.flush()
        elapsed = time.perf_counter() - t0
        broker.delete_queue(queue)
    finally:
        broker.close()
    return n / elapsed


def post_rate(url: str, exchange: str, src: Path, base_url: str) -> tuple[float, int]:
    cfg = load_config("post", None, [("post_broker", url), ("post_exchange", exchange),
                                     ("post_topic_prefix", "v03.post"),
                                     ("post_base_url", base_url), ("post_base_dir", str(src))])
    flow = post_flow(cfg, [str(src)])
    t0 = time.perf_counter()
    flow.run()
    elapsed = time.perf_counter() - t0
    assert flow.stats["posted"] == flow.source.total, flow.stats
    return flow.stats["posted"] / elapsed, flow.stats["posted"]


def end_to_end(tmp: Path, name: str, url: str, src: Path, n: int, base_url: str) -> dict:
    """Files/s from the start of dd_post to the last file a subscriber placed
    (and the post rate meanwhile)."""
    dst = tmp / f"dst_{name}"
    exchange = f"xbench_{name}_{os.getpid()}"
    conf = Path(os.environ["SARRA_CONFIG_DIR"]) / "subscribe" / f"bench_{name}.conf"
    # log messages are v02: MQTT 3.1.1 (RabbitMQ 3.10's plugin) carries no headers
    conf.write_text(f"broker {url}\nexchange {exchange}\ntopic_prefix v03.post\nsubtopic #\n"
                    f"mirror on\ndirectory {dst}\naccept .*\nexpire 10m\nprefetch 100\n"
                    "report_back off\n")
    cli("subscribe", "declare", f"bench_{name}")
    log = open(tmp / f"sub_{name}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "sarra.cli", "subscribe", "foreground",
                             f"bench_{name}"], cwd=ROOT, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        time.sleep(1.0)
        t0 = time.perf_counter()
        posted, count = post_rate(url, exchange, src, base_url)
        wait_until(lambda: count_files(dst) >= n, [proc], f"{n} files over {name}", 0.01)
        e2e = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(60)
        cli("subscribe", "cleanup", f"bench_{name}")
    assert count == n
    return {"post": posted, "e2e": n / e2e, "seconds": e2e}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--raw", type=int, default=5000)
    ap.add_argument("--no-rabbit-mqtt", action="store_true",
                    help="leave out the private RabbitMQ node with the MQTT plugin")
    args = ap.parse_args()
    tag = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="sarra-bench-mqtt-") as t:
        tmp = Path(t)
        dirs = env_dirs(tmp)
        src = tmp / "src"
        make_files(src, args.files, args.size)
        web = start_nginx(tmp / "nginx", src)
        mosq = start_mosquitto(tmp / "mosquitto", {"bench": "bench-pw"})
        node = None if args.no_rabbit_mqtt else start_rabbit(
            tmp / "rabbit", f"sarra_bench_mqtt_{tag}", mqtt=True)
        # (name, URL as in a configuration, URL with its password for the raw driver)
        brokers = [("amqp", BROKER, BROKER.replace("guest@", "guest:guest@")),
                   ("mosquitto", mosq.url("bench"), mosq.url("bench", password=True))]
        with open(dirs["config"] / "credentials.conf", "a") as cred:
            cred.write(mosq.credentials + "\n")
            if node is not None:     # guest may log in from 127.0.0.1 over MQTT too
                cred.write(node.mqtt_url("guest", "guest") + "\n")
                brokers.append(("rabbit-mqtt", node.mqtt_url("guest"),
                                node.mqtt_url("guest", "guest")))
        try:
            print(f"{args.files} files of {args.size} B, {os.cpu_count()} cores; "
                  f"raw: {args.raw} pre-encoded messages, each confirmed")
            for name, url, secret_url in brokers:
                raw = raw_rate(secret_url, args.raw, f"{name.replace('-', '_')}_{tag}")
                got = end_to_end(tmp, name.replace("-", "_"), url, src, args.files, web.url)
                print(f"  {name:11s}: raw {raw:7.0f} msgs/s   post {got['post']:6.0f} msgs/s "
                      f"({got['post'] / raw:4.0%} of raw)   end-to-end {got['e2e']:5.0f} "
                      f"files/s ({got['seconds']:.2f}s)")
        finally:
            web.stop()
            mosq.stop()
            if node is not None:
                node.close()


if __name__ == "__main__":
    main()
