"""Fixtures for the tests that run the guides (tests/guides/runner.py):
sandboxed machines, and helpers reading a node's queues and dd_log's table.
(Private RabbitMQ nodes, ``rabbit_node``, and nginx: tests/conftest.py.)
"""
from __future__ import annotations

import re
from typing import Callable

import pytest

from tests.guides.runner import Machine
from tools.localrabbit import RabbitNode


@pytest.fixture
def machines(tmp_path) -> Callable[..., Machine]:
    """Factory: ``machines(name, **kwargs) -> Machine`` (runner.Machine) whose
    sandbox is tmp_path/name. Every process started on a machine (daemons,
    its nginx) is killed at teardown."""
    made: list[Machine] = []

    def make(name: str, **kwargs) -> Machine:
        machine = Machine(name, tmp_path / name, **kwargs)
        made.append(machine)
        return machine

    yield make
    for machine in made:
        machine.stop_everything()


def rabbit_queues(node: RabbitNode) -> dict[str, int]:
    """name -> messages ready, of every queue of the node."""
    res = node.ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready",
                   check=False)
    queues = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            queues[parts[0]] = int(parts[1])
    return queues


_LOG_LINE = re.compile(r"^(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+(?P<took>\S+)\s+"
                       r"(?P<code>\d{3})\s+(?P<who>\S+)\s+(?P<relpath>.*?)  \((?P<message>.*)\)$")


def log_table(text: str) -> list[dict]:
    """The rows of dd_log's table (its standard output): dicts with when,
    took, code, who (user@host), relpath and message."""
    rows = []
    for line in text.splitlines()[1:]:
        m = _LOG_LINE.match(line)
        assert m, f"not a line of dd_log's table: {line!r}"
        rows.append(m.groupdict())
    return rows


__all__ = ["log_table", "rabbit_queues"]
