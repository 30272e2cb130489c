"""dd_audit declare's MQTT plugins (sarra/switch/plugins.py): the
description's rabbitmq_node checked; rabbitmq-plugins run only when a
listener is missing, its refusal said in one line, the listeners' ports
said once they show. rabbitmq-plugins is a stand-in script here (what it
prints is the real one's); the real one is run against a real node in
tests/integration/test_rabbit_mqtt.py."""
from __future__ import annotations

import os
import stat

import pytest

from sarra.errors import BrokerError, ConfigError
from sarra.switch import load_switch, plugins
from tests.unit.test_switch import GOOD, write

REFUSAL = ("Error: this command requires the target node to be running.\n"
           "Arguments given:\n\t-n nosuch@localhost enable --online rabbitmq_mqtt\n\n"
           "\x1b[1mUsage\x1b[0m\n\nrabbitmq-plugins [--node <node>] enable <plugin1>\n")
LISTENERS = [{"protocol": "amqp", "ip_address": "127.0.0.1", "port": 5672},
             {"protocol": "mqtt", "ip_address": "127.0.0.1", "port": 1883},
             {"protocol": "http/web-mqtt", "ip_address": "::", "port": 15675}]


class Api:
    """The management API's listeners, which appear after ``after`` reads."""

    def __init__(self, listeners, after=0):
        self.rows, self.after, self.reads = listeners, after, 0

    def listeners(self):
        self.reads += 1
        return self.rows if self.reads > self.after else self.rows[:1]

    def protocols(self):
        return {r["protocol"] for r in self.listeners()}


def stand_in(tmp_path, monkeypatch, text: str, code: int):
    script = tmp_path / "rabbitmq-plugins"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\nprintf '%s' '{text}' >&2\n"
                      f"exit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_rabbitmq_node_is_checked(tmp_path):
    ok = load_switch(str(write(tmp_path, GOOD + "mqtt: on\nrabbitmq_node: rabbit@lab1\n")))
    assert ok.rabbitmq_node == "rabbit@lab1" and ok.as_data()["rabbitmq_node"] == "rabbit@lab1"
    assert "rabbitmq_node" not in load_switch(str(write(tmp_path, GOOD))).as_data()
    with pytest.raises(ConfigError, match="rabbitmq_node.*set 'mqtt: on' too"):
        load_switch(str(write(tmp_path, GOOD + "rabbitmq_node: rabbit@lab1\n")))
    with pytest.raises(ConfigError, match="rabbitmq_node.*'rabbit@lab 1' is not a RabbitMQ node"):
        load_switch(str(write(tmp_path, GOOD + "mqtt: on\nrabbitmq_node: rabbit@lab 1\n")))


def test_plugins_enabled_only_when_a_listener_is_missing(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, "", 0)
    assert plugins.enable_mqtt(Api(LISTENERS), "rabbit@lab1") == []
    assert not (tmp_path / "argv").exists()                  # nothing run
    api = Api(LISTENERS, after=3)                            # shows after a while
    assert plugins.enable_mqtt(api, "rabbit@lab1") == [
        "enabled rabbitmq_mqtt, rabbitmq_web_mqtt on node rabbit@lab1: MQTT on "
        "127.0.0.1:1883, MQTT over websockets on [::]:15675 (path /ws)"]
    assert (tmp_path / "argv").read_text().split() == [
        "-n", "rabbit@lab1", "enable", "--online", "rabbitmq_mqtt", "rabbitmq_web_mqtt"]


def test_a_refusal_is_said_in_one_line(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, REFUSAL, 64)
    with pytest.raises(BrokerError) as err:
        plugins.enable_mqtt(Api(LISTENERS[:1]), "nosuch@localhost")
    assert str(err.value) == (
        "rabbitmq-plugins -n nosuch@localhost enable rabbitmq_mqtt rabbitmq_web_mqtt exited "
        "64: Error: this command requires the target node to be running.")
    assert not err.value.recoverable
    stand_in(tmp_path, monkeypatch, "", 0)                   # enabled, never listening
    with pytest.raises(BrokerError, match="listeners did not show in 1 s"):
        plugins.enable_mqtt(Api(LISTENERS[:1]), "rabbit@lab1", timeout=1)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.setattr(plugins, "SBIN", ())
    with pytest.raises(BrokerError, match="rabbitmq-plugins is not on this host"):
        plugins.enable_mqtt(Api(LISTENERS[:1]), "rabbit@lab1")
