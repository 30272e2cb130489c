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
                           port_open, tail, wait_for)


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

from tools.localsshd import SshdServer, find_sshd, start_sshd  # noqa: E402


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> SshdServer:
    """One sshd for the session (tools/localsshd.py: ``sshd -D -e`` with a
    private config; host key, client key pair and authorized_keys generated
    into a temp dir, ``ListenAddress 127.0.0.1`` on a free port, no PAM, no
    passwords). Log in as ``sshd.user`` with ``sshd.keyfile``: add
    ``sshd.credentials`` to credentials.conf. Stopped at the end of the session."""
    if find_sshd() is None:
        pytest.fail(f"sshd not found: {SETUP_HINT} (openssh-server)", pytrace=False)
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


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


# --------------------------------------------------------------------------- a browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by selenium through Debian's
    chromedriver (its path given: selenium-manager downloads nothing); one
    for the session, 1280x1000."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} not found: {SETUP_HINT} (chromium, chromium-driver)",
                        pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


# --------------------------------------------------------------------------- mosquitto

from tools.localmosquitto import MosquittoBroker, find_mosquitto, start_mosquitto  # noqa: E402

MQTT_USERS = {"alice": "alice-mqtt-pw", "bob": "bob-mqtt-pw"}


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> MosquittoBroker:
    """One private mosquitto for the session (tools/localmosquitto.py): an
    MQTT and a websockets listener on free loopback ports, accounts
    ``MQTT_USERS`` from a password file, persistence on. ``mosquitto.url(user)``,
    ``ws_url(user)``; ``mosquitto.credentials`` for credentials.conf."""
    if find_mosquitto() is None:
        pytest.fail(f"mosquitto not found: {SETUP_HINT} (mosquitto)", pytrace=False)
    try:
        broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"), MQTT_USERS)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield broker
    broker.close()


# --------------------------------------------------------------------------- RabbitMQ's MQTT

RABBIT_MQTT_USERS = {"alice": "alice-rmq-pw", "bob": "bob-rmq-pw"}
RABBIT_MQTT_SWITCH = """\
cluster: mqttlab
broker: amqp://guest@127.0.0.1:{port}/
feeder: amqp://feeder@127.0.0.1:{port}/
data_dir: {data_dir}
base_url: http://127.0.0.1:8090/
mqtt: on
users:
  alice: source
  bob: subscriber
"""


@pytest.fixture(scope="session")
def rabbit_mqtt(_rabbit_ahead):
    """One private RabbitMQ node for the session with rabbitmq_mqtt and
    rabbitmq_web_mqtt on loopback ports of their own (tools/localrabbit.py:
    ``node.mqtt_url(user)``, ``node.ws_url(user)``, ``node.url(user)``),
    made a switch by dd_audit's declare from a description with ``mqtt:
    on`` (``RABBIT_MQTT_SWITCH``): alice a source, bob a subscriber
    (passwords ``RABBIT_MQTT_USERS``), with their MQTT permissions and
    topic permissions (sarra/switch/plan.py). MQTT over TLS too
    (``node.mqtts_url(user)``), with the session test CA's certificate.
    Booted ahead of the first test that uses it, killed after the last
    (tests/rabbitahead.py)."""
    from sarra.switch import load_switch
    from sarra.switch.rabbit import ManagementApi, check, declare
    from tools.localrabbit import find_script
    if find_script("rabbitmq-server") is None:
        pytest.fail(f"rabbitmq-server not found: {SETUP_HINT}", pytrace=False)
    node, = _rabbit_ahead.claim(("mqtt",))
    home = node.home
    try:
        node.wait_started()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    _rabbit_ahead.ready(("mqtt",))
    path = home / "switch.yaml"
    path.write_text(RABBIT_MQTT_SWITCH.format(port=node.amqp_port, data_dir=home / "data"))
    switch = load_switch(str(path))
    passwords = {"guest": "guest", "feeder": secrets.token_hex(8), **RABBIT_MQTT_USERS}
    with ManagementApi(node.management_url, "guest", "guest") as api:
        done, conflicts = declare(switch, api, passwords)
        assert conflicts == [] and check(switch, api, passwords) == [], (done, conflicts)
        node.declared = done        # type: ignore[attr-defined]
    yield node
    node.kill()      # nothing of it is kept: no need of the 6 s of an orderly stop
