#!/usr/bin/env python3
"""End-to-end demo: a tree posted, subscribed, downloaded over HTTP, verified.

What it does, with the real tools and servers (RabbitMQ on 127.0.0.1:5672,
a private nginx serving the source tree on a loopback port):

1. builds a source tree shaped like daily per-node capture files
   (results-A/2026-11-24/node03/capture-0007.dat ...);
2. writes a subscriber configuration and credentials.conf in a private
   config directory, and starts ``dd_subscribe start demo`` (a daemon);
3. posts the tree with ``dd_post`` (sha512 sums, base URL = the nginx);
4. waits until the mirror is complete, compares every byte, counts the
   log messages the subscriber sent back, stops the daemon;
5. prints one summary line and exits 0 only when everything matched.

Run it with ``bash tools/demo.sh`` (which sets the machine up first).
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sarra.broker import open_broker  # noqa: E402
from sarra.codec import decode  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402

BROKER = "amqp://guest@127.0.0.1:5672/"          # what configurations name
CREDENTIALS = "amqp://guest:guest@127.0.0.1:5672/"  # the password lives only here


def tool(name: str) -> str:
    """The installed console script (``.venv/bin/dd_post``...), or the module."""
    exe = Path(sys.executable).parent / f"dd_{name}"
    return str(exe) if exe.exists() else f"{sys.executable} -m sarra.cli {name}"


def run(name: str, *args: str) -> subprocess.CompletedProcess:
    cmd = tool(name).split() + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        sys.exit(f"demo: dd_{name} {' '.join(args)} exited {res.returncode}:\n"
                 f"{res.stdout}{res.stderr}")
    return res


def make_tree(top: Path, days: int, nodes: int, per_node: int) -> int:
    n = 0
    for r in ("A", "B"):
        for d in range(days):
            for node in range(nodes):
                folder = top / f"results-{r}" / f"2026-11-{20 + d:02d}" / f"node{node:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(per_node):
                    (folder / f"capture-{i:04d}.dat").write_bytes(os.urandom(1024 + 97 * i))
                    n += 1
    return n


def mirrored(src: Path, dst: Path) -> tuple[int, list[str]]:
    """(files equal byte for byte, problems)."""
    same, problems = 0, []
    for dirpath, _dirs, files in os.walk(src):
        for f in files:
            a = Path(dirpath) / f
            b = dst / a.relative_to(src)
            if not b.exists():
                problems.append(f"missing {b}")
            elif not filecmp.cmp(a, b, shallow=False):
                problems.append(f"differs {b}")
            else:
                same += 1
    for dirpath, _dirs, files in os.walk(dst):
        problems += [f"left over {Path(dirpath) / f}" for f in files if f.endswith(".tmp")]
    return same, problems


def main() -> int:
    ap = argparse.ArgumentParser(description="sarra end-to-end demo")
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--per-node", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the demo directory")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sarra-demo-"))
    os.environ["SARRA_CONFIG_DIR"] = str(work / "config")
    os.environ["SARRA_STATE_DIR"] = str(work / "state")
    src, dst = work / "src", work / "mirror"
    sub_dir = work / "config" / "subscribe"
    sub_dir.mkdir(parents=True)
    cred = work / "config" / "credentials.conf"
    cred.write_text(CREDENTIALS + "\n")
    cred.chmod(0o600)

    total = make_tree(src, args.days, args.nodes, args.per_node)
    web = start_nginx(work / "nginx", src)
    exchange, reports_ex = f"xdemo_{os.getpid()}", f"xdemo_log_{os.getpid()}"
    (sub_dir / "demo.conf").write_text(
        f"# mirror every capture file announced on {exchange}\n"
        f"broker {BROKER}\nexchange {exchange}\nsubtopic results-A.#\nsubtopic results-B.#\n"
        f"report_exchange {reports_ex}\nexpire 10m\nmirror on\ndirectory {dst}\n"
        "accept .*/capture-.*\\.dat$\n")
    tap = open_broker(CREDENTIALS)     # the demo's own view of the log messages
    tap.declare_exchange(reports_ex)
    tap_q = f"q_guest.demo.tap.{os.getpid()}"
    tap.declare_queue(tap_q, durable=False, expire_s=600)
    tap.bind(tap_q, reports_ex, "v02.report.#")
    tap.consume(tap_q, 1000)
    codes: dict[int, int] = {}
    ok = False
    try:
        run("subscribe", "declare", "demo")
        run("subscribe", "start", "demo")
        t0 = time.monotonic()
        out = run("post", "--post_broker", BROKER, "--post_exchange", exchange,
                  "--post_base_url", web.url, "--post_base_dir", str(src), str(src))
        print(out.stdout.strip())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for d in tap.get(0.2):
                code = decode(d.topic, d.headers, d.body, d.content_type).report.code
                codes[code] = codes.get(code, 0) + 1
                tap.ack([d.tag])
            if sum(codes.values()) >= total:
                break
        elapsed = time.monotonic() - t0
        same, problems = mirrored(src, dst)
        ok = same == total and not problems and codes == {201: total}
        for p in problems[:10]:
            print("demo:", p)
        print(f"demo: {'OK' if ok else 'FAILED'}: {same}/{total} files mirrored over HTTP "
              f"and byte-identical, {codes.get(201, 0)} log messages 201 "
              f"(other codes: {({c: n for c, n in codes.items() if c != 201}) or 'none'}), "
              f"{elapsed:.1f}s from first post to last log message")
    finally:
        subprocess.run(tool("subscribe").split() + ["stop", "demo"], capture_output=True)
        subprocess.run(tool("subscribe").split() + ["cleanup", "demo"], capture_output=True)
        try:
            tap.delete_queue(tap_q)
        finally:
            tap.close()
        web.stop()
        if args.keep or not ok:
            print(f"demo: files, configuration and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
