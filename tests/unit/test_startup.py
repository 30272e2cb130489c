"""What a command line imports before it does anything (issue 20: start-up).

Each test runs a real ``python -X importtime -m sarra.cli ...`` and reads the
modules it imported: the heavy libraries stay out until the work needs them
(sarra/lazy.py; imports inside the functions that use them). A top-level
import of one of them put back in sarra/cli.py, sarra/service.py,
sarra/flow/housekeeping.py, sarra/flow/gather.py or sarra/config/remote.py
fails these tests.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("pika", "paho", "requests", "urllib3", "prometheus_client", "psutil",
         "jsonschema", "yaml", "paramiko", "watchdog", "http.client", "urllib.request")


def imported(args: list[str], tmp_path) -> tuple[set[str], subprocess.CompletedProcess]:
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_STATE_HOME=str(tmp_path / "state"))
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "sarra.cli", *args],
                         capture_output=True, text=True, env=env, timeout=60)
    names = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    assert "sarra.config" in names, run.stderr[-2000:]    # (sarra.cli runs as __main__)
    return names, run


def heavy_in(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", [["post", "--help"], ["subscribe", "--help"],
                                  ["sarra", "--help"], ["post", "--version"]])
def test_help_imports_no_heavy_library(args, tmp_path):
    names, run = imported(args, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert heavy_in(names) == []
    # nor the flows: --help builds none
    assert not {"sarra.components", "sarra.flow.engine"} & names


def test_a_post_to_standard_output_imports_no_heavy_library(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("hello\n")
    names, run = imported(["post", "--outlet", "json", "--post_base_url", "file:/", str(f)],
                          tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert '"relPath"' in run.stdout        # it did post
    assert "sarra.flow.engine" in names     # the real flow ran
    assert heavy_in(names) == []
    # nor what only daemons, TLS or WIS2 need (a rotated log file, the
    # process table, ssl, the WNM codec): sarra/cli.py, sarra/components.py,
    # sarra/tls.py, sarra/codec/__init__.py load them when used
    assert not {"logging.handlers", "sarra.service", "sarra.manage", "ssl",
                "sarra.codec.wis2"} & names


def test_the_test_sees_a_heavy_import(tmp_path):
    """The check itself: a module that does import one is seen."""
    env = dict(os.environ)
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", "import sarra.service; "
                          "sarra.service.psutil.pid_exists(1)"],
                         capture_output=True, text=True, env=env, timeout=60)
    names = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines()
             if line.startswith("import time:")}
    assert run.returncode == 0, run.stderr[-2000:]
    assert any(n.split(".")[0] == "psutil" for n in heavy_in(names))
