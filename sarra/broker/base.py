"""The Broker protocol every driver implements, and what they share.

A driver converts its library's exceptions into BrokerError, setting
``recoverable`` when reconnecting may help (connection lost, broker
restarting) and leaving it False for refusals (access denied, no such
exchange). ``reconnecting`` is the one retry policy that uses it.
"""
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Protocol, TypeVar

from ..errors import BrokerError

log = logging.getLogger(__name__)
T = TypeVar("T")


class QueueLocked(BrokerError):
    """``declare_queue(exclusive=True)`` of a queue another connection holds
    exclusively (RabbitMQ's 405 RESOURCE_LOCKED): not ours, for now."""

    def __init__(self, message: str):
        super().__init__(message, recoverable=False)


@dataclass
class Delivery:
    """One message as it came off a queue."""
    exchange: str
    topic: str
    headers: dict[str, Any]
    body: bytes
    content_type: str | None
    tag: Any
    redelivered: bool = False


@dataclass
class Outgoing:
    """One message to publish."""
    exchange: str
    topic: str
    headers: dict[str, str]
    body: str | bytes
    content_type: str = "text/plain"
    persistent: bool = True
    expiration_ms: int | None = None
    mandatory: bool = False    # come back (returned) when no queue takes it
    meta: dict = field(default_factory=dict)  # caller's bookkeeping, never sent


class Broker(Protocol):
    """What the flow needs from a message broker."""
    name: str  # for logs: the URL without password

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def declare_exchange(self, name: str, passive: bool = False) -> None: ...
    def declare_queue(self, name: str, durable: bool = True, expire_s: float = 0,
                      message_ttl_s: float = 0, queue_type: str = "classic",
                      exclusive: bool = False) -> int: ...
    def bind(self, queue: str, exchange: str, key: str) -> None: ...
    def delete_queue(self, name: str) -> None: ...
    def consume(self, queue: str, prefetch: int, offset: Any = None) -> None: ...
    def get(self, timeout: float) -> list[Delivery]: ...
    def ack(self, tags: list[Any]) -> None: ...
    def publish(self, msg: Outgoing) -> None: ...
    def flush(self, timeout: float = 60.0, leave: int = 0) -> None:
        """Wait for the confirms of what was published, all but the last
        ``leave`` messages (a broker may wait for those too)."""
    def keepalive(self) -> None: ...


@lru_cache(maxsize=1024)
def _binding_words(pattern: str) -> tuple[str, ...]:
    """A binding's words with runs of '#' collapsed ('#.#' means '#')."""
    out: list[str] = []
    for word in (pattern.split(".") if pattern else []):
        if not (word == "#" and out and out[-1] == "#"):
            out.append(word)
    return tuple(out)


def topic_matches(pattern: str, topic: str) -> bool:
    """AMQP topic matching as RabbitMQ applies it: words split on '.', the
    empty key has no words, '*' is exactly one word, '#' zero or more.

    A set of positions in the binding is carried across the topic's words
    (no backtracking: time is words x binding length whatever the pattern).
    Serves the memory broker and client-side subtopic filters alike.
    """
    pat = _binding_words(pattern)
    n = len(pat)

    def closure(states: set[int]) -> set[int]:
        # '#' may stand for no word: a state on '#' also stands after it
        for i in sorted(states):
            j = i
            while j < n and pat[j] == "#":
                j += 1
                states.add(j)
        return states

    states = closure({0})
    for word in (topic.split(".") if topic else []):
        nxt: set[int] = set()
        for i in states:
            if i == n:
                continue
            head = pat[i]
            if head == "#":
                nxt.add(i)
            elif head == "*" or head == word:
                nxt.add(i + 1)
        if not nxt:
            return False
        states = closure(nxt)
    return n in states


def reconnecting(action: Callable[[], T], reconnect: Callable[[], None],
                 what: str, max_wait: float = 30.0, attempts: int = 0,
                 stop: Callable[[], bool] = lambda: False) -> T:
    """Run ``action``; on a recoverable BrokerError call ``reconnect`` with
    exponential backoff (0.5 s doubling up to ``max_wait``) and try again.
    ``attempts`` 0 means forever (until ``stop()`` says so)."""
    delay, tries = 0.5, 0
    while True:
        try:
            return action()
        except BrokerError as exc:
            tries += 1
            if not exc.recoverable or (attempts and tries >= attempts) or stop():
                raise
            log.warning("%s: %s; reconnecting in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_wait)
            try:
                reconnect()
            except BrokerError as again:
                if not again.recoverable:
                    raise
                log.warning("%s: reconnect failed: %s", what, again)


def ensure_exchange(broker: Broker, name: str) -> None:
    """Declare ``name`` when we may; users without that right rely on the
    switch's administrator having declared it (dd_audit)."""
    try:
        broker.declare_exchange(name)
    except BrokerError as exc:
        if exc.recoverable:
            raise
        log.debug("cannot declare exchange %s (%s); checking it exists", name, exc)
        try:
            broker.declare_exchange(name, passive=True)
        except BrokerError as missing:
            if missing.recoverable:
                raise
            text = (f"exchange {name} does not exist on {broker.name}, and this user may "
                    f"not create it: exchanges are created by 'declare' (dd_post or dd_watch "
                    f"declare, as a user who may: the exchange's publisher), or on a switch "
                    f"by dd_audit; or check the exchange option ({missing})")
            log.warning("%s", text)
            raise BrokerError(text, recoverable=False) from missing
