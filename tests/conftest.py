"""Fixtures for every suite: a private sarra home, unique names, process cleanup.

Servers every suite may start are here (nginx, rabbit_node: private RabbitMQ
nodes); amqp_url, rabbitmq_ctl and sshd live in tests/integration/conftest.py;
those of the tests that run the guides in tests/guides/conftest.py.
"""
from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

from tests.helpers import (AMQP_URL, SETUP_HINT, ProcessRegistry, _kill_started, find_program,
                           kill_processes_with_env)
from tests.rabbitahead import Ahead, needs
from tools.localnginx import NginxServer, start_nginx
from tools.localrabbit import RabbitNode, find_script, wait_cluster
from tools.testca import TestCA, make_ca

_INTEGRATION_DIRS = (Path(__file__).parent / "integration", Path(__file__).parent / "guides")
_UNIT_DIR = Path(__file__).parent / "unit"


def pytest_sessionstart(session):
    """The package's byte code, written once: the suite starts the tools as
    hundreds of processes, and where PYTHONDONTWRITEBYTECODE is set (it is
    on some CI images) each would compile the whole package from source
    again (about 0.07 s a start here). compileall writes the caches
    whatever that variable says, and leaves those still fresh alone."""
    import compileall
    compileall.compile_dir(str(Path(__file__).parents[1] / "sarra"), quiet=1)


def pytest_collection_modifyitems(config, items):
    """Everything under tests/integration/ and tests/guides/ (the guides run
    against real servers) carries the ``integration`` marker.

    The unit tests run first (each file's tests in their order, every
    other file after them in its own): they run in pytest's process, on
    one core, and the private RabbitMQ nodes the first tests of the guides
    need boot on the other meanwhile (tests/rabbitahead.py)."""
    for item in items:
        if any(d in Path(item.path).parents for d in _INTEGRATION_DIRS):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: _UNIT_DIR not in Path(item.path).parents)   # stable


@dataclass
class SarraHome:
    """A private configuration + state area for the tools run by one test."""

    root: Path          # the test's tmp_path
    config_dir: Path    # $SARRA_CONFIG_DIR
    state_dir: Path     # $SARRA_STATE_DIR
    credentials: Path   # <config_dir>/credentials.conf (mode 0600)
    broker_url: str = "amqp://guest@127.0.0.1:5672/"  # password comes from credentials.conf

    def write_config(self, tool: str, name: str, text: str) -> Path:
        """Write ``<config_dir>/<tool>/<name>.conf`` and return its path."""
        path = self.config_dir / tool / f"{name}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def add_credentials(self, *urls: str) -> None:
        """Append URLs (with passwords) to credentials.conf."""
        with open(self.credentials, "a", encoding="utf-8") as f:
            for url in urls:
                f.write(url + "\n")

    @property
    def env(self) -> dict[str, str]:
        """The two SARRA_* variables (already in os.environ while the test runs)."""
        return {"SARRA_CONFIG_DIR": str(self.config_dir), "SARRA_STATE_DIR": str(self.state_dir)}


@pytest.fixture
def sarra_home(tmp_path, monkeypatch) -> SarraHome:
    """tmp config and state dirs exported as SARRA_CONFIG_DIR / SARRA_STATE_DIR
    (in os.environ, so subprocesses inherit them), with a credentials.conf for
    the local broker. Any process still running with this state dir in its
    environment at teardown (e.g. a daemon left by ``start``) is killed."""
    config_dir = tmp_path / "config"
    state_dir = tmp_path / "state"
    config_dir.mkdir()
    state_dir.mkdir()
    credentials = config_dir / "credentials.conf"
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(AMQP_URL + "\n")
    os.chmod(credentials, 0o600)
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("SARRA_STATE_DIR", str(state_dir))
    yield SarraHome(root=tmp_path, config_dir=config_dir, state_dir=state_dir,
                    credentials=credentials)
    kill_processes_with_env("SARRA_STATE_DIR", str(state_dir))


@pytest.fixture
def unique() -> str:
    """A short random hex string for exchange, queue and config names."""
    return secrets.token_hex(4)


@pytest.fixture
def procs():
    """A ProcessRegistry (a list of Popen, with .start_tool(...) and .start(cmd, log=...));
    whatever is still running at teardown is SIGKILLed with its process group."""
    registry = ProcessRegistry()
    yield registry
    registry.kill_all()


@pytest.fixture(autouse=True)
def _no_leaked_processes():
    """Kill (SIGKILL, process group) every process a test started with
    tests.helpers.start_tool / ProcessRegistry that is still running at its end."""
    yield
    _kill_started()


# --------------------------------------------------------------------------- servers
# (failures, not skips, when missing: run ``bash tools/setup.sh`` first)

# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> TestCA:
    """The session's test CA (tools/testca.py): ``.ca_file`` (ca.crt, what a
    client trusts), ``.cert``/``.key`` (the server certificate it signed for
    127.0.0.1 and localhost: every rabbit_node node's TLS listeners and the
    https nginx servers use it), ``.issue(name, hosts)`` for another one."""
    try:
        return make_ca(tmp_path_factory.mktemp("test_ca"))
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"no test CA (openssl): {exc}: {SETUP_HINT}", pytrace=False)


# --------------------------------------------------------------------------- nginx

@pytest.fixture
def nginx(tmp_path_factory, request) -> Callable[..., NginxServer]:
    """Factory: ``nginx(root_dir, workers='auto', extra='', https=False) -> NginxServer``.

    Starts a real nginx (master + workers, ``daemon off``) on a free
    127.0.0.1 port serving ``root_dir`` (autoindex off, sendfile on, Range
    supported); every file it writes lives in a private temp dir outside the
    test's tmp_path. ``extra`` is raw nginx text inserted in the server block
    (e.g. locations). With ``https=True`` it serves https only, with the
    session test CA's server certificate (``test_ca``; its ``url`` starts
    with https://); ``https=(cert, key)`` presents that certificate instead
    (e.g. one ``test_ca.issue`` made for another host). All instances are
    stopped at teardown.
    """
    binary = find_program("nginx")
    if binary is None:
        pytest.fail(f"nginx not found: {SETUP_HINT}", pytrace=False)
    servers: list[NginxServer] = []

    def start(root_dir, workers: str | int = "auto", extra: str = "",
              https: bool | tuple = False) -> NginxServer:
        root = Path(root_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_factory.mktemp("nginx")
        if isinstance(https, tuple):           # (start_nginx reads .cert and .key)
            tls = SimpleNamespace(cert=Path(https[0]), key=Path(https[1]))
        else:
            tls = request.getfixturevalue("test_ca") if https else None
        try:
            server = start_nginx(tmp, root, workers, extra, binary, tls)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------- more brokers

_AHEAD = pytest.StashKey[Ahead]()


@pytest.fixture(scope="session", autouse=True)
def _rabbit_ahead(request, tmp_path_factory):
    """The private RabbitMQ nodes of the session (rabbit_node, cluster,
    rabbit_mqtt), booted ahead of the tests that need them and killed after
    the last one (tests/rabbitahead.py); nothing when no test needs one."""
    items = request.session.items
    if not any(needs(item) or "rabbit_node" in item.fixturenames for item in items):
        yield None
        return
    ca = request.getfixturevalue("test_ca")
    ahead = Ahead(items, tmp_path_factory, lambda: ca)
    request.config.stash[_AHEAD] = ahead
    try:
        yield ahead
    finally:
        del request.config.stash[_AHEAD]
        ahead.close()


def _ahead(config) -> Ahead | None:
    return config.stash.get(_AHEAD, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Once a test's own nodes are up, boot those of the tests after it."""
    ahead = _ahead(item.config)
    if ahead is not None:
        ahead.look_ahead(item)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    ahead = _ahead(item.config)
    if ahead is not None:
        ahead.finished(item)



@pytest.fixture(scope="session")
def rabbit_node(_rabbit_ahead) -> Callable[[str], RabbitNode]:
    """Factory: ``rabbit_node(name) -> RabbitNode``, a private RabbitMQ node
    (own AMQP and management ports on 127.0.0.1, own data; guest/guest)
    started on first use and shared by the session under that name: a
    second and third switch for the tests of links. A test that stops one
    (``node.stop()``) starts it again. All are killed at the end (their data
    is not kept).

    Every node has TLS listeners too, with ``test_ca``'s server
    certificate: ``node.amqps_url(user, password)`` (port
    ``node.amqps_port``) and ``node.management_https_url``.

    A test (or module) that names its nodes in a marker,
    ``@pytest.mark.rabbit_nodes("a", "b")``, finds them booted ahead, and
    they are killed after the last test that names them
    (tests/rabbitahead.py); another name is started when asked for."""
    if find_script("rabbitmq-server") is None:
        pytest.fail(f"rabbitmq-server not found: {SETUP_HINT}", pytrace=False)
    nodes: dict[str, RabbitNode] = {}

    def get(name: str) -> RabbitNode:
        node = nodes.get(name)
        if node is None:
            try:
                # a unique Erlang node name: one left running by an interrupted
                # run does not stand in the way (tests/rabbitahead.py)
                node, = _rabbit_ahead.claim(("node", name))
                node.wait_started()
                nodes[name] = node
                _rabbit_ahead.ready(("node", name))
            except RuntimeError as exc:
                pytest.fail(str(exc), pytrace=False)
        else:
            node.start()        # left stopped by an earlier test
        return node

    def several(*names: str) -> list[RabbitNode]:
        """``get`` for several names, the new nodes started side by side."""
        threads = [threading.Thread(target=get, args=(n,)) for n in names if n not in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [get(n) for n in names]

    get.several = several       # type: ignore[attr-defined]
    yield get
    for node in nodes.values():     # nothing of them is kept: no orderly stop
        node.kill()


@pytest.fixture(scope="session")
def cluster(_rabbit_ahead) -> list[RabbitNode]:
    """Three private RabbitMQ nodes on loopback joined into one cluster
    (tools/localrabbit.start_cluster), started on first use and shared by
    the session: the cluster tests and the admin guide's cluster section.
    A test that kills nodes leaves them to the next one's
    tests.clusterkit.all_running. Booted ahead of the first test that
    uses it, killed after the last (tests/rabbitahead.py)."""
    if find_script("rabbitmq-server") is None:
        pytest.fail(f"rabbitmq-server not found: {SETUP_HINT}", pytrace=False)
    try:
        nodes = wait_cluster(_rabbit_ahead.claim(("cluster",)))
        _rabbit_ahead.ready(("cluster",))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield nodes
    for node in nodes:              # nothing of them is kept: no orderly stop
        node.kill()
