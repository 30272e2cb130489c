#!/usr/bin/env python3
"""dd_poll benchmark (issue 17): the time of one round over a remote tree
of 10,000 files, listed from a private nginx (autoindex) and a private sshd
(SFTP), unchanged and with 100 new files; and the peak RSS of a poller
taking one round over a 100,000-entry listing (one directory).

Beside each figure, the machine's own limit measured in the same run: the
same listings fetched by a bare client (requests for the index pages,
paramiko's listdir_attr for SFTP), with nothing parsed, compared or
recorded. The round is PollSource's (sarra/flow/polling.py): listing,
parsing, the comparison with the state on disk, the posts built (not
published: the broker's cost is bench_foundation's).

Usage: python bench/bench_poll.py [--files 10000] [--new 100] [--big 100000]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import env_dirs, rss_mb  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402
from tools.localsshd import start_sshd  # noqa: E402

DIRS = 10


def make(top: Path, n: int, dirs: int, start: int = 0) -> None:
    for i in range(start, start + n):
        d = top / f"d{i % dirs:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:07d}.dat").write_bytes(b"x" * 16)


def poll_source(poll_url: str, recursive: bool = True):
    from sarra.components import PRESETS
    from sarra.config import load_config
    from sarra.flow.polling import PollSource
    cfg = load_config("poll", None, [("broker", "memory://bench/"), ("poll_url", poll_url),
                                     ("recursive", "on" if recursive else "off")],
                      PRESETS["poll"])
    src = PollSource(cfg)
    src.connect()
    return src


def one_round(src) -> tuple[float, int]:
    """(seconds, posts) of one whole round, each batch acknowledged."""
    src.next_round = 0.0
    t0, n = time.monotonic(), 0
    while True:
        msgs, _ = src.get(0.0)
        n += len(msgs)
        src.ack([])
        if src.round is None:
            return time.monotonic() - t0, n


def bare_http(url: str) -> float:
    import requests
    s = requests.Session()
    s.trust_env = False
    t0 = time.monotonic()
    for i in range(DIRS):
        s.get(f"{url}d{i:02d}/").content
    return time.monotonic() - t0


def bare_sftp(sshd, path: Path) -> float:
    import paramiko
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect("127.0.0.1", sshd.port, username=sshd.user, key_filename=str(sshd.keyfile),
              allow_agent=False, look_for_keys=False)
    sftp = c.open_sftp()
    t0 = time.monotonic()
    for i in range(DIRS):
        sftp.listdir_attr(str(path / f"d{i:02d}"))
    took = time.monotonic() - t0
    c.close()
    return took


def rounds(label: str, url: str, top: Path, files: int, new: int, bare) -> None:
    src = poll_source(url)
    first, n1 = one_round(src)
    same, n2 = one_round(src)
    make(top, new, DIRS, start=files)
    more, n3 = one_round(src)
    limit = bare()
    src.close()
    print(f"  {label}, {files} files in {DIRS} directories: first round {first:.2f}s "
          f"({n1} posts), unchanged {same:.2f}s ({n2} posts), {new} new {more:.2f}s "
          f"({n3} posts); the bare listing alone: {limit:.2f}s")
    for got, want in ((n1, files), (n2, 0), (n3, new)):
        if got != want:
            raise SystemExit(f"{label}: {got} posts where {want} were due")


def big_round(url: str) -> None:
    """In this (fresh) process: one round over ``url``; prints RSS figures."""
    src = poll_source(url, recursive=False)
    before = rss_mb(os.getpid(), now=True)
    took, n = one_round(src)
    print(f"{n} {took:.2f} {before:.1f} {rss_mb(os.getpid()):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--big-round", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.big_round:
        big_round(args.big_round)
        return
    print(f"dd_poll (a shared 2-core machine: figures vary with the others' load; "
          f"{os.cpu_count()} CPUs seen):")
    with tempfile.TemporaryDirectory(prefix="bench_poll_") as tmp:
        tmp = Path(tmp)
        dirs = env_dirs(tmp)
        web = tmp / "web"
        (web / "tree").mkdir(parents=True)
        make(web / "tree", args.files, DIRS)
        nginx = start_nginx(tmp / "nginx", web, 1, "location / { autoindex on; }")
        sshd = start_sshd(tmp / "sshd")
        with open(dirs["config"] / "credentials.conf", "a") as f:
            f.write(sshd.credentials + "\n")
        try:
            rounds("HTTP (nginx autoindex)", f"{nginx.url}tree/", web / "tree", args.files,
                   args.new, lambda: bare_http(f"{nginx.url}tree/"))
            (web / "tree2").mkdir()
            make(web / "tree2", args.files, DIRS)
            rounds("SFTP", f"{sshd.url}{web}/tree2/", web / "tree2", args.files, args.new,
                   lambda: bare_sftp(sshd, web / "tree2"))
            big = web / "big"
            t0 = time.monotonic()
            make(big, args.big, 1)
            made = time.monotonic() - t0
            import requests
            page = len(requests.get(f"{nginx.url}big/d00/").content)
            res = subprocess.run([sys.executable, __file__, "--big-round",
                                  f"{nginx.url}big/d00/"], capture_output=True, text=True,
                                 check=True, cwd=ROOT)
            n, took, before, peak = res.stdout.split()
            print(f"  one directory of {args.big} files (made in {made:.0f}s, its index page "
                  f"{page / 1e6:.1f} MB): a round of {n} posts in {float(took):.1f}s, peak RSS "
                  f"{peak} MB (the process before the round: {before} MB)")
        finally:
            nginx.stop()
            sshd.stop()


if __name__ == "__main__":
    main()
