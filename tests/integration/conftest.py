"""Fixtures for integration tests against real servers: RabbitMQ on
127.0.0.1:5672 (guest/guest), its application stopped and started, a
private sshd. (nginx and private RabbitMQ nodes: tests/conftest.py.)

Missing servers are failures, not skips: run ``bash tools/setup.sh`` first.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers import (AMQP_HOST, AMQP_PORT, AMQP_URL, SETUP_HINT, find_program,
                           port_open, stop_process, tail, wait_for)


# --------------------------------------------------------------------------- RabbitMQ

MGMT_API = f"http://{AMQP_HOST}:15672/api"


@pytest.fixture
def unique():
    """A short random hex string for exchange, queue and config names; at
    teardown, the exchanges and queues of the shared broker whose names hold
    it are deleted (what a test declared, and what its components did)."""
    import requests          # the test side's HTTP client (not sarra's)

    token = secrets.token_hex(4)
    yield token
    auth = ("guest", "guest")
    for kind in ("exchanges", "queues"):
        try:
            listed = requests.get(f"{MGMT_API}/{kind}/%2F?columns=name", auth=auth, timeout=10)
            listed.raise_for_status()
        except requests.RequestException:
            return                  # no API: nothing to tidy that a test could check
        for name in [item["name"] for item in listed.json() if token in item["name"]]:
            requests.delete(f"{MGMT_API}/{kind}/%2F/{quote(name, safe='')}", auth=auth,
                            timeout=10)

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


class RabbitCtl:
    """Stop and start the RabbitMQ application (the node keeps running)."""

    def __init__(self) -> None:
        ctl = find_program("rabbitmqctl")
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


# --------------------------------------------------------------------------- sshd

from dataclasses import dataclass  # noqa: E402

from tests.helpers import free_port  # noqa: E402


@dataclass
class SshdServer:
    """A private sshd (SFTP: internal-sftp) on a 127.0.0.1 port; key login only."""

    host: str
    port: int
    user: str          # the user running the tests: the only one that can log in
    keyfile: Path      # private key accepted by the server (no passphrase)
    log: Path          # sshd's own log (-e)
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        """'sftp://USER@127.0.0.1:PORT' (append an absolute path: '/tmp/x/')."""
        return f"sftp://{self.user}@{self.host}:{self.port}"

    @property
    def credentials(self) -> str:
        """The credentials.conf line for this server (the key as ssh_keyfile)."""
        return f"{self.url}/ ssh_keyfile={self.keyfile}"


_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {tmp}/ssh_host_ed25519_key
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {tmp}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel INFO
"""


def _keygen(path: Path) -> None:
    res = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sarra-test",
                          "-f", str(path)], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        pytest.fail(f"ssh-keygen failed: {res.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> SshdServer:
    """One sshd for the session, started here (``sshd -D -e`` with a private
    config: host key, client key pair and authorized_keys generated into a
    temp dir, ``ListenAddress 127.0.0.1`` on a free port, no PAM, no
    passwords). Log in as ``sshd.user`` with ``sshd.keyfile``: add
    ``sshd.credentials`` to credentials.conf. Stopped at the end of the session."""
    import getpass
    binary = find_program("sshd")
    if binary is None or shutil.which("ssh-keygen") is None:
        pytest.fail(f"sshd or ssh-keygen not found: {SETUP_HINT} (openssh-server)",
                    pytrace=False)
    tmp = tmp_path_factory.mktemp("sshd")
    _keygen(tmp / "ssh_host_ed25519_key")
    _keygen(tmp / "client_key")
    shutil.copy(tmp / "client_key.pub", tmp / "authorized_keys")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege separation dir
    for _attempt in range(3):        # free_port may lose a race
        port = free_port()
        conf = tmp / "sshd_config"
        conf.write_text(_SSHD_CONFIG.format(port=port, tmp=tmp), encoding="utf-8")
        log = tmp / "sshd.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([binary, "-D", "-e", "-f", str(conf)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        try:
            wait_for(lambda: proc.poll() is not None or port_open("127.0.0.1", port, 0.5),
                     timeout=15, interval=0.05, what=f"sshd on 127.0.0.1:{port}")
        except AssertionError:
            proc.kill()
            proc.wait(10)
            raise
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"sshd did not start:\n{tail(log.read_text(errors='replace'))}",
                    pytrace=False)
    yield SshdServer("127.0.0.1", port, getpass.getuser(), tmp / "client_key", log, proc)
    stop_process(proc, timeout=10)



# --------------------------------------------------------------------------- vsftpd

from tools.localftp import FtpServer, find_vsftpd, start_vsftpd  # noqa: E402


def _vsftpd(tmp_path_factory, tls: bool) -> FtpServer:
    if find_vsftpd() is None:
        pytest.fail(f"vsftpd not found: {SETUP_HINT}", pytrace=False)
    tmp = tmp_path_factory.mktemp("ftps" if tls else "ftp")
    try:
        return start_vsftpd(tmp / "server", tmp / "root", tls=tls)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def ftpd(tmp_path_factory) -> FtpServer:
    """One private plain-FTP vsftpd for the session (tools/localftp.py): a
    free 127.0.0.1 port, passive ports on loopback, the anonymous login with
    its own password (``ftpd.credentials``, the credentials.conf line).
    Tests use a directory of their own under ``ftpd.root``
    (``ftpd.writable(dir)`` for uploads). Stopped at the end of the session."""
    server = _vsftpd(tmp_path_factory, tls=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ftpsd(tmp_path_factory) -> FtpServer:
    """The same as ``ftpd``, FTPS only (explicit TLS for the login and the
    data) with a certificate for 127.0.0.1 from a test CA made by the
    fixture (``ftpsd.ca_file``, named in ``ftpsd.credentials``)."""
    server = _vsftpd(tmp_path_factory, tls=True)
    yield server
    server.stop()
