"""AMQP exchanges and topics as MQTT topics, both ways (pure; no paho).

doc/protocol.md §15. An exchange and an AMQP topic become the MQTT topic
``<exchange>/<word>/<word>/...`` (sr3's rule: ``xpublic/v03/post/obs``);
in each word ``#`` is written ``%23`` and ``+`` ``%2B`` (MQTT's wildcards
may not appear in a topic name), and back when read. A binding key maps
``#`` to MQTT's ``#`` and ``*`` to ``+``.
"""
from ..errors import ConfigError

SHARE = "$share"


def _word_out(word: str) -> str:
    return word.replace("#", "%23").replace("+", "%2B")


def _word_in(word: str) -> str:
    return word.replace("%2B", "+").replace("%2b", "+")


def mqtt_topic(exchange: str, topic: str) -> str:
    """The MQTT topic of a message published on ``exchange`` with ``topic``."""
    words = topic.split(".") if topic else []
    return "/".join([_word_out(exchange)] + [_word_out(w) for w in words])


def amqp_of(mqtt: str) -> tuple[str, str]:
    """(exchange, topic) of a received MQTT topic: its first level, then the
    others joined with dots."""
    levels = mqtt.split("/")
    return _word_in(levels[0]), ".".join(_word_in(w) for w in levels[1:])


def mqtt_filter(exchange: str, key: str) -> str:
    """The MQTT topic filter of an AMQP binding ``key`` on ``exchange``:
    ``*`` -> ``+``, ``#`` -> ``#`` (MQTT allows ``#`` only last)."""
    words = key.split(".") if key else []
    out = [_word_out(exchange)]
    for i, word in enumerate(words):
        if word == "#":
            if i != len(words) - 1:
                raise ConfigError(f"binding {key!r}: MQTT allows '#' only as the last word "
                                  f"(use '*' for one word)", option="subtopic")
            out.append("#")
        elif word == "*":
            out.append("+")
        else:
            out.append(_word_out(word))
    return "/".join(out)


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription of ``group`` (a queue's name)."""
    for bad in "/+#":
        if bad in group:
            raise ConfigError(f"queue name {group!r}: a shared subscription's name may not "
                              f"hold {bad!r}", option="queue_name")
    return f"{SHARE}/{group}/{topic_filter}"
