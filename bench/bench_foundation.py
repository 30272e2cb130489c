#!/usr/bin/env python3
"""Foundation benchmark (issue 2): post rate, end-to-end files/s over file: and
HTTP, one big file over HTTP against hashing alone, subscriber peak RSS.

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and nginx (tools/setup.sh).
Usage: python bench/bench_foundation.py [--files 2000] [--size 4096] [--big-mib 1024]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BROKER, cli, count_files, declare_subscriber, env_dirs,  # noqa: E402
                          make_files, peak_rss_mb, stop_subscriber, subscriber, wait_until)
from sarra import checksum  # noqa: E402
from sarra.components import post_flow  # noqa: E402
from sarra.config import load_config  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402

def post(src: Path, base_url: str, exchange: str, targets: list[str]) -> float:
    cfg = load_config("post", None, [("post_broker", BROKER), ("post_exchange", exchange),
                                     ("post_base_url", base_url), ("post_base_dir", str(src))])
    flow = post_flow(cfg, targets)
    t0 = time.perf_counter()
    flow.run()
    elapsed = time.perf_counter() - t0
    assert flow.stats["posted"] == flow.source.total, flow.stats
    return elapsed


def post_alone(tmp: Path, src: Path, n: int) -> None:
    """dd_post's rate with nothing else running: persistent messages routed
    to a durable queue (declared, nobody consuming), confirms pipelined."""
    exchange = f"xbench_post_{os.getpid()}"
    declare_subscriber("bench_post", exchange, tmp / "unused")
    try:
        rates = [n / post(src, f"file:{src}/", exchange, [str(src)]) for _ in range(3)]
    finally:
        cli("subscribe", "cleanup", "bench_post")
    print(f"  post alone: {max(rates):6.0f} msgs/s (best of 3: "
          f"{', '.join(f'{r:.0f}' for r in rates)})")


def end_to_end(tmp: Path, src: Path, n: int, base_url: str, tag: str) -> tuple[float, float]:
    dst = tmp / f"dst_{tag}"
    exchange = f"xbench_{tag}_{os.getpid()}"
    proc = subscriber(f"bench_{tag}", exchange, dst, tmp / f"sub_{tag}.log")
    try:
        time.sleep(0.5)
        t0 = time.perf_counter()
        post_s = post(src, base_url, exchange, [str(src)])
        wait_until(lambda: count_files(dst) >= n, [proc], f"{n} files", 0.01)
        e2e = time.perf_counter() - t0
        rss = peak_rss_mb(proc.pid)
    finally:
        stop_subscriber(proc, f"bench_{tag}")
    print(f"  {tag:5s}: post {n / post_s:8.0f} msgs/s   end-to-end {n / e2e:6.0f} files/s "
          f"({e2e:.2f}s)   subscriber peak RSS {rss:.0f} MB")
    return n / post_s, n / e2e


def write_alone(directory: Path, mib: int) -> float:
    """MB/s of writing ``mib`` MiB to a new file in ``directory`` (what the
    download must also do), the file removed afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    t0 = time.perf_counter()
    with open(directory / "write-test", "wb") as f:
        for _ in range(mib):
            f.write(block)
    rate = mib / (time.perf_counter() - t0)
    (directory / "write-test").unlink()
    return rate


def download_big(tmp: Path, dst: Path, tag: str, mib: int, method: str, base_url: str,
                 src: Path, path: Path) -> tuple[float, float]:
    """(MB/s of the download, subscriber peak RSS) for the big file into ``dst``."""
    exchange = f"xbench_big_{tag}_{os.getpid()}"
    name = f"bench_big_{tag}"
    proc = subscriber(name, exchange, dst, tmp / f"sub_{name}.log", f"sum {method}\n")
    try:
        time.sleep(0.5)
        cfg = load_config("post", None, [("post_broker", BROKER), ("post_exchange", exchange),
                                         ("post_base_url", base_url), ("post_base_dir", str(src)),
                                         ("sum", method)])
        flow = post_flow(cfg, [str(path)])
        flow.run()
        posted = time.perf_counter()   # the post is confirmed: the download starts now
        target = dst / path.relative_to(src)
        wait_until(target.exists, [proc], str(target), 0.002)
        download = time.perf_counter() - posted
        rss = peak_rss_mb(proc.pid)
    finally:
        stop_subscriber(proc, name)
    target.unlink()
    return mib / download, rss


def big_file(tmp: Path, mib: int, method: str, base_url: str, src: Path) -> None:
    path = src / "big" / "big.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
    os.sync()   # let the new file reach the disk first: its writeback would slow what follows
    checksum.sum_file(str(path), method)  # warm the page cache
    t0 = time.perf_counter()
    checksum.sum_file(str(path), method)
    hash_mbs = mib / (time.perf_counter() - t0)
    targets = [("disk", tmp / "dst_big")]
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        targets.append(("tmpfs", Path(tempfile.mkdtemp(prefix="sarra-bench-", dir="/dev/shm"))))
    print(f"  {mib} MiB, sum {method}: hashing alone {hash_mbs:.0f} MB/s")
    for tag, dst in targets:
        write_mbs = write_alone(dst, mib)
        mbs, rss = download_big(tmp, dst, tag, mib, method, base_url, src, path)
        print(f"    into {tag:5s}: writing alone {write_mbs:5.0f} MB/s; download over HTTP "
              f"{mbs:4.0f} MB/s = {100 * mbs / hash_mbs:3.0f}% of hashing, "
              f"{100 * mbs / min(hash_mbs, write_mbs):3.0f}% of the slower of hashing and "
              f"writing; subscriber peak RSS {rss:.0f} MB")
        if tag == "tmpfs":
            shutil.rmtree(dst, ignore_errors=True)
    path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--sum", default="s")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarra-bench-") as t:
        tmp = Path(t)
        env_dirs(tmp)
        src = tmp / "src"
        make_files(src, args.files, args.size)
        web = start_nginx(tmp / "nginx", src)
        try:
            print(f"{args.files} files of {args.size} bytes, sum {args.sum}:")
            post_alone(tmp, src, args.files)
            end_to_end(tmp, src, args.files, f"file:{src}/", "file")
            end_to_end(tmp, src, args.files, web.url, "http")
            if args.big_mib:
                big_file(tmp, args.big_mib, args.sum, web.url, src)
        finally:
            web.stop()


if __name__ == "__main__":
    main()
