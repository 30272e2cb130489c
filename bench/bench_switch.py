#!/usr/bin/env python3
"""Switch benchmark (issue 4): files/s through one switch (a source's post ->
dd_sara acquires over HTTP -> a subscriber has the file verified) and log
messages/s routed home (dd_shovel from xreport_in to xr_<source>).

The local broker's guest account plays every part (users and permissions
change nothing to the path a file takes); the switch's internal exchanges are
made here as dd_audit makes them (exchange-to-exchange bindings).
Needs RabbitMQ on 127.0.0.1:5672 and nginx (tools/setup.sh).
Usage: python bench/bench_switch.py [--files 2000] [--size 4096]
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_watch import Tap  # noqa: E402
from bench.common import BROKER, cli, count_files, env_dirs, make_files, peak_rss_mb  # noqa: E402
from tests.integration.flowkit import exchanges  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402

def config(tool: str, name: str, text: str) -> None:
    path = Path(os.environ["SARRA_CONFIG_DIR"]) / tool / f"{name}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    cli(tool, "declare", name)


def start(tool: str, name: str, log: Path):
    out = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", "sarra.cli", tool, "foreground", name],
                            cwd=ROOT, stdout=out, stderr=out, start_new_session=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    tag = f"b{os.getpid()}"
    xs, xsarra, xin, xpub, xrep = "xs_guest", f"xsarra_{tag}", f"xreport_in_{tag}", \
        f"xpublic_{tag}", f"xreport_{tag}"
    with tempfile.TemporaryDirectory(prefix="sarra-bench-switch-") as t:
        tmp = Path(t)
        env_dirs(tmp)
        src, data, mirror = tmp / "src", tmp / "switch", tmp / "mirror"
        make_files(src, args.files, args.size)
        data.mkdir()
        source_web, switch_web = start_nginx(tmp / "ng1", src), start_nginx(tmp / "ng2", data)
        exchanges(xs, xsarra, xin, xpub, xrep, binds=[(xsarra, xs, "v02.post.#"),
                                                      (xin, xs, "v02.report.#")])
        config("sara", "sara", f"broker {BROKER}\nexchange {xsarra}\nsource_from_exchange on\n"
               f"cluster bench\ndirectory {data}/${{SOURCE}}\npost_broker {BROKER}\n"
               f"post_exchange {xpub}\npost_base_dir {data}\npost_base_url {switch_web.url}\n"
               f"report_exchange {xin}\nexpire 10m\nprefetch 100\n")
        config("subscribe", "sub", f"broker {BROKER}\nexchange {xpub}\nmirror on\n"
               f"directory {mirror}\naccept .*\nreport_exchange {xs}\nexpire 10m\n"
               "prefetch 100\n")
        config("shovel", "router", f"broker {BROKER}\nexchange {xin}\ntopic_prefix v02.report\n"
               f"source_from_exchange on\npost_exchange {xrep},xr_${{SOURCE}}\nexpire 10m\n"
               "prefetch 100\n")
        tap = Tap("xr_guest")
        procs = [start(tool, name, tmp / f"{name}.log")
                 for tool, name in (("sara", "sara"), ("subscribe", "sub"), ("shovel", "router"))]
        try:
            time.sleep(1.5)
            t0 = time.perf_counter()
            cli("post", "--post_broker", BROKER, "--post_exchange", xs, "--post_base_url",
                source_web.url, "--post_base_dir", str(src), str(src))
            while count_files(mirror) < args.files:
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"a component died: see the logs in {tmp}")
                time.sleep(0.01)
            through = time.perf_counter() - t0
            first = time.perf_counter()
            tap.count_until(1, 30)
            last = tap.count_until(2 * args.files, 120)
            routed = tap.n / max(last - t0, 1e-6)
            rss = {n: peak_rss_mb(p.pid) for n, p in zip(("sara", "sub", "router"), procs)}
            del first
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(60)
            for tool, name in (("sara", "sara"), ("subscribe", "sub"), ("shovel", "router")):
                cli(tool, "cleanup", name)
            tap.close()
            exchanges(xsarra, xin, xpub, xrep, delete=True)
            source_web.stop()
            switch_web.stop()
        print(f"{args.files} files of {args.size} B through one switch: {args.files / through:.0f}"
              f" files/s ({through:.2f}s from the first post to the last file verified by the "
              f"subscriber); {tap.n} log messages routed home at {routed:.0f}/s (counted from "
              f"the first post); peak RSS "
              + ", ".join(f"{n} {v:.0f} MB" for n, v in rss.items()))


if __name__ == "__main__":
    main()
