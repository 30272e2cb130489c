"""Message brokers, chosen by URL scheme."""
from ..errors import BrokerError
from ..registry import Registry
from .base import (Broker, Delivery, Outgoing, ensure_exchange, reconnecting,
                   topic_matches)

DRIVERS = Registry("broker scheme", {
    "amqp": "sarra.broker.amqp:AmqpBroker",
    "amqps": "sarra.broker.amqp:AmqpBroker",
    "memory": "sarra.broker.memory:MemoryBroker",
}, error=BrokerError, requires={"amqp": "pika", "amqps": "pika"})


def make_broker(url: str, **options) -> Broker:
    """A driver for ``url`` (password included; never logged), not yet connected."""
    return DRIVERS.get(url.split(":", 1)[0].lower())(url, **options)


def open_broker(url: str, **options) -> Broker:
    broker = make_broker(url, **options)
    broker.connect()
    return broker


__all__ = ["Broker", "Delivery", "Outgoing", "make_broker", "open_broker", "ensure_exchange", "topic_matches", "reconnecting", "DRIVERS"]
