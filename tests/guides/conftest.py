"""Fixtures for the tests that run the guides (tests/guides/runner.py):
sandboxed machines, and helpers reading a node's queues and dd_log's table.
(Private RabbitMQ nodes, ``rabbit_node``, and nginx: tests/conftest.py.)
"""
from __future__ import annotations

import re
from typing import Callable

import pytest

from tests.clusterkit import rabbit_api
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
    """name -> messages ready, of every queue of the node: the names from
    the management API, each count as the broker has it now (a passive
    declare; the API's counts lag by up to its statistics interval, 5 s),
    or the API's for a queue that another connection holds exclusively."""
    import pika

    listed = rabbit_api(node, "GET", "queues/%2F?columns=name,messages_ready")
    queues = {}
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    try:
        for q in listed:
            try:
                channel = conn.channel()
                queues[q["name"]] = channel.queue_declare(q["name"], passive=True).method.message_count
                channel.close()
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 405:           # RESOURCE_LOCKED: exclusive
                    queues[q["name"]] = q.get("messages_ready", 0)
                # 404: deleted since it was listed
    finally:
        conn.close()
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


__all__ = ["log_table", "rabbit_api", "rabbit_queues"]
