"""AMQP exchanges, topics and bindings as MQTT topics (sarra/broker/mqtt_topic.py)."""
import pytest

from sarra.broker.mqtt_topic import amqp_of, mqtt_filter, mqtt_topic, shared
from sarra.codec import topic_for
from sarra.errors import ConfigError


@pytest.mark.parametrize("exchange, topic, mqtt", [
    ("xpublic", "v03.post.obs.swob", "xpublic/v03/post/obs/swob"),
    ("xs_alice", "v02.post", "xs_alice/v02/post"),
    ("xpublic", "v02.post.a%23b.c+d", "xpublic/v02/post/a%23b/c%2Bd"),
    ("x#", "v02.post.#raw", "x%23/v02/post/%23raw"),
    ("origin", "a.wis2.ca-eccc-msc.data.core.weather", "origin/a/wis2/ca-eccc-msc/data/core/weather"),
    ("xpublic", "", "xpublic"),
])
def test_topics_map_word_for_level(exchange, topic, mqtt):
    assert mqtt_topic(exchange, topic) == mqtt
    assert "#" not in mqtt and "+" not in mqtt


def test_received_topics_map_back():
    assert amqp_of("xpublic/v03/post/obs/swob") == ("xpublic", "v03.post.obs.swob")
    assert amqp_of("xpublic/v02/post/a%23b/c%2Bd") == ("xpublic", "v02.post.a%23b.c+d")
    assert amqp_of("xpublic") == ("xpublic", "")
    # a file's topic as the codec writes it goes there and back unchanged
    topic = topic_for("v02.post", "obs/a b/c+d#e/f.txt")
    assert amqp_of(mqtt_topic("xs_bob", topic)) == ("xs_bob", topic)


@pytest.mark.parametrize("key, mqtt", [
    ("v02.post.#", "xpublic/v02/post/#"),
    ("v03.post.*.swob", "xpublic/v03/post/+/swob"),
    ("v02.post.a+b", "xpublic/v02/post/a%2Bb"),
    ("#", "xpublic/#"),
    ("*.*", "xpublic/+/+"),
])
def test_bindings_map_wildcards(key, mqtt):
    assert mqtt_filter("xpublic", key) == mqtt


def test_a_hash_before_the_end_is_a_configuration_error():
    with pytest.raises(ConfigError) as info:
        mqtt_filter("xpublic", "v02.post.#.swob")
    assert info.value.option == "subtopic" and "last word" in str(info.value)


def test_shared_subscriptions_need_a_plain_group_name():
    assert shared("q_alice.subscribe.a.1.2", "xpublic/v02/post/#") == \
        "$share/q_alice.subscribe.a.1.2/xpublic/v02/post/#"
    for bad in ("q/a", "q+a", "q#a"):
        with pytest.raises(ConfigError):
            shared(bad, "x/#")
