"""In-process broker with real AMQP topic matching, for unit tests.

URL scheme ``memory://NAME/``: every driver opened on the same NAME shares
exchanges and queues. Capabilities: topic exchanges, durable queues that
outlive a consumer, prefetch windows, redelivery of unacknowledged messages
when a consumer closes, exclusive queues (one driver's, until it closes;
another's declaration is refused with QueueLocked), publisher confirms
(immediate). Nothing else.
"""
import dataclasses
import itertools
import threading
from collections import deque
from typing import Any

from ..errors import BrokerError
from .base import Delivery, Outgoing, QueueLocked, topic_matches

_SPACES: dict[str, "_Space"] = {}
_SPACES_LOCK = threading.Lock()


class _Space:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.exchanges: set[str] = set()
        self.queues: dict[str, deque] = {}
        self.bindings: list[tuple[str, str, str]] = []  # (exchange, key, queue)
        self.tags = itertools.count(1)
        self.refuse: set[str] = set()  # exchanges tests mark as forbidden
        self.owners: dict[str, "MemoryBroker"] = {}   # exclusive queue -> its driver


def space(name: str) -> _Space:
    with _SPACES_LOCK:
        return _SPACES.setdefault(name, _Space())


def reset(name: str) -> None:
    with _SPACES_LOCK:
        _SPACES.pop(name, None)


class MemoryBroker:
    def __init__(self, url: str, **_: Any):
        self.name = url
        self._space_name = url.split("://", 1)[-1].strip("/") or "default"
        self._space: _Space | None = None
        self._queue: str | None = None
        self._prefetch = 1
        self._unacked: dict[int, Delivery] = {}
        self._returned: list[tuple[str, str]] = []
        self.published = 0

    def _sp(self) -> _Space:
        if self._space is None:
            raise BrokerError("not connected", recoverable=True)
        return self._space

    def connect(self) -> None:
        self._space = space(self._space_name)

    def close(self) -> None:
        if self._space is None:
            return
        sp = self._space
        with sp.lock:  # unacknowledged messages come back, in order, as new deliveries
            for tag in sorted(self._unacked, reverse=True):
                d = self._unacked.pop(tag)
                if self._queue in sp.queues:
                    sp.queues[self._queue].appendleft(
                        dataclasses.replace(d, tag=None, redelivered=True))
            for name in [n for n, owner in sp.owners.items() if owner is self]:
                del sp.owners[name]           # an exclusive queue goes with its owner
                sp.queues.pop(name, None)
            sp.lock.notify_all()
        self._space = None

    def declare_exchange(self, name: str, passive: bool = False) -> None:
        sp = self._sp()
        with sp.lock:
            if passive and name not in sp.exchanges:
                raise BrokerError(f"exchange {name} does not exist")
            sp.exchanges.add(name)

    def declare_queue(self, name: str, durable: bool = True, expire_s: float = 0,
                      message_ttl_s: float = 0, queue_type: str = "classic",
                      exclusive: bool = False) -> int:
        if queue_type != "classic":
            raise BrokerError(f"the memory broker has classic queues only, not {queue_type}",
                              recoverable=False)
        sp = self._sp()
        with sp.lock:
            owner = sp.owners.get(name)
            if owner is not None and owner is not self:
                raise QueueLocked(f"queue {name} is another connection's (exclusive)")
            if exclusive:
                sp.owners[name] = self
            return len(sp.queues.setdefault(name, deque()))

    def bind(self, queue: str, exchange: str, key: str) -> None:
        sp = self._sp()
        with sp.lock:
            if exchange not in sp.exchanges:
                raise BrokerError(f"exchange {exchange} does not exist")
            if queue not in sp.queues:
                raise BrokerError(f"queue {queue} does not exist")
            if (exchange, key, queue) not in sp.bindings:
                sp.bindings.append((exchange, key, queue))

    def delete_queue(self, name: str) -> None:
        sp = self._sp()
        with sp.lock:
            sp.queues.pop(name, None)
            sp.bindings = [b for b in sp.bindings if b[2] != name]

    def consume(self, queue: str, prefetch: int, offset: Any = None) -> None:
        if offset is not None:
            raise BrokerError("the memory broker has no streams to read from an offset",
                              recoverable=False)
        sp = self._sp()
        with sp.lock:
            if queue not in sp.queues:
                raise BrokerError(f"queue {queue} does not exist")
        self._queue, self._prefetch = queue, max(1, prefetch)

    def get(self, timeout: float) -> list[Delivery]:
        sp = self._sp()
        out: list[Delivery] = []
        with sp.lock:
            q = sp.queues.get(self._queue or "")
            if q is None:
                raise BrokerError("not consuming")
            if not q:
                sp.lock.wait(timeout)
            while q and len(self._unacked) < self._prefetch:
                d = q.popleft()
                d.tag = next(sp.tags)
                self._unacked[d.tag] = d
                out.append(d)
        return out

    def ack(self, tags: list[Any]) -> None:
        for tag in tags:
            self._unacked.pop(tag, None)

    def publish(self, msg: Outgoing) -> None:
        sp = self._sp()
        body = msg.body.encode() if isinstance(msg.body, str) else msg.body
        with sp.lock:
            if msg.exchange in sp.refuse or msg.exchange not in sp.exchanges:
                raise BrokerError(f"exchange {msg.exchange} refused the message")
            targets = {q for ex, key, q in sp.bindings
                       if ex == msg.exchange and topic_matches(key, msg.topic)}
            for qname in targets:
                sp.queues[qname].append(Delivery(msg.exchange, msg.topic, dict(msg.headers),
                                                 body, msg.content_type, None))
            sp.lock.notify_all()
        if msg.mandatory and not targets:
            self._returned.append((msg.exchange, msg.topic))
        self.published += 1

    def returned(self) -> list[tuple[str, str]]:
        """(exchange, topic) of the mandatory messages no queue took, since
        the last call."""
        out, self._returned = self._returned, []
        return out

    def flush(self, timeout: float = 60.0, leave: int = 0) -> None:
        self._sp()      # (everything is confirmed as it is published)

    def keepalive(self) -> None:
        pass
