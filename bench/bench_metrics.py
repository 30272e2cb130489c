#!/usr/bin/env python3
"""Metrics benchmark (the monitoring issue): what the figures cost the hot path.

1. End to end, in one process, in the same run: posts on an in-memory
   broker, a dd_subscribe flow downloading each file (file: URLs, checksums
   verified, a log message each), with its figures on (the daemon's flow:
   the lag and time of each batch, the housekeeper writing the metrics file
   every 5 s, here every 0.2 s to make it show) and off (the same flow with
   neither), rounds alternated, files/s of each.
2. Micro-measures: the per-batch figures (``Flow._figures``: one pubtime
   parsed, a time, a deque append), the counts added per message (a Counter
   increment), one write of the metrics file, one ``sarra metrics``
   exposition of a configuration, against the time a message takes.

3. With ``--real``: the same comparison end to end on real servers, the
   subscribe flow in-process consuming from the RabbitMQ on 127.0.0.1:5672
   and downloading over HTTP from a private nginx (fsync on), figures on
   and off alternated; beside it, one keep-alive curl fetching the same
   URLs to /dev/null (the HTTP limit in this run).

Parts 1 and 2 need no servers; part 3 needs RabbitMQ, nginx and curl.
Usage: python bench/bench_metrics.py [--files 2000] [--rounds 3] [--real]
"""
import argparse
import os
import sys
import tempfile
import time
import timeit
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sarra import codec  # noqa: E402
from sarra.broker import Outgoing  # noqa: E402
from sarra.broker.memory import MemoryBroker  # noqa: E402
from sarra.checksum import sum_file  # noqa: E402
from sarra.components import PRESETS, flow_for  # noqa: E402
from sarra.config import load_config  # noqa: E402
from sarra.flow import housekeeping  # noqa: E402
from sarra.flow.engine import Flow  # noqa: E402
from sarra.message import Message, format_time  # noqa: E402


def make_posts(space: str, src: Path, n: int, size: int) -> None:
    producer = MemoryBroker(space)
    producer.connect()
    for ex in ("xpublic", "xs_anonymous"):
        producer.declare_exchange(ex)
    block = os.urandom(size)
    for i in range(n):
        path = src / f"d{i % 10}" / f"f{i:06d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(block)
        m = Message(format_time(time.time()), f"file:{src}/", f"d{i % 10}/f{i:06d}",
                    {"sum": sum_file(str(path), "d"), "parts": f"1,{size},1,0,0"})
        topic, hdrs, text, ctype = codec.encode(m, "v02.post")
        producer.publish(Outgoing("xpublic", topic, hdrs, text, ctype))
    producer.close()


def one_round(tmp: Path, n: int, size: int, on: bool) -> float:
    """files/s of a subscribe flow over n posts, figures on or off."""
    space = f"memory://bench-{uuid.uuid4().hex[:8]}/"
    src, dst = tmp / f"src-{space[-9:-1]}", tmp / f"dst-{space[-9:-1]}"
    cfg = load_config("subscribe", None, [
        ("broker", space), ("exchange", "xpublic"), ("directory", str(dst)), ("mirror", "on"),
        ("accept", ".*"), ("prefetch", "25")], PRESETS["subscribe"])
    flow = flow_for("subscribe", cfg)
    flow.connect()                       # the queue exists and is bound
    make_posts(space, src, n, size)
    if on:
        flow.housekeeper.write_metrics()
    else:
        without_figures(flow)
    took = drain(flow, n)
    flow.close()
    assert flow.stats[201] == n, flow.stats
    return n / took


def without_figures(flow) -> None:
    flow.housekeeper = None              # no metrics file
    flow._figures = lambda msgs: None    # no lag, no time of the batch


def drain(flow, n: int) -> float:
    """Seconds the flow takes to handle n messages, its housekeeper ticking."""
    t0 = time.perf_counter()
    done = 0
    while done < n:
        done += flow.step(timeout=0.01)
        if flow.housekeeper is not None:
            flow.housekeeper.tick()
    return time.perf_counter() - t0


def real_round(tmp: Path, src: Path, rels: list[str], base_url: str, on: bool) -> float:
    """files/s of a subscribe flow on RabbitMQ and nginx over the posts of
    ``rels`` (made before the clock starts), figures on or off."""
    import pika
    from bench.common import BROKER
    from sarra.broker import open_broker
    tag = uuid.uuid4().hex[:8]
    ex, queue, dst = f"xbench_metrics_{tag}", f"q_guest.bench_metrics_{tag}", tmp / f"dst-{tag}"
    producer = open_broker(BROKER.replace("guest@", "guest:guest@"))
    producer.declare_exchange(ex)
    cfg = load_config("subscribe", None, [
        ("broker", BROKER), ("exchange", ex), ("queue_name", queue), ("directory", str(dst)),
        ("mirror", "on"), ("accept", ".*"), ("prefetch", "25"), ("report_back", "off")],
        PRESETS["subscribe"])
    flow = flow_for("subscribe", cfg)
    flow.connect()                       # the queue exists and is bound
    for rel in rels:
        m = Message(format_time(time.time()), base_url, rel,
                    {"sum": sum_file(str(src / rel), "d"),
                     "parts": f"1,{(src / rel).stat().st_size},1,0,0"})
        topic, hdrs, text, ctype = codec.encode(m, "v02.post")
        producer.publish(Outgoing(ex, topic, hdrs, text, ctype))
    producer.flush()
    producer.close()
    if on:
        flow.housekeeper.write_metrics()
    else:
        without_figures(flow)
    took = drain(flow, len(rels))
    flow.close()
    assert flow.stats[201] == len(rels), flow.stats
    bad = [r for r in rels if (dst / r).read_bytes() != (src / r).read_bytes()]
    assert not bad, f"{len(bad)} files differ, e.g. {bad[0]}"
    conn = pika.BlockingConnection(pika.URLParameters(BROKER.replace("guest@", "guest:guest@")))
    ch = conn.channel()
    ch.queue_delete(queue)
    ch.exchange_delete(ex)
    conn.close()
    return len(rels) / took


def real(tmp: Path, n: int, size: int, rounds: int) -> None:
    from bench.bench_perfile import curl, files_of
    from bench.common import make_files
    from tools.localnginx import start_nginx
    src = tmp / "real-src"
    make_files(src, n, size)
    rels = files_of(src)
    web = start_nginx(tmp / "nginx", src)
    try:
        urls = [web.url + r for r in rels]
        curl(urls[:50], None, tmp)       # warm the server and the page cache
        limit, _cpu = curl(urls, None, tmp)
        rates = {True: [], False: []}
        for _ in range(rounds):
            for on in (False, True):
                rates[on].append(real_round(tmp, src, rels, web.url, on))
    finally:
        web.stop()
    off, on = max(rates[False]), max(rates[True])
    print(f"end to end on real servers, {n} files of {size} bytes (RabbitMQ, nginx over "
          f"HTTP, fsync on), best of {rounds}:")
    print(f"  one keep-alive curl to /dev/null: {limit:7.0f} files/s   (the HTTP limit)")
    print(f"  figures off: {off:7.0f} files/s   (all: {', '.join(f'{r:.0f}' for r in rates[False])})")
    print(f"  figures on:  {on:7.0f} files/s   (all: {', '.join(f'{r:.0f}' for r in rates[True])})")
    print(f"  difference:  {100 * (on - off) / off:+.1f}%")


def micro(tmp: Path) -> None:
    space = f"memory://micro-{uuid.uuid4().hex[:8]}/"
    cfg = load_config("subscribe", None, [("broker", space), ("directory", str(tmp / "m")),
                                             ("accept", ".*")], PRESETS["subscribe"])
    flow = flow_for("subscribe", cfg)
    msgs = [Message(format_time(time.time() - i), "file:/x/", f"f{i}", {}) for i in range(25)]
    per_batch = min(timeit.repeat(lambda: Flow._figures(flow, msgs), number=20000,
                                  repeat=5)) / 20000
    counter = Counter()
    per_count = min(timeit.repeat(lambda: counter.__setitem__(201, counter[201] + 1),
                                  number=200000, repeat=5)) / 200000
    write = min(timeit.repeat(flow.housekeeper.write_metrics, number=200, repeat=3)) / 200
    from sarra import service
    from sarra.metrics import exposition
    d = service.describe("subscribe", cfg.key, 4)
    expo = min(timeit.repeat(lambda: exposition([d]), number=200, repeat=3)) / 200
    print(f"  per batch, Flow._figures (lag, time):      {per_batch * 1e6:6.2f} us "
          f"({per_batch * 1e6 / 25:.3f} us a message at prefetch 25)")
    print(f"  per message, a count (Counter increment):  {per_count * 1e6:6.3f} us "
          "(x3 at most: reported, reposted, retry)")
    print(f"  every 5 s, one write of the metrics file:  {write * 1e6:6.0f} us")
    print(f"  one exposition (4 instances, no process):  {expo * 1e3:6.2f} ms "
          "(when scraped, not in any flow)")
    flow.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--real", action="store_true",
                    help="also end to end on RabbitMQ (127.0.0.1:5672) and nginx")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarra-bench-") as t:
        tmp = Path(t)
        from bench.common import env_dirs
        env_dirs(tmp)                        # and guest's line in credentials.conf
        housekeeping.METRICS_EVERY = 0.2     # 25 writes of the metrics file in 5 s, not 1
        rates = {True: [], False: []}
        for _ in range(args.rounds):
            for on in (False, True):
                rates[on].append(one_round(tmp, args.files, args.size, on))
        print(f"end to end, {args.files} files of {args.size} bytes (file: URLs, memory broker), "
              f"best of {args.rounds}:")
        off, on = max(rates[False]), max(rates[True])
        print(f"  figures off: {off:7.0f} files/s   (all: {', '.join(f'{r:.0f}' for r in rates[False])})")
        print(f"  figures on:  {on:7.0f} files/s   (all: {', '.join(f'{r:.0f}' for r in rates[True])})")
        print(f"  difference:  {100 * (on - off) / off:+.1f}%")
        if args.real:
            real(tmp, args.files, max(args.size, 4096), args.rounds)
        print("micro-measures:")
        micro(tmp)


if __name__ == "__main__":
    main()
