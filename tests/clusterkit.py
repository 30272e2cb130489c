"""Helpers of the tests on a three-node RabbitMQ cluster (the ``cluster``
fixture of tests/conftest.py): its management API, and making sure every
node runs before a test (an earlier one may have SIGKILLed some). The API's
``rabbit_api`` serves the tests of any private node too."""
from __future__ import annotations

import requests          # the test side's HTTP client (not sarra's)

from tests.helpers import port_open, wait_for
from tools.localrabbit import RabbitNode


def api(node: RabbitNode, path: str):
    got = requests.get(f"{node.management_url}/{path}", auth=("guest", "guest"), timeout=10)
    got.raise_for_status()
    return got.json()


def rabbit_api(node: RabbitNode, method: str, path: str, body: dict | None = None):
    """``method`` ``path`` on the node's management API, as guest (the
    test's hand on the node, where rabbitmqctl would boot an Erlang VM
    each time, a second or more); the decoded answer, if any."""
    got = requests.request(method, f"{node.management_url}/{path}", auth=("guest", "guest"),
                           json=body, timeout=10)
    got.raise_for_status()
    return got.json() if got.content else None


def alive(nodes) -> list[RabbitNode]:
    return [n for n in nodes if n.proc is not None and n.proc.poll() is None]


def all_running(nodes) -> None:
    """Every node started and counted running by the cluster."""
    dead = [n for n in nodes if n.proc is None or n.proc.poll() is not None]
    for node in dead:                   # side by side: each waits for its peers
        node.launch()
    for node in dead:
        node.wait_started(120)

    seen = ["nothing yet"]

    def running():
        for node in nodes:              # one that exited while it rejoined
            if node.proc is None or node.proc.poll() is not None:
                seen.append(f"{node.nodename} exited; started again")
                node.launch()
        closed = [n.nodename for n in nodes if not port_open("127.0.0.1", n.amqp_port, 0.5)]
        if closed:
            seen[0] = f"AMQP port closed on {closed}"
            return False
        try:
            listed = api(nodes[0], "nodes")
        except requests.RequestException as exc:
            seen[0] = f"management API of {nodes[0].nodename}: {exc}"
            return False            # its management API is starting
        seen[0] = "nodes listed: " + ", ".join(f"{n['name']} running={n['running']}"
                                              for n in listed)
        return len(listed) == len(nodes) and all(n["running"] for n in listed)
    try:
        wait_for(running, timeout=120, interval=0.5, what="every node of the cluster running")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {'; '.join(seen)}") from None
