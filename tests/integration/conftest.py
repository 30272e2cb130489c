"""Fixtures for integration tests against real servers: RabbitMQ on
127.0.0.1:5672 (guest/guest) and private nginx instances.

Missing servers are failures, not skips: run ``bash tools/setup.sh`` first.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from tools.localnginx import NginxServer, start_nginx
from tests.helpers import AMQP_HOST, AMQP_PORT, AMQP_URL, port_open, tail, wait_for

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
        try:
            server = start_nginx(tmp, root, workers, extra, binary)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
