"""Several addresses of one broker: the nodes of a RabbitMQ cluster.

A ``FailoverBroker`` holds one driver per node URL (``broker
amqp://u@node1/,amqp://u@node2/``) and uses one node at a time. ``connect``
tries the nodes in turn: the first that answers at the start, then, each
time the flow reconnects (a lost connection, a node stopped), the next one
after the node in use, round the list. The flow's backoff
(broker.base.reconnecting) applies when no node answers at all.

Nothing of a node's session carries over to the next one: its unconfirmed
publishes are forgotten (the flow redoes their batch, as after any lost
connection) and its delivery tags are void. Tags are marked with the node
that gave them, so an acknowledgement meant for one node never reaches
another (each node numbers its deliveries from 1). The messages the lost
node had delivered and we had not acknowledged come again from the queue,
which lives on in the cluster (a quorum queue: on its other members).
"""
import logging
from typing import Any, Callable

from ..errors import BrokerError
from .base import Broker, Delivery, Outgoing

log = logging.getLogger(__name__)


class FailoverBroker:
    """One broker reached at several addresses (see the module)."""

    def __init__(self, nodes: list[Broker]):
        if not nodes:
            raise BrokerError("no broker address given", recoverable=False)
        self._nodes = nodes
        self._at: int | None = None     # index of the node in use
        self.name = ",".join(n.name for n in nodes)

    # -- which node --------------------------------------------------------
    @property
    def node(self) -> Broker:
        """The node in use (the first before any connect)."""
        return self._nodes[self._at or 0]

    @property
    def node_index(self) -> int:
        return self._at or 0

    def connect(self) -> None:
        """Connect to the first node that answers, starting after the node in
        use (at the start: with the first). A refusal (a wrong password, a
        missing permission) stops at once: every node of a cluster has the
        same users."""
        count = len(self._nodes)
        start = 0 if self._at is None else (self._at + 1) % count
        failures = []
        for step in range(count):
            i = (start + step) % count
            node = self._nodes[i]
            try:
                node.connect()
            except BrokerError as exc:
                if not exc.recoverable:
                    raise
                failures.append(f"{node.name}: {exc}")
                if step + 1 < count:
                    log.warning("%s does not answer (%s); trying %s", node.name, exc,
                                self._nodes[(i + 1) % count].name)
                continue
            if self._at is not None and self._at != i:
                self._nodes[self._at].close()
            previous, self._at = self._at, i
            if previous is None or previous != i:
                log.info("using broker node %s (%d of %d)", node.name, i + 1, count)
            return
        raise BrokerError(f"no node of {self.name} answers: " + "; ".join(failures),
                          recoverable=True)

    def close(self) -> None:
        for node in self._nodes:
            node.close()

    # -- the node in use does the work -------------------------------------
    def declare_exchange(self, name: str, passive: bool = False) -> None:
        self.node.declare_exchange(name, passive)

    def declare_queue(self, name: str, durable: bool = True, expire_s: float = 0,
                      message_ttl_s: float = 0, queue_type: str = "classic",
                      exclusive: bool = False) -> int:
        return self.node.declare_queue(name, durable, expire_s, message_ttl_s, queue_type,
                                       exclusive)

    def bind(self, queue: str, exchange: str, key: str) -> None:
        self.node.bind(queue, exchange, key)

    def delete_queue(self, name: str) -> None:
        self.node.delete_queue(name)

    def consume(self, queue: str, prefetch: int, offset: Any = None) -> None:
        self.node.consume(queue, prefetch, offset)

    def get(self, timeout: float) -> list[Delivery]:
        at = self.node_index
        out = self.node.get(timeout)
        for d in out:
            d.tag = (at, d.tag)
        return out

    def ack(self, tags: list[Any]) -> None:
        at = self.node_index
        mine = [tag for node, tag in tags if node == at]
        if mine:
            self.node.ack(mine)

    def publish(self, msg: Outgoing) -> None:
        self.node.publish(msg)

    def flush(self, timeout: float = 60.0, leave: int = 0) -> None:
        self.node.flush(timeout, leave)

    def keepalive(self) -> None:
        self.node.keepalive()

    def returned(self) -> list[tuple[str, str]]:
        returned: Callable[[], list] = getattr(self.node, "returned", list)
        return returned()

    @property
    def unconfirmed(self) -> int:
        return getattr(self.node, "unconfirmed", 0)

    @property
    def published(self) -> int:
        return sum(getattr(n, "published", 0) for n in self._nodes)
