#!/usr/bin/env python3
"""What TLS costs (issue 15): end-to-end files/s of dd_post + dd_subscribe
over amqp:// and http:// against amqps:// and https://, the same files, the
same private RabbitMQ node (tools/localrabbit.py, a TLS listener beside the
plain one) and the same nginx content served twice, certificates from a
test CA, verification on; the two mixed runs (amqps + http, amqp + https)
tell the broker's share from the download's. Rounds alternate the four runs
(a shared machine's load changes between them).

Beside each run, the machine's limits in the same round: bare keep-alive
GET loops over the same files: one kept http.client connection (what TLS
itself costs on a kept connection), one requests session (for both
schemes), and sarra's own HttpTransfer (the subscriber's download path:
its own kept connection, sarra/transfer/httpconn.py, for http and, since
the figures below the first ones, https); and what each run cost, in CPU
milliseconds per file (user + system) of dd_post, the subscriber, nginx and
the broker, with the connections nginx accepted (each a TLS handshake over
https).

What it showed (2026-12-04, the 2-core machine shared with other
engineers' test suites, load average 7.5-9.8: wall-clock rates are the
machine's, CPU per file is sarra's), 3 rounds of 1000 files of 4 KiB:
end to end, best of 3, plain 147, amqps + http 149, amqp + https 148,
amqps + https 117 files/s (each run 66-149); the subscriber's CPU per
file 1.67-2.56 ms plain, 1.86-2.26 amqps, 3.28-3.76 https, 2.72-5.14
both; nginx 0.10-0.18 ms plain, 0.15-0.30 https; the broker 0.25-0.40
either way; one connection (one handshake) per run. The bare loops: a
kept http.client connection 0.22-0.25 ms/GET over http, 0.21-0.39 over
https (TLS itself: at most ~0.15 ms per 4 KiB file); requests 0.87-1.56
and 0.90-1.29; sarra's HttpTransfer 0.19-0.33 over http, 0.97-1.74 over
https. So https costs the subscriber about 1-1.5 ms of CPU a file, nearly
all of it requests' per-request work (https downloads do not take
httpconn's kept connection), not the handshake (one per run) nor the
crypto of 4 KiB bodies; amqps costs little (0-0.3 ms a file, in the noise).

Then https GETs took httpconn's kept connection too (an ssl socket from
the configuration's TlsPolicy). Before and after on the same machine
(2026-12-04, load average 0.2-4.1, two runs of 3 rounds each way), the
subscriber's CPU per file: before, plain 0.60-0.94 ms, amqp + https
1.43-1.77 (https/plain 1.9-2.6 in each round); after, plain 0.64-1.15,
amqp + https 0.63-1.26 (https/plain 0.9-1.7), amqps + https 0.66-1.57.
The bare loops: sarra's HttpTransfer over https 0.47-0.56 ms/GET before,
0.05-0.13 after (over http 0.03-0.10), a kept http.client connection
0.11-0.19 over https, requests 0.46-0.62. What https still costs the
subscriber, 0-0.5 ms a file, is within the noise of these runs.

Needs rabbitmq-server, nginx (with stub_status) and openssl (tools/setup.sh).
Usage: python bench/bench_tls.py [--files 1000] [--size 4096] [--rounds 2]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import cli, count_files, env_dirs, make_files, wait_until  # noqa: E402
from tools.localnginx import start_nginx  # noqa: E402
from tools.localrabbit import start_rabbit  # noqa: E402
from tools.testca import make_ca  # noqa: E402

STATUS = "location = /_nginx_status { stub_status; }"


def cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants so far."""
    import psutil
    total = 0.0
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def accepted(web, ca: str) -> int:
    """Connections nginx has accepted (stub_status), this probe's included."""
    import ssl
    ctx = ssl.create_default_context(cafile=ca) if web.url.startswith("https") else None
    with urllib.request.urlopen(web.url + "_nginx_status", context=ctx, timeout=10) as r:
        return int(r.read().decode().splitlines()[2].split()[0])


def _timed(rels: list[str], get) -> tuple[float, float]:
    """(GETs/s, this process's CPU ms per GET) of ``get(rel)`` over ``rels``."""
    c0, t0 = time.process_time(), time.perf_counter()
    for rel in rels:
        assert get(rel)
    c1, t1 = time.process_time(), time.perf_counter()
    return len(rels) / (t1 - t0), 1000 * (c1 - c0) / len(rels)


def client_gets(web, rels: list[str], ca: str) -> tuple[float, float]:
    """One kept http.client connection (HTTPSConnection over https): the
    least a client does per file, TLS's record work included."""
    import http.client
    import ssl
    if web.url.startswith("https"):
        conn = http.client.HTTPSConnection("127.0.0.1", web.port, timeout=30,
                                           context=ssl.create_default_context(cafile=ca))
    else:
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)

    def get(rel):
        conn.request("GET", "/" + rel)
        resp = conn.getresponse()
        return resp.status == 200 and resp.read()
    try:
        return _timed(rels, get)
    finally:
        conn.close()


def requests_gets(web, rels: list[str], ca: str) -> tuple[float, float]:
    """One requests session (what sarra's https downloads went through
    before they took httpconn's kept connection)."""
    import requests
    with requests.Session() as s:
        s.trust_env = False
        return _timed(rels, lambda rel: (r := s.get(web.url + rel, verify=ca)).status_code
                      == 200 and r.content)


def sarra_gets(web, rels: list[str], ca: str) -> tuple[float, float]:
    """The subscriber's own HttpTransfer: its kept connection
    (sarra/transfer/httpconn.py), plain for http, an ssl socket for https."""
    from sarra.tls import TlsPolicy
    from sarra.transfer.http import HttpTransfer
    t = HttpTransfer(tls=TlsPolicy(ca_file=ca))

    def get(rel):
        body = t.open(web.url + rel)
        got = 0
        while chunk := body.read(65536):
            got += len(chunk)
        body.close()
        return got
    try:
        return _timed(rels, get)
    finally:
        t.close()


LOOPS = (("http.client", client_gets), ("requests", requests_gets),
         ("sarra HttpTransfer", sarra_gets))


def end_to_end(tmp: Path, src: Path, n: int, broker: str, web, ca: str, tag: str,
               broker_pid: int) -> dict:
    """One run: files/s from dd_post's start to the last file in place, and
    CPU ms per file of each process, the connections nginx accepted."""
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
        time.sleep(1.0)                        # connected, its queue consumed
        sub0, ng0, br0 = cpu(proc.pid), cpu(web.proc.pid), cpu(broker_pid)
        conns0 = accepted(web, ca)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        cli("post", "--post_broker", broker, "--post_exchange", exchange, "--ca_file", ca,
            "--post_base_url", web.url, "--post_base_dir", str(src), str(src))
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wait_until(lambda: count_files(dst) >= n, [proc], f"{n} files", 0.01)
        elapsed = time.perf_counter() - t0
        ms = 1000.0 / n
        return {"rate": n / elapsed,
                "post": ms * (kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime),
                "sub": ms * (cpu(proc.pid) - sub0), "nginx": ms * (cpu(web.proc.pid) - ng0),
                "broker": ms * (cpu(broker_pid) - br0),
                "conns": accepted(web, ca) - conns0 - 1}      # (the first probe's)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        cli("subscribe", "cleanup", name)
        subprocess.run(["rm", "-rf", str(dst)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sarra-bench-tls-") as t:
        tmp = Path(t)
        env_dirs(tmp)
        ca = make_ca(tmp / "ca")
        ca_file = str(ca.ca_file)
        node = start_rabbit(tmp / "rabbit", f"bench_tls_{os.getpid()}", management=False,
                            tls=ca)
        src = tmp / "src"
        make_files(src, args.files, args.size)
        rels = sorted(str(p.relative_to(src)) for p in src.rglob("*.dat"))
        plain = start_nginx(tmp / "ng1", src, 1, extra=STATUS)
        tls = start_nginx(tmp / "ng2", src, 1, tls=ca, extra=STATUS)
        cred = Path(os.environ["SARRA_CONFIG_DIR"]) / "credentials.conf"
        cred.write_text(node.url() + "\n" + node.amqps_url() + "\n")
        runs = (("plain", node.url("guest", None), plain),
                ("amqps", node.amqps_url("guest", None), plain),
                ("https", node.url("guest", None), tls),
                ("tls", node.amqps_url("guest", None), tls))
        try:
            print(f"{args.files} files of {args.size} bytes, 1 nginx worker, one subscriber "
                  f"(prefetch 100), {os.cpu_count()} CPUs, load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start:")
            results: dict[str, list[dict]] = {tag: [] for tag, _, _ in runs}
            for rnd in range(1, args.rounds + 1):
                print(f" round {rnd} (load {os.getloadavg()[0]:.1f}); the limits, bare "
                      "keep-alive GET loops over the same files (GETs/s, client CPU ms/GET):")
                for what, loop in LOOPS:
                    (pr, pc), (tr, tc) = (loop(web, rels, ca_file) for web in (plain, tls))
                    print(f"  {what:18s}  http {pr:5.0f}/s ({pc:.2f} ms)   "
                          f"https {tr:5.0f}/s ({tc:.2f} ms)")
                print("  end to end (files/s; CPU ms/file of each process; connections "
                      "nginx accepted):")
                for tag, broker, web in runs:
                    r = end_to_end(tmp, src, args.files, broker, web, ca_file, f"{tag}{rnd}",
                                   node.proc.pid)
                    results[tag].append(r)
                    print(f"  {tag:5s} ({broker.split(':')[0]:5s} + {web.url.split(':')[0]:5s}): "
                          f"{r['rate']:5.0f} files/s | dd_post {r['post']:.2f}, subscriber "
                          f"{r['sub']:.2f}, nginx {r['nginx']:.2f}, broker {r['broker']:.2f} "
                          f"ms | {r['conns']} connection(s)")
            best = {tag: max(rs, key=lambda r: r["rate"]) for tag, rs in results.items()}
            low = {tag: min(r["sub"] for r in rs) for tag, rs in results.items()}
            print(f" best of {args.rounds}: " + ", ".join(
                f"{tag} {best[tag]['rate']:.0f} files/s" for tag in results)
                + f"; TLS (amqps + https) costs "
                f"{100 * (1 - best['tls']['rate'] / best['plain']['rate']):.0f}% of them; "
                "the subscriber's least CPU per file: " + ", ".join(
                f"{tag} {low[tag]:.2f} ms" for tag in results))
        finally:
            plain.stop()
            tls.stop()
            node.close()


if __name__ == "__main__":
    main()
