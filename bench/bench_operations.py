#!/usr/bin/env python3
"""Operations benchmark (issue 6): accuracy of the rate limits (achieved /
asked) for bytes/s (1, 10, 50 MB/s) and messages/s (100, 1000), and the
memory of an idle subscriber daemon.

Needs RabbitMQ on 127.0.0.1:5672 (tools/setup.sh).
Usage: python bench/bench_operations.py [--seconds 5]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BROKER, env_dirs, make_files, rss_mb,  # noqa: E402
                          stop_subscriber, subscriber, wait_until)
from sarra.components import post_flow  # noqa: E402
from sarra.config import load_config  # noqa: E402

MB = 1 << 20


def byte_limit(tmp: Path, mbs: int, seconds: float) -> None:
    src, dst = tmp / f"b{mbs}_src", tmp / f"b{mbs}_dst"
    src.mkdir()
    size = int(mbs * MB * seconds)
    with open(src / "big.bin", "wb") as f:
        block = os.urandom(MB)
        for _ in range(size // MB):
            f.write(block)
    name, ex = f"rate{mbs}", f"xbench_rate{mbs}_{os.getpid()}"
    proc = subscriber(name, ex, dst, tmp / f"{name}.log", f"byte_rate_max {mbs}M\n")
    try:
        time.sleep(0.5)
        cfg = load_config("post", None, [("post_broker", BROKER), ("post_exchange", ex),
                                         ("post_base_url", f"file:{src}/"),
                                         ("post_base_dir", str(src))])
        post_flow(cfg, [str(src / "big.bin")]).run()
        t0 = time.monotonic()
        wait_until((dst / "big.bin").exists, [proc], "the file")
        took = time.monotonic() - t0
    finally:
        stop_subscriber(proc, name)
    achieved = size / took / MB
    print(f"  byte_rate_max {mbs:3d} MiB/s: {size // MB} MiB in {took:.2f}s = {achieved:.2f} MiB/s "
          f"= {100 * achieved / mbs:.1f}% of the limit")


def message_limit(tmp: Path, rate: int, seconds: float) -> None:
    n = int(rate * seconds)
    src = tmp / f"m{rate}_src"
    make_files(src, n, 64)
    cfg = load_config("post", None, [("post_broker", BROKER),
                                     ("post_exchange", f"xbench_msg_{os.getpid()}"),
                                     ("post_base_url", f"file:{src}/"),
                                     ("post_base_dir", str(src)),
                                     ("message_rate_max", str(rate))])
    flow = post_flow(cfg, [str(src)])
    t0 = time.monotonic()
    flow.run()
    took = time.monotonic() - t0
    achieved = n / took
    print(f"  message_rate_max {rate:5d}/s: {n} posts in {took:.2f}s = {achieved:.0f}/s "
          f"= {100 * achieved / rate:.1f}% of the limit")


def idle_subscriber(tmp: Path) -> None:
    proc = subscriber("idle", f"xbench_idle_{os.getpid()}", tmp / "idle_dst", tmp / "idle.log")
    try:
        time.sleep(5)
        rss = rss_mb(proc.pid, now=True)
    finally:
        stop_subscriber(proc, "idle")
    print(f"  idle subscriber daemon: RSS {rss:.0f} MB after 5 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarra-bench-ops-") as t:
        tmp = Path(t)
        env_dirs(tmp)
        print("rate limits (one instance):")
        for mbs in (1, 10, 50):
            byte_limit(tmp, mbs, args.seconds)
        for rate in (100, 1000):
            message_limit(tmp, rate, args.seconds)
        idle_subscriber(tmp)


if __name__ == "__main__":
    main()
