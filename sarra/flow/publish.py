"""Posting downstream and reporting upstream (log messages)."""
import logging
import socket
import time
from dataclasses import replace
from urllib.parse import urlsplit

from .. import codec
from ..broker import Outgoing, ensure_exchange
from ..message import Message, Report

log = logging.getLogger(__name__)


MAX_TEXT = 255       # bytes of UTF-8 in an AMQP short string


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character), marked '...'."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit - 3].decode("utf-8", "ignore") + "..."


def broker_user(url: str | None) -> str:
    return (urlsplit(url).username or "anonymous") if url else "anonymous"


class Publisher:
    """Encodes messages and hands them to a broker, pipelined."""

    def __init__(self, broker, exchange: str, topic_prefix: str, persistent: bool = True):
        self.broker = broker
        self.exchange = exchange
        self.topic_prefix = topic_prefix
        self.persistent = persistent
        self.count = 0

    def declare(self) -> None:
        ensure_exchange(self.broker, self.exchange)

    def publish(self, msg: Message, exchange: str | None = None) -> None:
        topic, headers, body, content_type = codec.encode(msg, self.topic_prefix)
        self.broker.publish(Outgoing(exchange or self.exchange, topic, headers, body,
                                     content_type, self.persistent))
        self.count += 1

    def flush(self, timeout: float = 60.0) -> None:
        self.broker.flush(timeout)


class Reporter(Publisher):
    """Log messages (v02.report) about what we did with each post."""

    def __init__(self, broker, exchange: str, user: str, host: str | None = None):
        super().__init__(broker, exchange, "v02.report")
        self.user = user
        self.host = host or socket.getfqdn()

    def report(self, msg: Message, code: int, text: str) -> None:
        """A log message about ``msg``. Our own status text is shortened to
        fit a header (the headers of the post are forwarded as they came)."""
        text = shorten(text, MAX_TEXT)
        duration = time.time() - msg.received if msg.received else 0.0
        headers = {k: v for k, v in msg.headers.items() if k != "message"}
        rep = replace(msg, headers=headers, extras={},
                      report=Report(code, self.host, self.user, duration, text))
        self.publish(rep)
