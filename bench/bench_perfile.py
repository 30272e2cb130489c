#!/usr/bin/env python3
"""Per-file cost (issue 20): each figure of sarra beside the machine's own
limit, measured in the same run.

- HTTP: one keep-alive curl fetching the same URLs (to /dev/null, and
  written to disk), its rate and CPU per 1,000 files; sarra end to end
  (dd_post, then a subscriber downloading from a private nginx, ``fsync``
  on) and the subscriber's CPU per 1,000 files.
- Posting, in each wire format (v02, dd_post's default, and v03): the
  broker's confirmed ingest of the same messages (one pika client,
  confirms pipelined, the messages encoded beforehand) and dd_post's rate
  as a whole process (start-up included) on N small files; dd_post's
  start-up alone. The format matters to the broker: a v02 post is all
  AMQP headers, which it takes more time to read than v03's JSON body.
- A big file (``--big-mib``): ``curl -o`` of it into the subscriber's
  file system, hashing it alone (sha512, and the fast sum ``x``), and
  sarra's download with each sum; then in blocks by one and by two
  instances.
- Syncing a batch: a file-system sync (syncfs) per batch against an
  fdatasync per file.

The machine is shared: wall-clock rates move with what else runs. The CPU
seconds per 1,000 files and the ratios within one run are what mean
something; compare those between runs.

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest), nginx and curl.
Usage: python bench/bench_perfile.py [--files 2000] [--size 4096]
       [--post-files 20000] [--post-size 1024] [--big-mib 1024] [--skip http,post,big,sync]
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BROKER, count_files, env_dirs,  # noqa: E402
                          make_files, stop_subscriber, subscriber, wait_until)
from tools.localnginx import start_nginx  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def children_cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def files_of(src: Path) -> list[str]:
    return sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())


def curl(urls: list[str], out: Path | None, tmp: Path) -> tuple[float, float, float]:
    """(files/s, CPU s per 1,000, the part of it in the kernel) of one curl
    fetching ``urls`` on one keep-alive connection, to /dev/null (``out``
    None) or under ``out``."""
    conf = tmp / "curl.conf"
    with open(conf, "w") as f:
        for i, u in enumerate(urls):
            dest = "/dev/null" if out is None else str(out / f"f{i:06d}")
            f.write(f'url = "{u}"\noutput = "{dest}"\n')
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(["curl", "-s", "--fail", "-K", str(conf)], check=True)
    took, c1 = time.perf_counter() - t0, children_cpu()
    cpu, sys_cpu = sum(c1) - sum(c0), c1[1] - c0[1]
    if out is not None:
        shutil.rmtree(out)
    return len(urls) / took, 1000 * cpu / len(urls), 1000 * sys_cpu / len(urls)


def big(tmp: Path, mib: int) -> None:
    """A big file over HTTP: curl -o (the limit), hashing alone, sarra's
    download whole (sum s, then x) and in 64 MiB blocks by 1 and 2 instances."""
    from bench.bench_foundation import download_big
    from bench.bench_parts import run as in_blocks
    from sarra import checksum
    src = tmp / "big_src"
    path = src / "big" / "big.bin"
    path.parent.mkdir(parents=True)
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
    os.sync()       # its writeback would slow what follows
    dst = tmp / "big_dst"
    dst.mkdir()
    web = start_nginx(tmp / "nginx_big", src)
    try:
        url = web.url + "big/big.bin"
        subprocess.run(["curl", "-s", "--fail", "-o", str(dst / "warm"), url], check=True)
        os.unlink(dst / "warm")
        curls = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run(["curl", "-s", "--fail", "-o", str(dst / "by_curl"), url], check=True)
            curls.append(mib / (time.perf_counter() - t0))
            os.unlink(dst / "by_curl")
        curl_mbs = max(curls)
        print(f"a file of {mib} MiB over HTTP from a private nginx, into {dst.parent}:")
        print(f"  curl -o:                         {curl_mbs:5.0f} MiB/s   (the limit)")
        for method in ("s", "x"):
            t0 = time.perf_counter()
            checksum.sum_file(str(path), method)
            hashed = mib / (time.perf_counter() - t0)
            got = max(download_big(tmp, dst, f"{method}{i}", mib, method, web.url, src, path)[0]
                      for i in range(2))
            print(f"  sarra, sum {method}:                   {got:5.0f} MiB/s = "
                  f"{100 * got / curl_mbs:3.0f}% of curl -o  (hashing alone {hashed:.0f} MiB/s)")
        for instances in (1, 2):
            got = in_blocks(tmp, src, path, web.url, dst, instances, "64M", "s", mib)[0]
            print(f"  sarra, sum s, 64 MiB blocks, {instances} instance{'s' if instances > 1 else ' '}: "
                  f"{got:5.0f} MiB/s = {100 * got / curl_mbs:3.0f}% of curl -o")
    finally:
        web.stop()
        shutil.rmtree(src)
        shutil.rmtree(dst, ignore_errors=True)


def file_system(top: Path, n: int, size: int) -> tuple[float, float]:
    """CPU s per 1,000 files (all, and the kernel's) of the least a
    downloader writes: create an inflight name, write ``size`` bytes, close,
    rename into place, in directories of the file system the subscriber
    writes to (this process's own, measured with getrusage)."""
    data = os.urandom(size)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(n):
        d = top / f"d{i // 100:03d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        tmp = d / f".f{i}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        os.write(fd, data)
        os.close(fd)
        os.rename(tmp, d / f"f{i}")
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    shutil.rmtree(top)
    user, sys_cpu = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return 1000 * (user + sys_cpu) / n, 1000 * sys_cpu / n


def post_process(src: Path, base_url: str, exchange: str, extra: list[str] = ()) -> float:
    """Seconds dd_post takes as a whole process to post ``src``."""
    cmd = [sys.executable, "-m", "sarra.cli", "post", "--post_broker", BROKER,
           "--post_exchange", exchange, "--post_base_url", base_url,
           "--post_base_dir", str(src), *extra, str(src)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def end_to_end(tmp: Path, src: Path, n: int, base_url: str,
               wrap: list[str] = ()) -> tuple[float, float, float]:
    """(files/s from the post's start to the last file in place, subscriber
    CPU s per 1,000 files, the part of it in the kernel); ``wrap``: what the
    subscriber runs under."""
    dst = tmp / "dst_http"
    exchange = f"xbench_perfile_{os.getpid()}"
    proc = subscriber("bench_perfile", exchange, dst, tmp / "sub_perfile.log", wrap=wrap)
    try:
        time.sleep(1.0)                 # started, connected, idle
        c0, t0 = cpu_of(proc.pid), time.perf_counter()
        post_process(src, base_url, exchange)
        wait_until(lambda: count_files(dst) >= n, [proc], f"{n} files", 0.01)
        took = time.perf_counter() - t0
        time.sleep(0.3)                 # the last batch's acks and log messages
        u1, s1 = cpu_of(proc.pid)
        cpu, sys_cpu = u1 + s1 - sum(c0), s1 - c0[1]
    finally:
        stop_subscriber(proc, "bench_perfile")
    bad = [r for r in files_of(src) if (dst / r).read_bytes() != (src / r).read_bytes()]
    if bad:
        raise SystemExit(f"{len(bad)} files differ, e.g. {bad[0]}")
    shutil.rmtree(dst)
    return n / took, 1000 * cpu / n, 1000 * sys_cpu / n


def routed(exchange: str):
    """(pika connection, channel, queue name): ``exchange`` declared, with a
    durable queue bound to all it takes (the broker of bench/common.py:
    guest's password, as its credentials.conf has it)."""
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", 5672, credentials=pika.PlainCredentials("guest", "guest")))
    ch = conn.channel()
    ch.exchange_declare(exchange, "topic", auto_delete=False, durable=True)
    q = ch.queue_declare(f"q_{exchange}", durable=True).method.queue
    ch.queue_bind(q, exchange, "#")
    return conn, ch, q


def broker_ingest(src: Path, exchange: str, fmt: str) -> float:
    """Messages/s the broker takes in, confirmed, from one pika client with
    the confirms pipelined: the posts of ``src``'s files in ``fmt`` (v02,
    v03), encoded first."""
    import pika
    from sarra import checksum, codec
    from sarra.message import Message, format_time
    bodies = []
    for rel in files_of(src):
        path = src / rel
        st = path.stat()
        m = Message(format_time(time.time()), f"file:{src}/", rel, {
            "sum": checksum.sum_file(str(path), "s"), "parts": f"1,{st.st_size},1,0,0",
            "mtime": format_time(st.st_mtime), "atime": format_time(st.st_atime),
            "mode": "644"})
        bodies.append(codec.encode(m, f"{fmt}.post"))
    conn, ch, q = routed(exchange)
    pending = [0]

    def confirmed(frame):
        pending[0] = frame.method.delivery_tag if frame.method.multiple else pending[0] + 1
    ready = []
    ch._impl.confirm_delivery(ack_nack_callback=confirmed, callback=lambda _f: ready.append(1))
    while not ready:
        conn.process_data_events(time_limit=0.002)
    t0 = time.perf_counter()
    for i, (topic, headers, body, ctype) in enumerate(bodies, 1):
        props = pika.BasicProperties(content_type=ctype, headers=headers, delivery_mode=2)
        ch._impl.basic_publish(exchange, topic, body, props)
        if i % 100 == 0:
            conn.process_data_events(time_limit=0)
            while i - pending[0] > 2000:
                conn.process_data_events(time_limit=0.002)
    while pending[0] < len(bodies):
        conn.process_data_events(time_limit=0.002)
    took = time.perf_counter() - t0
    ch.queue_delete(q)
    ch.exchange_delete(exchange)
    conn.close()
    return len(bodies) / took


def posting(tmp: Path, n: int, size: int) -> None:
    src = tmp / "post_src"
    make_files(src, n, size)
    exchange = f"xbench_post_{os.getpid()}"
    conn, ch, q = routed(exchange)

    def posted(top: Path, fmt: str) -> float:
        """dd_post's time, into the durable queue emptied first (as the
        broker's ingest was measured: into an empty one)."""
        ch.queue_purge(q)
        took = post_process(top, f"file:{top}/", exchange, ["--post_topic_prefix", f"{fmt}.post"])
        assert ch.queue_declare(q, passive=True).method.message_count >= len(files_of(top))
        return took
    rates = {}
    try:
        for fmt in ("v02", "v03"):
            ingest = broker_ingest(src, f"xbench_ingest_{os.getpid()}", fmt)
            rates[fmt] = ingest, n / min(posted(src, fmt) for _ in range(2))
        one = src / "d00" / "e0"
        start = min(posted(one, "v02") for _ in range(3))
    finally:
        ch.queue_delete(q)
        ch.exchange_delete(exchange)
        conn.close()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sarra.cli, sarra.components"], cwd=ROOT,
                   check=True)
    imports = time.perf_counter() - t0
    print(f"posting {n} files of {size} bytes (persistent, routed to a durable queue):")
    for fmt, (ingest, rate) in rates.items():
        default = ", dd_post's default" if fmt == "v02" else ""
        print(f"  {fmt}{default}:")
        print(f"    broker's confirmed ingest, one pika client: {ingest:7.0f} msgs/s   (the limit)")
        print(f"    dd_post, whole process:                     {rate:7.0f} msgs/s   "
              f"= {100 * rate / ingest:3.0f}% of the broker's ingest")
    print(f"  dd_post on a directory of {len(list(one.iterdir()))} files, whole process: "
          f"{start:.3f} s; importing sarra.cli and sarra.components: {imports:.3f} s "
          f"(python itself starts in {bare:.3f} s)")
    shutil.rmtree(src)


def syncs(tmp: Path, batch: int = 100, batches: int = 10) -> None:
    """Files/s of writing small files, renamed into place, made durable by a
    syncfs per batch or by an fdatasync per file (and their directory)."""
    from sarra.flow.durable import Pending
    data = os.urandom(4096)
    out = {}
    for mode in ("none", "syncfs per batch", "fdatasync per file"):
        d = tmp / f"sync_{mode.split()[0]}"
        d.mkdir()
        pending = Pending(mode.startswith("syncfs"))
        t0 = time.perf_counter()
        for b in range(batches):
            for i in range(batch):
                p = d / f"f{b}_{i}"
                fd = os.open(f"{p}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, data)
                if mode.startswith("fdatasync"):
                    os.fdatasync(fd)
                os.close(fd)
                os.replace(f"{p}.tmp", p)
                pending.add(str(p))
            if mode.startswith("fdatasync"):
                fd = os.open(d, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            pending.sync()
        out[mode] = batch * batches / (time.perf_counter() - t0)
        shutil.rmtree(d)
    print(f"making {batch * batches} files of 4 KiB durable, batches of {batch}: " +
          ", ".join(f"{k} {v:.0f} files/s" for k, v in out.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--post-files", type=int, default=20000)
    ap.add_argument("--post-size", type=int, default=1024)
    ap.add_argument("--big-mib", type=int, default=1024,
                    help="the big file's size in MiB (the big part: --skip big)")
    ap.add_argument("--skip", default="", help="comma-separated: http,post,big,sync")
    ap.add_argument("--profile", metavar="FILE",
                    help="run the HTTP subscriber under cProfile (CPU time: bench/profiled.py), "
                         "its stats written to FILE (its CPU figure then includes the "
                         "profiler's)")
    ap.add_argument("--strace", metavar="FILE",
                    help="run the HTTP subscriber under strace -c -f, the summary in FILE")
    ap.add_argument("--repeat", type=int, default=1,
                    help="end-to-end runs of the subscriber (each figure printed)")
    args = ap.parse_args()
    wrap: list[str] = []
    if args.profile:
        wrap = ["--profile", os.path.abspath(args.profile)]
    elif args.strace:
        wrap = ["strace", *os.environ.get("BENCH_STRACE", "-c").split(), "-f", "-o", os.path.abspath(args.strace)]
    skip = set(args.skip.split(","))
    print(f"{os.cpu_count()} CPUs, shared: CPU s per 1,000 files and the ratios within "
          "this run are what compare between runs, not the wall-clock rates")
    tmp_root = os.environ.get("BENCH_TMP")   # default: the system's (a disk here, not tmpfs)
    with tempfile.TemporaryDirectory(prefix="sarra-bench-", dir=tmp_root) as t:
        tmp = Path(t)
        env_dirs(tmp)
        if "http" not in skip:
            src = tmp / "src"
            make_files(src, args.files, args.size)
            web = start_nginx(tmp / "nginx", src)
            try:
                urls = [web.url + r for r in files_of(src)]
                curl(urls[:50], None, tmp)        # warm the server and the page cache
                null_rate, null_cpu, null_sys = curl(urls, None, tmp)
                disk_rate, disk_cpu, disk_sys = curl(urls, tmp / "curl_out", tmp)
                fs_cpu, fs_sys = file_system(tmp / "fs_only", args.files, args.size)
                runs = [end_to_end(tmp, src, args.files, web.url, wrap)
                        for _ in range(max(1, args.repeat))]
            finally:
                web.stop()
            print(f"HTTP, {args.files} files of {args.size} bytes from a private nginx:")
            print(f"  one keep-alive curl to /dev/null:  {null_rate:7.0f} files/s, "
                  f"{null_cpu:.3f} CPU s per 1,000 files ({null_sys:.3f} in the kernel)   "
                  "(the limit)")
            print(f"  the same curl writing the files:   {disk_rate:7.0f} files/s, "
                  f"{disk_cpu:.3f} CPU s per 1,000 files ({disk_sys:.3f} in the kernel)")
            print(f"  the file system alone (create, write, rename; no network): "
                  f"{fs_cpu:.3f} CPU s per 1,000 files ({fs_sys:.3f} in the kernel)")
            for rate, cpu, sys_cpu in runs:
                print(f"  sarra end to end (fsync on):       {rate:7.0f} files/s "
                      f"= {100 * rate / null_rate:3.0f}% of curl to /dev/null; subscriber "
                      f"{cpu:.3f} CPU s per 1,000 files ({sys_cpu:.3f} in the kernel) "
                      f"= {cpu / null_cpu:.1f}x curl's")
        if "post" not in skip:
            posting(tmp, args.post_files, args.post_size)
        if "big" not in skip and args.big_mib > 0:
            big(tmp, args.big_mib)
        if "sync" not in skip:
            syncs(tmp)


if __name__ == "__main__":
    main()
