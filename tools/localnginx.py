"""A private nginx on a free loopback port serving one directory, with
byte ranges and an access log. Used by the tests, the demo and the benchmarks.
With ``tls`` (a tools/testca.TestCA), it serves https with the CA's server
certificate (for 127.0.0.1 and localhost) instead of http.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.proc import free_port, port_open, tail
from tools.testca import TestCA


def find_nginx() -> str | None:
    for d in ("", "/usr/sbin/", "/sbin/", "/usr/local/sbin/"):
        path = shutil.which("nginx") if not d else (d + "nginx" if os.path.exists(d + "nginx") else None)
        if path:
            return path
    return None


_NGINX_CONF = """\
{user}
worker_processes {workers};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    types {{ }}
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server_tokens off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    log_format sarra_test '$remote_addr [$time_local] "$request" $status $body_bytes_sent "$http_range"';
    access_log {tmp}/access.log sarra_test;
    server {{
        listen 127.0.0.1:{port}{ssl};
        server_name localhost;{tls}
        root {root};
        autoindex off;
{extra}
    }}
}}
"""

_LOG_LINE = re.compile(r'^(?P<addr>\S+) \[(?P<time>[^\]]*)\] "(?P<method>\S+) (?P<path>.*?)'
                       r'(?: (?P<proto>HTTP/[\d.]+))?" (?P<status>\d{3}) (?P<bytes>\d+) '
                       r'"(?P<range>[^"]*)"$')


@dataclass
class NginxServer:
    """One private nginx serving ``root`` at ``url``."""

    url: str               # 'http://127.0.0.1:PORT/' (https://... with tls)
    port: int
    root: Path
    access_log: Path       # one line per request: addr [time] "METHOD PATH PROTO" status bytes "range"
    error_log: Path
    conf: Path
    proc: subprocess.Popen = field(repr=False)
    cmd: list = field(default_factory=list, repr=False)

    def requests(self) -> list[dict]:
        """Parsed access log: dicts with method, path, status (int), bytes (int), range."""
        entries = []
        try:
            text = self.access_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return entries
        for line in text.splitlines():
            m = _LOG_LINE.match(line)
            if m:
                d = m.groupdict()
                d["status"], d["bytes"] = int(d["status"]), int(d["bytes"])
                d["range"] = "" if d["range"] == "-" else d["range"]
                entries.append(d)
        return entries

    def start_again(self, timeout: float = 15) -> None:
        """Start the stopped server again, on the same port."""
        with open(self.conf.parent / "nginx.stdout", "ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start again on port {self.port}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10) -> None:
        """Fast shutdown (SIGTERM), then SIGKILL of the whole process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


_TLS = """
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;"""


def start_nginx(tmp: Path, root: Path, workers: str | int = "auto", extra: str = "",
                binary: str | None = None, tls: TestCA | None = None) -> NginxServer:
    """Start nginx serving ``root``; its files live in ``tmp``; over https
    with ``tls``'s server certificate when given. Raises RuntimeError."""
    binary = binary or find_nginx()
    if binary is None:
        raise RuntimeError("nginx not found: run `bash tools/setup.sh`")
    tmp, root = Path(tmp), Path(root)
    tmp.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(5):  # the free port may be taken between probe and bind
        port = free_port()
        conf = tmp / "nginx.conf"
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / d).mkdir(exist_ok=True)
        conf.write_text(_NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            workers=workers, tmp=tmp, port=port, root=root, extra=extra,
            ssl=" ssl" if tls else "",
            tls=_TLS.format(cert=tls.cert, key=tls.key) if tls else ""), encoding="utf-8")
        out = open(tmp / "nginx.stdout", "ab")
        cmd = [binary, "-c", str(conf), "-p", str(tmp) + "/", "-e", str(tmp / "error.log")]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        out.close()
        server = NginxServer(url=f"{'https' if tls else 'http'}://127.0.0.1:{port}/", port=port, root=root,
                             access_log=tmp / "access.log", error_log=tmp / "error.log",
                             conf=conf, proc=proc, cmd=cmd)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if port_open("127.0.0.1", port, 0.2):
                return server
            time.sleep(0.02)
        server.stop()
        logs = [(tmp / n).read_text(errors="replace") if (tmp / n).exists() else ""
                for n in ("nginx.stdout", "error.log")]
        last_error = tail("\n".join(logs))
        if "Address already in use" not in last_error:
            break
    raise RuntimeError(f"nginx did not start ({' '.join(cmd)}):\n{last_error}")


