"""Message brokers, chosen by URL scheme."""
from ..errors import BrokerError
from ..registry import Registry
from .base import (Broker, Delivery, Outgoing, ensure_exchange, reconnecting,
                   topic_matches)

MQTT_SCHEMES = ("mqtt", "mqtts", "ws", "wss")

DRIVERS = Registry("broker scheme", {
    "amqp": "sarra.broker.amqp:AmqpBroker",
    "amqps": "sarra.broker.amqp:AmqpBroker",
    "memory": "sarra.broker.memory:MemoryBroker",
    "mqtt": "sarra.broker.mqtt:MqttBroker",
    "mqtts": "sarra.broker.mqtt:MqttBroker",
    "ws": "sarra.broker.mqtt:MqttBroker",
    "wss": "sarra.broker.mqtt:MqttBroker",
}, error=BrokerError, requires={"amqp": "pika", "amqps": "pika",
                                **dict.fromkeys(MQTT_SCHEMES, "'sarra[mqtt]' (paho-mqtt>=2)")})


def make_broker(url: "str | list[str]", **options) -> Broker:
    """A driver for ``url`` (password included; never logged), not yet
    connected; for several URLs (a cluster's nodes), a FailoverBroker over
    one driver per node."""
    if isinstance(url, list):
        if len(url) != 1:
            from .failover import FailoverBroker
            return FailoverBroker([make_broker(u, **options) for u in url])
        url = url[0]
    return DRIVERS.get(url.split(":", 1)[0].lower())(url, **options)


def consumer_options(url: str, instances: int) -> dict:
    """What a consuming driver of ``url`` must know beyond the URL: on MQTT,
    how many instances share the queue (AMQP queues are shared as they are)."""
    return {"instances": instances} if url.split(":", 1)[0].lower() in MQTT_SCHEMES else {}


def open_broker(url: "str | list[str]", **options) -> Broker:
    broker = make_broker(url, **options)
    broker.connect()
    return broker


__all__ = ["Broker", "Delivery", "Outgoing", "make_broker", "open_broker", "ensure_exchange", "topic_matches", "reconnecting", "DRIVERS",
           "MQTT_SCHEMES", "consumer_options"]
