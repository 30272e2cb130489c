"""RabbitMQ with its MQTT plugins is one broker for both protocols
(doc/protocol.md §15.4): on a private node (the ``rabbit_mqtt`` fixture:
rabbitmq_mqtt and rabbitmq_web_mqtt, users with a switch source's
permissions and their MQTT additions), a tree posted over AMQP reaches a
subscriber over MQTT on websockets, and one posted over MQTT reaches a
subscriber over AMQP, both mirrored from nginx byte for byte; an MQTT
client is held to its user's topic permissions."""
from __future__ import annotations

import os
import subprocess

import pytest

from sarra.broker import Outgoing, open_broker
from sarra.errors import BrokerError
from tests.helpers import compare_trees, make_tree, run_tool, wait_for
from tests.integration.conftest import RABBIT_MQTT_USERS
from tests.integration.flowkit import stop, tmp_files, wait_same_tree


def subscriber(sarra_home, name: str, broker: str, exchange: str, prefix: str, directory):
    sarra_home.write_config("subscribe", name, (
        f"broker {broker}\nexchange {exchange}\ntopic_prefix {prefix}\nsubtopic #\n"
        # log messages are v02, whose headers MQTT 3.1.1 (RabbitMQ 3.10's plugin) cannot carry
        "report_back off\n"
        f"expire 10m\nmirror on\ninflight .tmp\ndirectory {directory}\naccept .*\n"))


def test_amqp_posts_reach_mqtt_subscribers_and_mqtt_posts_amqp_ones(
        sarra_home, unique, procs, nginx, rabbit_mqtt, tmp_path):
    node, pw = rabbit_mqtt, RABBIT_MQTT_USERS["alice"]
    sarra_home.add_credentials(node.url("alice", pw), node.mqtt_url("alice", pw),
                               node.ws_url("alice", pw))
    src = tmp_path / "src"
    make_tree(src / "by_amqp", 10, depth=1, size=2048, seed=51)
    make_tree(src / "by_mqtt", 10, depth=1, size=2048, seed=52)
    server = nginx(src, workers=1)

    # one subscriber over MQTT (websockets), whose session's queue the plugin
    # binds to amq.topic with the MQTT filter's words (xs_alice.v03.post.#),
    # one over AMQP, its queue bound to amq.topic with the same key
    over_mqtt, over_amqp = tmp_path / "over_mqtt", tmp_path / "over_amqp"
    subscriber(sarra_home, f"rmq_m_{unique}", node.ws_url("alice"), "xs_alice", "v03.post",
               over_mqtt)
    subscriber(sarra_home, f"rmq_a_{unique}", node.url("alice", None), "amq.topic",
               "xs_alice.v03.post", over_amqp)
    subs = []
    for name, log in ((f"rmq_m_{unique}", "m.log"), (f"rmq_a_{unique}", "a.log")):
        run_tool("subscribe", "declare", name, timeout=60)
        subs.append(procs.start_tool("subscribe", "foreground", name, log=tmp_path / log))

    # a tree posted over AMQP (to amq.topic), one over MQTT (v03: 3.1.1 has no headers)
    res = run_tool("post", "--post_broker", node.url("alice", None), "--post_exchange",
                   "amq.topic", "--post_topic_prefix", "xs_alice.v03.post", "--post_format",
                   "v03", "--post_base_url", server.url, "--post_base_dir", str(src),
                   str(src / "by_amqp"), timeout=60)
    assert "posted 10 of 10 files" in res.stdout, res.stdout + res.stderr
    res = run_tool("post", "--post_broker", node.mqtt_url("alice"), "--post_exchange",
                   "xs_alice", "--post_topic_prefix", "v03.post", "--post_base_url", server.url,
                   "--post_base_dir", str(src), str(src / "by_mqtt"), timeout=60)
    assert "posted 10 of 10 files" in res.stdout, res.stdout + res.stderr

    # each subscriber has both trees: what came over the other protocol too
    for dst, proc in zip((over_mqtt, over_amqp), subs):
        wait_same_tree(src, dst, timeout=40, proc=proc)
        assert compare_trees(src, dst) == [] and tmp_files(dst) == []
    wait_for(lambda: len(server.requests()) >= 40, timeout=10, what="nginx's access log")
    assert len(server.requests()) == 40          # each file once for each subscriber
    for proc in subs:
        assert pw not in stop(proc)


def test_an_mqtt_client_is_held_to_its_users_topic_permissions(rabbit_mqtt):
    node = rabbit_mqtt
    assert "set topic permissions of bob on amq.topic" in node.declared    # by dd_audit
    bob = open_broker(node.mqtt_url("bob", RABBIT_MQTT_USERS["bob"]))
    try:
        # reading alice's exchange: RabbitMQ 3.10 refuses the subscription by
        # closing the connection (MQTT 3.1.1's SUBACK has a failure code it
        # does not send)
        bob.declare_queue("q_bob.peek")
        with pytest.raises(BrokerError, match="connection lost"):
            bob.bind("q_bob.peek", "xs_alice", "v03.#")
        bob.connect()
        bob.publish(Outgoing("xs_bob", "v03.post.x", {}, "{}", "application/json"))
        bob.flush(10)                                   # his own exchange: accepted
        with pytest.raises(BrokerError):                # alice's: the broker hangs up
            bob.publish(Outgoing("xs_alice", "v03.post.x", {}, "{}", "application/json"))
            bob.flush(10)
    finally:
        bob.close()
    with pytest.raises(BrokerError, match="login refused for user 'bob'"):
        open_broker(node.mqtt_url("bob", "wrong"))
    def said() -> str:
        return "".join(p.read_text(errors="replace") for p in (node.home / "log").glob("*.log"))
    for topic in ("xs_alice.v03.#", "xs_alice.v03.post.x"):    # the broker's reasons
        wait_for(lambda: f"access to topic '{topic}' in exchange 'amq.topic'" in said(),
                 timeout=10, what=f"the node's log to tell of {topic}")


def test_a_management_api_that_refuses_the_user_says_so(rabbit_mqtt, unique):
    """dd_audit gives its users no management tag: the queue depth that the
    metrics read with the flow's own broker user is refused by the real
    API, said as such (and read again less often), not taken for an error
    of the flow; guest, who has the tag, reads it."""
    from sarra.broker.management import QueueDepth
    pw = RABBIT_MQTT_USERS["bob"]
    queue = f"q_bob.depth_{unique}"
    port = rabbit_mqtt.amqp_port
    b = open_broker(f"amqp://bob:{pw}@127.0.0.1:{port}/")
    try:
        b.declare_queue(queue, durable=False, expire_s=60)
        refused = QueueDepth.of(f"amqp://bob:{pw}@127.0.0.1:{port}/", queue,
                                rabbit_mqtt.management_url)
        assert refused.read() is None
        assert refused.refused and refused.why == "the management API refused (HTTP 401)"
        refused.close()
        allowed = QueueDepth.of(f"amqp://guest:guest@127.0.0.1:{port}/", queue,
                                rabbit_mqtt.management_url)
        assert allowed.read() == 0, allowed.why
        allowed.close()
    finally:
        b.close()


def test_dd_audit_declare_enables_the_mqtt_plugins_and_says_their_ports(
        rabbit_mqtt, sarra_home, tmp_path):
    """With ``mqtt: on`` and ``rabbitmq_node`` in the description, dd_audit
    declare runs rabbitmq-plugins on this host for the MQTT plugins whose
    listeners the management API does not show, and says their ports (a
    node that is not there: tests/unit/test_switch_plugins.py). The
    session's node has its plugins disabled for the test and enabled again
    whatever happens."""
    from tools.localrabbit import find_script
    node = rabbit_mqtt
    plugins = [find_script("rabbitmq-plugins"), "-n", node.nodename]
    # the node's own cookie (HOME) and files; its rabbitmq-plugins first on the
    # PATH (Debian's /usr/sbin wrapper would take the system node's cookie)
    cli_env = {k: v for k, v in node.env().items() if k.startswith("RABBITMQ_") or k == "HOME"}
    cli_env["PATH"] = os.path.dirname(plugins[0]) + os.pathsep + os.environ["PATH"]

    def rabbitmq_plugins(*args):
        res = subprocess.run([*plugins, *args], env={**os.environ, **cli_env}, timeout=120,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stdout + res.stderr
    for user, pw in (("guest", "guest"), *RABBIT_MQTT_USERS.items()):
        sarra_home.add_credentials(f"amqp://{user}:{pw}@127.0.0.1:{node.amqp_port}/")
    described = tmp_path / "switch.yaml"

    def declare(rabbitmq_node):
        described.write_text(
            f"cluster: mqttlab\nbroker: amqp://guest@127.0.0.1:{node.amqp_port}/\n"
            f"feeder: amqp://guest@127.0.0.1:{node.amqp_port}/\n"
            f"management_url: {node.management_url}\n"
            f"data_dir: {tmp_path / 'data'}\nbase_url: http://127.0.0.1:8090/\n"
            f"mqtt: on\nrabbitmq_node: {rabbitmq_node}\n"
            "users:\n  alice: source\n  bob: subscriber\n")
        return run_tool("audit", "declare", described, env=cli_env, check=False, timeout=180)

    rabbitmq_plugins("disable", "--online", "rabbitmq_web_mqtt", "rabbitmq_mqtt")
    try:
        done = declare(node.nodename)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[0] == (
            f"enabled rabbitmq_mqtt, rabbitmq_web_mqtt on node {node.nodename}: "
            f"MQTT on 127.0.0.1:{node.mqtt_port}, MQTT over TLS on 127.0.0.1:{node.mqtts_port}, "
            f"MQTT over websockets on [::]:{node.web_mqtt_port} (path /ws), MQTT over "
            f"secure websockets on [::]:{node.web_mqtts_port} (path /ws)"), done.stdout
        again = declare(node.nodename)         # nothing missing: nothing run, nothing said
        assert again.returncode == 0 and "enabled" not in again.stdout, again.stdout
    finally:
        if "mqtt" not in {row["protocol"] for row in _listeners(node)}:
            rabbitmq_plugins("enable", "--online", "rabbitmq_mqtt", "rabbitmq_web_mqtt")
    # the listeners answer: alice publishes over MQTT again
    b = open_broker(node.mqtt_url("alice", RABBIT_MQTT_USERS["alice"]))
    b.close()


def _listeners(node) -> list[dict]:
    from sarra.switch.rabbit import ManagementApi
    with ManagementApi(node.management_url, "guest", "guest") as api:
        return api.listeners()
