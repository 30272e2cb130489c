"""Fixtures the unit tests of configurations share: a private configuration
and state directory, and the operator's command run in-process."""
import pytest

from sarra import cli


@pytest.fixture
def confdir(tmp_path, monkeypatch):
    """tmp_path/conf as $SARRA_CONFIG_DIR (tmp_path/state: $SARRA_STATE_DIR)."""
    conf = tmp_path / "conf"
    conf.mkdir()
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(conf))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    return conf


@pytest.fixture
def sarra_cli(capsys):
    """``sarra_cli(ARGS...) -> (exit status, stdout, stderr)`` of ``sarra ARGS...``."""
    def run(*args):
        rc = cli.operate([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err
    return run
