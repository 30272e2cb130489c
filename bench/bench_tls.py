#!/usr/bin/env python3
"""What TLS costs (issue 15): end-to-end files/s of dd_post + dd_subscribe
over amqp:// and http:// against amqps:// and https://, the same files, the
same private RabbitMQ node (tools/localrabbit.py, a TLS listener beside the
plain one) and the same nginx content served twice, certificates from a
test CA, verification on. Beside each: the machine's limit in the same run,
a bare keep-alive GET loop (requests, one session) over the same files.

Why TLS costs more end to end than in the bare loop: a plain-http download
goes on sarra's kept http.client connection (sarra/transfer/httpconn.py),
an https one through requests (more work per file); the bare loop uses
requests for both, so it shows what TLS itself costs on a kept connection
(little at 4 KB: AES-GCM is cheap, one handshake per session). On the
2-core machine, shared: plain 564-591 files/s (bare loop 1214-1552 GETs/s),
TLS 380-413 files/s (1331-1376 GETs/s), two runs of 1000 files.

Needs rabbitmq-server, nginx and openssl (tools/setup.sh).
Usage: python bench/bench_tls.py [--files 1000] [--size 4096]
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

from bench.common import cli, count_files, env_dirs, make_files, wait_until  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402
from tools.localrabbit import start_rabbit  # noqa: E402
from tools.testca import make_ca  # noqa: E402


def raw_gets(base: str, rels: list[str], ca: str) -> float:
    """GETs/s of the files, one keep-alive session: the transport's limit."""
    import requests
    with requests.Session() as s:
        s.trust_env = False
        t0 = time.perf_counter()
        for rel in rels:
            r = s.get(base + rel, verify=ca)
            assert r.status_code == 200 and r.content
        return len(rels) / (time.perf_counter() - t0)


def end_to_end(tmp: Path, src: Path, n: int, broker: str, base_url: str, ca: str,
               tag: str) -> float:
    dst = tmp / f"dst_{tag}"
    name = f"bench_tls_{tag}"
    exchange = f"xbench_tls_{tag}_{os.getpid()}"
    conf = Path(os.environ["SARRA_CONFIG_DIR"]) / "subscribe" / f"{name}.conf"
    conf.write_text(f"broker {broker}\nexchange {exchange}\nsubtopic #\nmirror on\n"
                    f"directory {dst}\naccept .*\nexpire 10m\nprefetch 100\nca_file {ca}\n")
    cli("subscribe", "declare", name)
    log = open(tmp / f"{tag}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "sarra.cli", "subscribe", "foreground", name],
                            cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    try:
        time.sleep(0.5)
        t0 = time.perf_counter()
        cli("post", "--post_broker", broker, "--post_exchange", exchange, "--ca_file", ca,
            "--post_base_url", base_url, "--post_base_dir", str(src), str(src))
        wait_until(lambda: count_files(dst) >= n, [proc], f"{n} files", 0.01)
        return n / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)
        cli("subscribe", "cleanup", name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarra-bench-tls-") as t:
        tmp = Path(t)
        env_dirs(tmp)
        ca = make_ca(tmp / "ca")
        node = start_rabbit(tmp / "rabbit", f"bench_tls_{os.getpid()}", management=False,
                            tls=ca)
        src = tmp / "src"
        make_files(src, args.files, args.size)
        rels = sorted(str(p.relative_to(src)) for p in src.rglob("*.dat"))
        plain, tls = start_nginx(tmp / "ng1", src, 1), start_nginx(tmp / "ng2", src, 1, tls=ca)
        cred = Path(os.environ["SARRA_CONFIG_DIR"]) / "credentials.conf"
        cred.write_text(node.url() + "\n" + node.amqps_url() + "\n")
        try:
            print(f"{args.files} files of {args.size} bytes, 1 nginx worker, one subscriber:")
            rows = []
            for tag, broker, web in (("plain", node.url("guest", None), plain),
                                     ("tls", node.amqps_url("guest", None), tls)):
                limit = raw_gets(web.url, rels, str(ca.ca_file))
                rate = end_to_end(tmp, src, args.files, broker, web.url, str(ca.ca_file), tag)
                rows.append((tag, rate, limit))
                print(f"  {tag:5s} ({broker.split(':')[0]} + {web.url.split(':')[0]}): "
                      f"end-to-end {rate:6.0f} files/s   bare GET loop (the limit) "
                      f"{limit:6.0f} GETs/s")
            (_, p_rate, p_lim), (_, t_rate, t_lim) = rows
            print(f"  TLS costs {100 * (1 - t_rate / p_rate):.0f}% of end-to-end files/s; "
                  f"the bare GET loop loses {100 * (1 - t_lim / p_lim):.0f}%")
        finally:
            plain.stop()
            tls.stop()
            node.close()


if __name__ == "__main__":
    main()
