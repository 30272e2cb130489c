"""The Broker protocol every driver implements, and what they share.

A driver converts its library's exceptions into BrokerError, setting
``recoverable`` when reconnecting may help (connection lost, broker
restarting) and leaving it False for refusals (access denied, no such
exchange). ``reconnecting`` is the one retry policy that uses it.
"""
import logging
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Protocol, TypeVar

from ..errors import BrokerError

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    meta: dict = field(default_factory=dict)  # caller's bookkeeping, never sent


class Broker(Protocol):
    """What the flow needs from a message broker."""
    name: str  # for logs: the URL without password

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def declare_exchange(self, name: str, passive: bool = False) -> None: ...
    def declare_queue(self, name: str, durable: bool = True, expire_s: float = 0,
                      message_ttl_s: float = 0) -> int: ...
    def bind(self, queue: str, exchange: str, key: str) -> None: ...
    def delete_queue(self, name: str) -> None: ...
    def consume(self, queue: str, prefetch: int) -> None: ...
    def get(self, timeout: float) -> list[Delivery]: ...
    def ack(self, tags: list[Any]) -> None: ...
    def publish(self, msg: Outgoing) -> None: ...
    def flush(self, timeout: float = 60.0) -> None: ...
    def keepalive(self) -> None: ...


@lru_cache(maxsize=1024)
def binding_regex(pattern: str) -> re.Pattern:
    """AMQP topic binding -> regex: '*' is exactly one word, '#' zero or more.

    Serves the memory broker and the client-side subtopic filters alike.
    """
    out = ""
    for word in (pattern.split(".") if pattern else [""]):
        sep = r"\." if out else ""
        if word == "#":
            # '#' also stands for no word at all, so it swallows one separator
            out = r"(?:[^.]*(?:\.[^.]*)*)?" if not out else out + r"(?:\.[^.]*)*"
            continue
        if out.endswith(r"(?:[^.]*(?:\.[^.]*)*)?"):
            out = out[: -len(r"(?:[^.]*(?:\.[^.]*)*)?")] + r"(?:[^.]*\.)*"
            sep = ""
        out += sep + (r"[^.]*" if word == "*" else re.escape(word))
    return re.compile(out + r"\Z", re.DOTALL)


def topic_matches(pattern: str, topic: str) -> bool:
    return binding_regex(pattern).match(topic) is not None


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
        broker.declare_exchange(name, passive=True)
