"""Helpers of the tests on a three-node RabbitMQ cluster (the ``cluster``
fixture of tests/conftest.py): its management API, and making sure every
node runs before a test (an earlier one may have SIGKILLed some)."""
from __future__ import annotations

import requests          # the test side's HTTP client (not sarra's)

from tests.helpers import port_open, wait_for
from tools.localrabbit import RabbitNode


def api(node: RabbitNode, path: str):
    got = requests.get(f"{node.management_url}/{path}", auth=("guest", "guest"), timeout=10)
    got.raise_for_status()
    return got.json()


def alive(nodes) -> list[RabbitNode]:
    return [n for n in nodes if n.proc is not None and n.proc.poll() is None]


def all_running(nodes) -> None:
    """Every node started and counted running by the cluster."""
    for node in nodes:
        if node.proc is None or node.proc.poll() is not None:
            node.start()

    def running():
        if not all(port_open("127.0.0.1", n.amqp_port, 0.5) for n in nodes):
            return False
        try:
            listed = api(nodes[0], "nodes")
        except requests.RequestException:
            return False            # its management API is starting
        return len(listed) == len(nodes) and all(n["running"] for n in listed)
    wait_for(running, timeout=90, interval=0.5, what="every node of the cluster running")
