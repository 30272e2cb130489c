"""Private RabbitMQ nodes booted ahead of the tests that need them, and
killed after the last one that does (tests/conftest.py's ``rabbit_node``,
``cluster`` and ``rabbit_mqtt`` take theirs from here).

A node boots in 5 to 10 s, mostly waiting on one core: booted in the
background while earlier tests run, it is up when its test starts. What a
test needs is read from the collected items: the ``cluster`` and
``rabbit_mqtt`` fixtures, and the names of ``rabbit_node`` given by a
``rabbit_nodes`` marker (``@pytest.mark.rabbit_nodes("a", "b")``, or a
module's ``pytestmark``). A ``rabbit_node(name)`` with no marker is
started when asked for, as before. Each node is as fresh as one started
on demand: booted from an empty directory, used by no test before.

Once no remaining item needs a node, it is killed (an idle node costs a
few percent of a core, and the suite runs on two).
"""
from __future__ import annotations

import secrets
import threading
from typing import Callable, Hashable

from tools.localrabbit import RabbitNode, launch_cluster, prepare_rabbit

AHEAD = 4           # Erlang VMs booting or booted, not yet claimed, at most


def needs(item) -> list[tuple]:
    """What ``item`` needs, in the order it asks: ("node", name), ("cluster",),
    ("mqtt",)."""
    out: list[tuple] = []
    for mark in item.iter_markers("rabbit_nodes"):
        out += [("node", name) for name in mark.args if ("node", name) not in out]
    if "cluster" in item.fixturenames:
        out.append(("cluster",))
    if "rabbit_mqtt" in item.fixturenames:
        out.append(("mqtt",))
    return out


class Ahead:
    """The session's plan: each key's first and last item, the launched
    nodes not claimed yet, the claimed ones (to kill after their last item)."""

    def __init__(self, items, tmp_path_factory, ca_getter: Callable) -> None:
        self.items = list(items)
        self.index = {id(item): i for i, item in enumerate(self.items)}
        self.first: dict[Hashable, int] = {}   # keys, in the order of their first use
        self.last: dict[Hashable, int] = {}
        for i, item in enumerate(self.items):
            for key in needs(item):
                self.first.setdefault(key, i)
                self.last[key] = i
        self.tmp_path_factory = tmp_path_factory
        self.ca_getter = ca_getter
        self.launched: dict[Hashable, list[RabbitNode]] = {}    # booting or up, unclaimed
        self.claimed: dict[Hashable, list[RabbitNode]] = {}
        self.done: set = set()                 # keys killed after their last item
        self.up: set = set()                   # claimed keys whose nodes answered
        self.current = None                    # the item running
        self.lock = threading.Lock()           # rabbit_node.several claims from threads

    # -- what the fixtures call ------------------------------------------------

    def make(self, key) -> list[RabbitNode]:
        """``key``'s nodes, launched now (not waited for)."""
        mktemp = self.tmp_path_factory.mktemp
        if key[0] == "node":
            node = prepare_rabbit(mktemp(f"rabbit_{key[1]}"),
                                  f"sarra_{key[1]}_{secrets.token_hex(3)}", tls=self.ca_getter())
            node.launch()
            return [node]
        if key[0] == "cluster":
            return launch_cluster(mktemp("cluster"), f"sarra_cl{secrets.token_hex(2)}_", 3)
        if key[0] == "mqtt":
            node = prepare_rabbit(mktemp("rabbit_mqtt"), f"sarra_mqtt_{secrets.token_hex(3)}",
                                  mqtt=True, tls=self.ca_getter())
            node.launch()
            return [node]
        raise ValueError(key)

    def claim(self, key) -> list[RabbitNode]:
        """``key``'s nodes for its fixture: the ones launched ahead, else
        launched now; the caller waits for them, then says ``ready``. Killed
        after the key's last item (if the plan has it), else at the end."""
        with self.lock:
            nodes = self.launched.pop(key, None) or self.make(key)
            self.claimed[key] = nodes
        return nodes

    def ready(self, key) -> None:
        """``key``'s nodes answer: time to boot those of the next tests."""
        with self.lock:
            self.up.add(key)
        if self.current is not None:
            self.look_ahead(self.current)

    # -- what the hooks call ---------------------------------------------------

    def look_ahead(self, item) -> None:
        """Launch what ``item`` itself needs and has not claimed yet; once
        its nodes answer, what the items after it need first, up to AHEAD
        VMs launched and not claimed (a node boots faster alone)."""
        self.current = item
        at = self.index.get(id(item))
        if at is None:
            return
        with self.lock:
            own = needs(item)
            for key in own:
                if key not in self.claimed and key not in self.launched:
                    self.launched[key] = self.make(key)
            if any(key not in self.up for key in own):
                return                          # again when they answer (ready)
            for key, first in self.first.items():
                if first <= at or key in self.claimed or key in self.launched \
                        or key in self.done:
                    continue
                waiting = sum(len(n) for n in self.launched.values())
                size = 3 if key[0] == "cluster" else 1
                if waiting and waiting + size > AHEAD:
                    break
                self.launched[key] = self.make(key)

    def finished(self, item) -> None:
        """After ``item``'s teardown: kill what no later item needs."""
        at = self.index.get(id(item))
        if at is None:
            return
        with self.lock:
            ended = [key for key, last in self.last.items() if last == at and key in self.claimed]
            for key in ended:
                for node in self.claimed.pop(key):
                    node.kill()
                self.done.add(key)

    def close(self) -> None:
        """At the end of the session: kill every node it launched."""
        for nodes in [*self.launched.values(), *self.claimed.values()]:
            for node in nodes:
                node.kill()
        self.launched.clear()
        self.claimed.clear()
