#!/usr/bin/env python3
"""dd_watch benchmark (issue 3): latency from a file's close in the watched
tree to the verified file in a subscriber's tree; throughput of a burst of
small files (posts/s); a large tree watched (start-up time, peak RSS).

Needs RabbitMQ on 127.0.0.1:5672 (tools/setup.sh).
Usage: python bench/bench_watch.py [--latency 200] [--gap-ms 20] [--burst 10000]
                                   [--tree 100000]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import BROKER, ROOT as _ROOT, env_dirs, peak_rss_mb, subscriber  # noqa: E402
from sarra.broker import open_broker  # noqa: E402

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def watcher(name: str, exchange: str, src: Path, log: Path, extra: str = ""):
    conf = Path(os.environ["SARRA_CONFIG_DIR"]) / "watch" / f"{name}.conf"
    conf.parent.mkdir(exist_ok=True)
    conf.write_text(f"post_broker {BROKER}\npost_exchange {exchange}\npost_base_dir {src}\n"
                    f"post_base_url file:{src}/\npath {src}\n{extra}")
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "sarra.cli", "watch", "foreground", name],
                            cwd=_ROOT, stdout=out, stderr=out, start_new_session=True)
    t0 = time.monotonic()
    while "to announce" not in log.read_text():
        if proc.poll() is not None or time.monotonic() - t0 > 600:
            raise SystemExit(f"watcher did not start: see {log}")
        time.sleep(0.05)
    return proc, time.monotonic() - t0


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


class Tap:
    """Counts posts on an exchange."""

    def __init__(self, exchange: str):
        self.b = open_broker(AMQP)
        self.b.declare_exchange(exchange)
        self.q = f"q_bench_tap_{os.getpid()}_{exchange}"
        self.b.declare_queue(self.q, durable=False, expire_s=600)
        self.b.bind(self.q, exchange, "#")
        self.b.consume(self.q, 5000)
        self.n = 0

    def count_until(self, n: int, timeout: float) -> float:
        """Wait until ``n`` posts arrived; return the time of the last one."""
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while self.n < n and time.monotonic() < deadline:
            got = self.b.get(0.2)
            if got:
                last = time.monotonic()
                self.n += len(got)
                self.b.ack([d.tag for d in got])
        return last

    def close(self) -> None:
        self.b.delete_queue(self.q)
        self.b.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def latency(tmp: Path, n: int, gap: float) -> None:
    src, dst = tmp / "lat_src", tmp / "lat_dst"
    src.mkdir()
    dst.mkdir()
    ex = f"xbench_lat_{os.getpid()}"
    sub = subscriber("lat", ex, dst, tmp / "lat_sub.log")
    watch, _ = watcher("lat", ex, src, tmp / "lat_watch.log")
    closed: dict[str, float] = {}
    landed: dict[str, float] = {}

    def look() -> None:   # a file is verified and in place when its final name appears
        deadline = time.monotonic() + 120
        while len(landed) < n and time.monotonic() < deadline:
            for name in [k for k in list(closed) if k not in landed]:
                if (dst / name).exists():
                    landed[name] = time.monotonic()
            time.sleep(0.0005)

    eye = threading.Thread(target=look)
    time.sleep(1.0)
    eye.start()
    for i in range(n):
        name = f"f{i:04d}.dat"
        with open(src / name, "wb") as f:
            f.write(os.urandom(2048))
        closed[name] = time.monotonic()
        time.sleep(gap)
    eye.join()
    stop(watch)
    stop(sub)
    ms = [1000 * (landed[k] - closed[k]) for k in landed]
    print(f"  latency, close in the watched tree -> verified file in the mirror, {len(ms)}/{n} "
          f"files {gap * 1000:.0f} ms apart: p50 {pct(ms, 50):.0f} ms, p95 {pct(ms, 95):.0f} ms, "
          f"max {max(ms):.0f} ms")


def burst(tmp: Path, n: int, where: Path, tag: str) -> None:
    src = Path(tempfile.mkdtemp(prefix="burst-", dir=where))
    ex = f"xbench_burst_{tag}_{os.getpid()}"
    tap = Tap(ex)
    watch, _ = watcher(f"burst_{tag}", ex, src, tmp / f"burst_{tag}_watch.log")
    t0 = time.monotonic()
    for i in range(n):
        d = src / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            d.mkdir()
        (d / f"f{i:05d}").write_bytes(b"x" * 256)
    made = time.monotonic() - t0
    last = tap.count_until(n, 300)
    rss = peak_rss_mb(watch.pid)
    stop(watch)
    tap.close()
    total = last - t0
    shutil.rmtree(src, ignore_errors=True)
    print(f"  burst of {n} files of 256 B on {tag}: created in {made:.2f}s, all {tap.n} posted "
          f"{total:.2f}s after the first: {n / total:.0f} files/s; watcher peak RSS {rss:.0f} MB")


def big_tree(tmp: Path, n: int) -> None:
    src = tmp / "tree_src"
    per_dir = 100
    t0 = time.monotonic()
    for i in range(n):
        if i % per_dir == 0:
            d = src / f"a{i // (per_dir * 100):03d}" / f"b{(i // per_dir) % 100:02d}"
            d.mkdir(parents=True)
        (d / f"f{i:06d}").write_bytes(b"")
    made = time.monotonic() - t0
    ex = f"xbench_tree_{os.getpid()}"
    tap = Tap(ex)
    watch, started = watcher("tree", ex, src, tmp / "tree_watch.log")
    (src / "a000" / "b00" / "new-after-start").write_bytes(b"new")
    tap.count_until(1, 30)
    rss = peak_rss_mb(watch.pid)
    stop(watch)
    restart, restarted = watcher("tree", ex, src, tmp / "tree_watch2.log")
    time.sleep(2)
    rss2 = peak_rss_mb(restart.pid)
    stop(restart)
    extra = tap.count_until(2, 1)
    del extra
    tap.close()
    print(f"  tree of {n} files in {n // per_dir} directories (made in {made:.0f}s): first start "
          f"(inotify watches + baseline record) {started:.1f}s, peak RSS {rss:.0f} MB; "
          f"restart (compare with the record) {restarted:.1f}s, peak RSS {rss2:.0f} MB; "
          f"posts: {tap.n} (1 expected: the file created after start)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=int, default=200)
    ap.add_argument("--gap-ms", type=float, default=20)
    ap.add_argument("--burst", type=int, default=10000)
    ap.add_argument("--tree", type=int, default=100000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarra-bench-watch-") as t:
        tmp = Path(t)
        env_dirs(tmp)
        print("dd_watch:")
        if args.latency:
            latency(tmp, args.latency, args.gap_ms / 1000)
        if args.burst:
            burst(tmp, args.burst, tmp, "disk")
            if os.access("/dev/shm", os.W_OK):   # creating files there is not the limit
                burst(tmp, args.burst, Path("/dev/shm"), "tmpfs")
        if args.tree:
            big_tree(tmp, args.tree)


if __name__ == "__main__":
    main()
