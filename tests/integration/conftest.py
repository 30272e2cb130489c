"""Fixtures for integration tests against real servers: RabbitMQ on
127.0.0.1:5672 (guest/guest) and private nginx instances.

Missing servers are failures, not skips: run ``bash tools/setup.sh`` first.
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
from typing import Callable

import pytest

from tests.helpers import AMQP_HOST, AMQP_PORT, AMQP_URL, free_port, port_open, tail, wait_for

SETUP_HINT = "run `bash tools/setup.sh` (installs and starts RabbitMQ and nginx)"


# --------------------------------------------------------------------------- RabbitMQ

@pytest.fixture(scope="session")
def amqp_url() -> str:
    """'amqp://guest:guest@127.0.0.1:5672/' once the port answers; fails otherwise."""
    if not port_open(AMQP_HOST, AMQP_PORT, timeout=2):
        pytest.fail(f"RabbitMQ does not answer on {AMQP_HOST}:{AMQP_PORT}: {SETUP_HINT}",
                    pytrace=False)
    return AMQP_URL


def _root_prefix() -> list[str]:
    """rabbitmqctl needs root (erlang cookie): sudo -n when not root."""
    if os.geteuid() == 0:
        return []
    return ["sudo", "-n"] if shutil.which("sudo") else []


def _find_program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


class RabbitCtl:
    """Stop and start the RabbitMQ application (the node keeps running)."""

    def __init__(self) -> None:
        ctl = _find_program("rabbitmqctl")
        if ctl is None:
            pytest.fail(f"rabbitmqctl not found: {SETUP_HINT}", pytrace=False)
        self.ctl = ctl
        self.stopped = False

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """``rabbitmqctl ARGS...`` (e.g. run('list_queues', 'name', 'messages'))."""
        res = subprocess.run([*_root_prefix(), self.ctl, *args], capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} exited {res.returncode}:\n"
                                 f"{tail(res.stdout)}\n{tail(res.stderr)}")
        return res

    def stop_app(self, timeout: float = 60) -> None:
        """``rabbitmqctl stop_app`` and wait until the AMQP port refuses connections."""
        self.stopped = True
        self.run("stop_app")
        wait_for(lambda: not port_open(AMQP_HOST, AMQP_PORT, 0.5), timeout=timeout,
                 interval=0.1, what=f"{AMQP_HOST}:{AMQP_PORT} to close after stop_app")

    def start_app(self, timeout: float = 60) -> None:
        """``rabbitmqctl start_app``, then wait for await_startup and the AMQP port."""
        self.run("start_app")
        self.run("await_startup", timeout=timeout)
        wait_for(lambda: port_open(AMQP_HOST, AMQP_PORT, 0.5), timeout=timeout,
                 interval=0.1, what=f"{AMQP_HOST}:{AMQP_PORT} to answer after start_app")
        self.stopped = False

    def restart_app(self, down_for: float = 0.0) -> None:
        """stop_app, stay down ``down_for`` seconds, start_app."""
        self.stop_app()
        time.sleep(down_for)
        self.start_app()

    def close_all_connections(self, reason: str = "test") -> None:
        """Drop every client connection (a lighter way to test reconnection)."""
        self.run("close_all_connections", reason)


@pytest.fixture
def rabbitmq_ctl(amqp_url) -> RabbitCtl:
    """RabbitCtl: stop_app(), start_app(), restart_app(down_for), close_all_connections(),
    run(*args). The application is started again at teardown if a test left it stopped."""
    ctl = RabbitCtl()
    yield ctl
    if ctl.stopped or not port_open(AMQP_HOST, AMQP_PORT, 1):
        ctl.start_app()


# --------------------------------------------------------------------------- nginx

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
        listen 127.0.0.1:{port};
        server_name localhost;
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

    url: str               # 'http://127.0.0.1:PORT/'
    port: int
    root: Path
    access_log: Path       # one line per request: addr [time] "METHOD PATH PROTO" status bytes "range"
    error_log: Path
    conf: Path
    proc: subprocess.Popen = field(repr=False)

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


def _start_nginx(binary: str, tmp: Path, root: Path, workers: str | int, extra: str) -> NginxServer:
    last_error = ""
    for _attempt in range(5):  # the free port may be taken between probe and bind
        port = free_port()
        conf = tmp / "nginx.conf"
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / d).mkdir(exist_ok=True)
        conf.write_text(_NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            workers=workers, tmp=tmp, port=port, root=root, extra=extra), encoding="utf-8")
        out = open(tmp / "nginx.stdout", "ab")
        cmd = [binary, "-c", str(conf), "-p", str(tmp) + "/", "-e", str(tmp / "error.log")]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        out.close()
        server = NginxServer(url=f"http://127.0.0.1:{port}/", port=port, root=root,
                             access_log=tmp / "access.log", error_log=tmp / "error.log",
                             conf=conf, proc=proc)
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
    pytest.fail(f"nginx did not start ({' '.join(cmd)}):\n{last_error}", pytrace=False)


@pytest.fixture
def nginx(tmp_path_factory) -> Callable[..., NginxServer]:
    """Factory: ``nginx(root_dir, workers='auto', extra='') -> NginxServer``.

    Starts a real nginx (master + workers, ``daemon off``) on a free
    127.0.0.1 port serving ``root_dir`` (autoindex off, sendfile on, Range
    supported); every file it writes lives in a private temp dir outside the
    test's tmp_path. ``extra`` is raw nginx text inserted in the server block
    (e.g. locations). All instances are stopped at teardown.
    """
    binary = _find_program("nginx")
    if binary is None:
        pytest.fail(f"nginx not found: {SETUP_HINT}", pytrace=False)
    servers: list[NginxServer] = []

    def start(root_dir, workers: str | int = "auto", extra: str = "") -> NginxServer:
        root = Path(root_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_factory.mktemp("nginx")
        server = _start_nginx(binary, tmp, root, workers, extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
