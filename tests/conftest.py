"""Fixtures for every suite: a private sarra home, unique names, process cleanup.

Server fixtures (amqp_url, nginx, rabbitmq_ctl) live in tests/integration/conftest.py.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import AMQP_URL, ProcessRegistry, _kill_started, kill_processes_with_env

_INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config, items):
    """Everything under tests/integration/ carries the ``integration`` marker."""
    for item in items:
        if _INTEGRATION_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


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
