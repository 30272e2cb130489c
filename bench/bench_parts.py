#!/usr/bin/env python3
"""Multi-part benchmark (issue 5): one big file over HTTP (nginx) into a
subscriber's tree, whole and in blocks reassembled by 1, 2 and 4 instances;
MB/s against hashing the file alone, peak RSS of every instance.

Needs RabbitMQ on 127.0.0.1:5672 and nginx (tools/setup.sh).
Usage: python bench/bench_parts.py [--mib 2048] [--block 64M] [--sum s] [--dst DIR]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_foundation import write_alone  # noqa: E402
from bench.common import BROKER, cli, declare_subscriber, env_dirs, peak_rss_mb  # noqa: E402
from sarra import checksum  # noqa: E402
from sarra.components import post_flow  # noqa: E402
from sarra.config import load_config  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402


def run(tmp: Path, src: Path, path: Path, url: str, dst: Path, instances: int, block: str,
        method: str, mib: int) -> tuple[float, float]:
    """(MB/s from the confirmed post to the whole file in place, peak RSS of the
    largest instance)."""
    tag = f"p{instances}_{block}"
    exchange = f"xbench_{tag}_{os.getpid()}"
    declare_subscriber(tag, exchange, dst, f"instances {instances}\nprefetch 1\nsum {method}\n")
    procs = []
    for n in range(1, instances + 1):
        out = open(tmp / f"{tag}_{n}.log", "wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "sarra.cli", "subscribe", "foreground", tag], cwd=ROOT,
            stdout=out, stderr=out, start_new_session=True,
            env=dict(os.environ, SARRA_INSTANCE=str(n))))
    try:
        time.sleep(1.0)
        cfg = load_config("post", None, [("post_broker", BROKER), ("post_exchange", exchange),
                                         ("post_base_url", url), ("post_base_dir", str(src)),
                                         ("sum", method), ("blocksize", block)])
        post_flow(cfg, [str(path)]).run()
        t0 = time.perf_counter()
        target = dst / path.relative_to(src)
        while not target.exists():
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a subscriber died: see {tmp}/{tag}_*.log")
            time.sleep(0.002)
        took = time.perf_counter() - t0
        rss = max(peak_rss_mb(p.pid) for p in procs)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        cli("subscribe", "cleanup", tag)
    target.unlink()
    return mib / took, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--block", default="64M")
    ap.add_argument("--sum", default="s")
    ap.add_argument("--dst", default=None, help="where the subscribers write (default: tmp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarra-bench-parts-") as t:
        tmp = Path(t)
        env_dirs(tmp)
        src = tmp / "src"
        path = src / "big" / "big.bin"
        path.parent.mkdir(parents=True)
        block = os.urandom(1 << 20)
        with open(path, "wb") as f:
            for _ in range(args.mib):
                f.write(block)
        os.sync()
        checksum.sum_file(str(path), args.sum)
        t0 = time.perf_counter()
        checksum.sum_file(str(path), args.sum)
        hash_mbs = args.mib / (time.perf_counter() - t0)
        dst = Path(tempfile.mkdtemp(prefix="dst-", dir=args.dst or tmp))
        write_mbs = write_alone(dst, args.mib)   # also warms the page allocator up
        web = start_nginx(tmp / "nginx", src)
        try:
            print(f"{args.mib} MiB over HTTP, sum {args.sum}, into {dst.parent}: "
                  f"hashing alone {hash_mbs:.0f} MB/s, writing alone {write_mbs:.0f} MB/s")
            for instances, size in ((1, "1"), (1, args.block), (2, args.block),
                                    (4, args.block)):
                mbs, rss = run(tmp, src, path, web.url, dst, instances, size, args.sum,
                               args.mib)
                what = "whole file " if size == "1" else f"blocks of {args.block}"
                print(f"  {what:15s} {instances} instance{'s' if instances > 1 else ' '}: "
                      f"{mbs:5.0f} MB/s = {100 * mbs / hash_mbs:3.0f}% of hashing; "
                      f"peak RSS {rss:.0f} MB")
        finally:
            web.stop()
            shutil.rmtree(dst, ignore_errors=True)


if __name__ == "__main__":
    main()
