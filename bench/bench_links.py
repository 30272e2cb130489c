#!/usr/bin/env python3
"""Between switches benchmark (issue 7): files posted on switch A (by
dd_watch, to A's public exchange, served by A's nginx), pulled by a link
(dd_sara on B with msg_to_clusters), re-announced on B (served by B's nginx),
verified by a subscriber of B. Throughput of a burst, latency of files
written one by one (p50/p95/max from close on A to verified on B).

Switch A is the local RabbitMQ (127.0.0.1:5672), switch B a second RabbitMQ
node started for the run (tools/localrabbit.py, its own ports); the guest
account plays every part. Needs RabbitMQ and nginx (tools/setup.sh).
Usage: python bench/bench_links.py [--files 1000] [--latency 200] [--gap-ms 20]
"""
import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_switch import config, start  # noqa: E402
from bench.bench_watch import pct  # noqa: E402
from bench.common import BROKER, cli, count_files, env_dirs, wait_until  # noqa: E402
from sarra.switch.configs import LINK_NODUPE  # noqa: E402
from tests.integration.flowkit import exchanges  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402
from tools.localrabbit import start_rabbit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--latency", type=int, default=200)
    ap.add_argument("--gap-ms", type=float, default=20)
    args = ap.parse_args()
    tag = f"l{os.getpid()}"
    a_pub = f"xpublic_{tag}"
    exchanges(a_pub)
    procs = []
    with tempfile.TemporaryDirectory(prefix="sarra-bench-links-") as t:
        tmp = Path(t)
        node_b = start_rabbit(tmp / "rabbit-b", f"bench_b_{tag}", management=False)
        broker_b = node_b.url(password=None)
        env_dirs(tmp)
        with open(Path(os.environ["SARRA_CONFIG_DIR"]) / "credentials.conf", "a") as f:
            f.write(node_b.url() + "\n")
        a_tree, b_tree, sub = tmp / "a", tmp / "b", tmp / "sub"
        for d in (a_tree / "burst", a_tree / "lat", b_tree):
            d.mkdir(parents=True)
        a_web, b_web = start_nginx(tmp / "nga", a_tree), start_nginx(tmp / "ngb", b_tree)
        try:
            (Path(os.environ["SARRA_CONFIG_DIR"]) / "watch").mkdir()
            (Path(os.environ["SARRA_CONFIG_DIR"]) / "watch" / "a.conf").write_text(
                f"post_broker {BROKER}\npost_exchange {a_pub}\npost_base_dir {a_tree}\n"
                f"post_base_url {a_web.url}\npath {a_tree}\ncluster A\nto_clusters B\n")
            # the link as `dd_audit configs` writes it (its duplicate cache included)
            config("sara", "link", f"broker {BROKER}\nexchange {a_pub}\ncluster B\n"
                   f"msg_to_clusters B\nnodupe_ttl {LINK_NODUPE}\n"
                   f"directory {b_tree}\npost_broker {broker_b}\n"
                   f"post_exchange xpublic\npost_base_dir {b_tree}\npost_base_url {b_web.url}\n"
                   "report_back off\nexpire 10m\nprefetch 100\n")
            config("subscribe", "onb", f"broker {broker_b}\nexchange xpublic\nmirror on\n"
                   f"directory {sub}\naccept .*\nreport_back off\nexpire 10m\nprefetch 100\n")
            procs = [start(tool, name, tmp / f"{name}.log")
                     for tool, name in (("watch", "a"), ("sara", "link"), ("subscribe", "onb"))]
            while "to announce" not in (tmp / "a.log").read_text():
                time.sleep(0.05)
            time.sleep(1.0)

            # a burst: every file written at once; each file's latency too (from
            # its write on A to its verified copy in B's subscriber's mirror)
            written: dict[str, float] = {}
            arrived: dict[str, float] = {}

            def look_burst() -> None:
                deadline = time.monotonic() + 300
                while len(arrived) < args.files and time.monotonic() < deadline:
                    try:
                        names = os.listdir(sub / "burst")
                    except FileNotFoundError:
                        names = []
                    now = time.monotonic()
                    for name in names:
                        if name not in arrived and not name.endswith(".tmp"):
                            arrived[name] = now
                    time.sleep(0.01)

            burst_eye = threading.Thread(target=look_burst)
            burst_eye.start()
            t0 = time.perf_counter()
            for i in range(args.files):
                name = f"f{i:05d}"
                (a_tree / "burst" / name).write_bytes(os.urandom(args.size))
                written[name] = time.monotonic()
            wait_until(lambda: count_files(sub / "burst") >= args.files, procs,
                       "the burst on B", 0.01)
            burst = time.perf_counter() - t0
            burst_eye.join()

            # latency: files written one by one
            closed: dict[str, float] = {}
            landed: dict[str, float] = {}

            def look() -> None:
                deadline = time.monotonic() + 120
                while len(landed) < args.latency and time.monotonic() < deadline:
                    for name in [k for k in list(closed) if k not in landed]:
                        if (sub / "lat" / name).exists():
                            landed[name] = time.monotonic()
                    time.sleep(0.0005)

            eye = threading.Thread(target=look)
            eye.start()
            for i in range(args.latency):
                name = f"g{i:04d}"
                with open(a_tree / "lat" / name, "wb") as f:
                    f.write(os.urandom(args.size))
                closed[name] = time.monotonic()
                time.sleep(args.gap_ms / 1000)
            eye.join()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
            for tool, name in (("sara", "link"), ("subscribe", "onb")):
                cli(tool, "cleanup", name)
            exchanges(a_pub, delete=True)
            node_b.close()
            a_web.stop()
            b_web.stop()
    ms = [1000 * (landed[k] - closed[k]) for k in landed]
    in_burst = [1000 * (arrived[k] - written[k]) for k in arrived if k in written]
    print(f"A -> B, {args.size} B files: burst of {args.files} in {burst:.2f}s = "
          f"{args.files / burst:.0f} files/s from the first write on A to the last file "
          f"verified on B, each file's latency in the burst p50 {pct(in_burst, 50):.0f} ms, "
          f"p95 {pct(in_burst, 95):.0f} ms; latency of {len(ms)}/{args.latency} files "
          f"written {args.gap_ms:.0f} ms apart: p50 {pct(ms, 50):.0f} ms, "
          f"p95 {pct(ms, 95):.0f} ms, max {max(ms):.0f} ms")


if __name__ == "__main__":
    main()
