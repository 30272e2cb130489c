"""Where things are imported: each third-party library in the one module of
its concern (ARCHITECTURE.md, the layers), and tools/ (the private servers, the demo) apart
from the tests, which import tools/ (no cycle)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# library -> the modules (paths from the repository) that may import it
CONFINED = {
    "pika": {"sarra/broker/amqp.py"},
    "paho": {"sarra/broker/mqtt.py"},
    "requests": {"sarra/transfer/http.py",          # downloads
                 "sarra/broker/management.py"},     # RabbitMQ's management API
    "paramiko": {"sarra/transfer/sftp.py"},
    "ftplib": {"sarra/transfer/ftp.py"},               # a standard module, kept to one place
    "watchdog": {"sarra/watch/observer.py"},
    "xxhash": {"sarra/checksum.py"},
    "yaml": {"sarra/switch/description.py"},
    "psutil": {"sarra/service.py"},
    "prometheus_client": {"sarra/metrics.py"},
}


def imported(path: Path) -> set[str]:
    """The top-level names of the modules ``path`` imports (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "module" and isinstance(node.func.value, ast.Name)
              and node.func.value.id == "lazy" and node.args
              and isinstance(node.args[0], ast.Constant)):     # lazy.module("psutil")
            names.add(str(node.args[0].value).split(".")[0])
    return names


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_each_library_is_imported_where_its_concern_is(library):
    found = {p.relative_to(REPO).as_posix() for p in sources("sarra")
             if library in imported(p)}
    assert found == CONFINED[library]


def test_tools_do_not_import_the_tests():
    offenders = [p.relative_to(REPO).as_posix() for p in sources("tools")
                 if "tests" in imported(p)]
    assert sources("tools") and not offenders


def test_the_switch_talks_to_rabbitmq_through_the_broker_package():
    rabbit = REPO / "sarra" / "switch" / "rabbit.py"
    text = rabbit.read_text(encoding="utf-8")
    assert "from ..broker.management import JsonClient" in text
    assert "..transfer" not in text
    assert "JsonClient" not in (REPO / "sarra" / "transfer" / "http.py").read_text()


def test_transfers_read_no_configuration_state():
    """A transfer is given what it needs (timeout, credentials, the
    known_hosts file) by its caller: only sarra/transfer/__init__.py, which
    gives the flows' defaults, looks at the configuration's paths."""
    readers = []
    for path in sources("sarra/transfer"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        if any(isinstance(n, ast.ImportFrom) and n.level == 2 and (n.module or "")
               .startswith("config") for n in ast.walk(tree)):
            readers.append(path.name)
    assert readers == ["__init__.py"]
