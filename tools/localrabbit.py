"""A private RabbitMQ node on loopback ports: its own AMQP port, management
API port, Erlang distribution port, data, logs and cookie, in one directory.
Used by the tests that need a second or third broker (switches linked to
each other) and by the benchmarks.

The node runs RabbitMQ's own start script (``/usr/lib/rabbitmq/bin``)
directly, as the calling user, not through the Debian wrapper that su's to
the ``rabbitmq`` user (it would drop the environment that places the node).
It shares epmd (port 4369) with the system node and nothing else. The
``guest`` account may log in from 127.0.0.1, with the management plugin on.

    node = start_rabbit(Path("/tmp/x"), "sarra_b")
    node.amqp_port, node.management_url     # 5673-ish, http://127.0.0.1:NNNN/api

    node = start_rabbit(Path("/tmp/x"), "sarra_b", tls=make_ca(Path("/tmp/ca")))
    node.amqps_url("alice", "pw")           # amqps://alice:pw@127.0.0.1:NNNN/
    node.management_https_url               # https://127.0.0.1:NNNN/api
    node.stop(); node.start()               # the whole node: a broker outage
    node.close()                            # stop, for good

    node = start_rabbit(Path("/tmp/m"), "sarra_m", mqtt=True)  # + MQTT, web-MQTT
    node.mqtt_url("bob", "pw"), node.ws_url("bob", "pw")   # mqtt://..., ws://.../ws
    # mqtt=True with tls=: node.mqtts_url(...), node.wss_url(...) as well

    nodes = start_cluster(Path("/tmp/c"), "sarra_c", 3)   # one cluster of 3
    nodes[1].kill()                         # SIGKILL: a node lost
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.proc import free_port, port_open, stop_process, tail
from tools.testca import TestCA

SCRIPTS = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin")


def find_script(name: str) -> str | None:
    for d in SCRIPTS:
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return shutil.which(name)


_CONF = """\
listeners.tcp.1 = 127.0.0.1:{amqp}
management.tcp.ip = 127.0.0.1
management.tcp.port = {http}
loopback_users.guest = true
log.console = false
log.file.level = warning
"""

# a TLS listener beside the plain one, and the management API over https
# too; clients are not asked for a certificate
_TLS_CONF = """\
listeners.ssl.default = 127.0.0.1:{amqps}
ssl_options.cacertfile = {ca}
ssl_options.certfile = {cert}
ssl_options.keyfile = {key}
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
"""
_WEB_MQTT_TLS_CONF = """\
web_mqtt.ssl.ip = 127.0.0.1
web_mqtt.ssl.port = {wss}
web_mqtt.ssl.cacertfile = {ca}
web_mqtt.ssl.certfile = {cert}
web_mqtt.ssl.keyfile = {key}
"""
_TLS_MANAGEMENT_CONF = """\
management.ssl.ip = 127.0.0.1
management.ssl.port = {https}
management.ssl.cacertfile = {ca}
management.ssl.certfile = {cert}
management.ssl.keyfile = {key}
"""

# rabbitmq_mqtt and rabbitmq_web_mqtt (enabled in the node's enabled_plugins
# file before it starts): MQTT and MQTT over websockets (path /ws) on loopback
_MQTT_CONF = """\
mqtt.listeners.tcp.1 = 127.0.0.1:{mqtt}
mqtt.allow_anonymous = false
web_mqtt.tcp.ip = 127.0.0.1
web_mqtt.tcp.port = {ws}
"""


@dataclass
class RabbitNode:
    """A private RabbitMQ node (see the module)."""

    name: str
    home: Path
    amqp_port: int
    http_port: int
    dist_port: int
    management: bool = True
    amqps_port: int = 0         # 0: no TLS listener
    https_port: int = 0         # the management API over TLS (0: none)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    mqtt_port: int = 0          # the MQTT plugins' ports (0: not enabled)
    mqtts_port: int = 0         # MQTT over TLS (mqtt and tls both given)
    web_mqtt_port: int = 0
    web_mqtts_port: int = 0     # MQTT over websockets over TLS (wss://)

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api"

    def url(self, user: str = "guest", password: str | None = "guest", vhost: str = "") -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"amqp://{auth}@127.0.0.1:{self.amqp_port}/{vhost}"

    @property
    def management_https_url(self) -> str:
        if not self.https_port:
            raise ValueError(f"{self.name} has no TLS management listener")
        return f"https://127.0.0.1:{self.https_port}/api"

    def amqps_url(self, user: str = "guest", password: str | None = "guest",
                  vhost: str = "", host: str = "127.0.0.1") -> str:
        """The node's TLS listener (its certificate names 127.0.0.1 and localhost)."""
        if not self.amqps_port:
            raise ValueError(f"{self.name} has no TLS listener (start it with tls=)")
        auth = f"{user}:{password}" if password is not None else user
        return f"amqps://{auth}@{host}:{self.amqps_port}/{vhost}"

    def ports(self) -> list[int]:
        """Every port the started node listens on (but Erlang distribution's)."""
        return [p for p in (self.amqp_port, self.amqps_port, self.mqtt_port, self.mqtts_port,
                            self.web_mqtt_port, self.web_mqtts_port,
                            self.http_port if self.management else 0,
                            self.https_port if self.management else 0) if p]

    def mqtt_url(self, user: str, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"mqtt://{auth}@127.0.0.1:{self.mqtt_port}"

    def mqtts_url(self, user: str, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"mqtts://{auth}@127.0.0.1:{self.mqtts_port}"

    def ws_url(self, user: str, password: str | None = None) -> str:
        """MQTT over websockets (rabbitmq_web_mqtt's path, /ws)."""
        auth = f"{user}:{password}" if password is not None else user
        return f"ws://{auth}@127.0.0.1:{self.web_mqtt_port}/ws"

    def wss_url(self, user: str, password: str | None = None) -> str:
        """MQTT over websockets over TLS (rabbitmq_web_mqtt's TLS listener)."""
        if not self.web_mqtts_port:
            raise ValueError(f"{self.name} has no web-MQTT TLS listener (mqtt and tls)")
        auth = f"{user}:{password}" if password is not None else user
        return f"wss://{auth}@127.0.0.1:{self.web_mqtts_port}/ws"

    def env(self) -> dict[str, str]:
        # nor the SARRA_* of a test: a node is no sarra process, and one
        # booted while a test runs must outlive that test's clean-up (which
        # kills whatever has its SARRA_STATE_DIR)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "SARRA_"))}
        env.update({
            "HOME": str(self.home),                     # its own .erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.home / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """``rabbitmqctl -n NODE ARGS...``."""
        script = find_script("rabbitmqctl")
        res = subprocess.run([script, "-n", self.nodename, *args], env=self.env(),
                             capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.nodename} {' '.join(args)} exited "
                               f"{res.returncode}:\n{tail(res.stdout)}\n{tail(res.stderr)}")
        return res

    def start(self, timeout: float = 90) -> None:
        """Start the node (in the foreground of a child process) and wait for
        its AMQP and management ports."""
        self.launch()
        self.wait_started(timeout)

    def launch(self) -> None:
        """Start the node's process without waiting for it (see wait_started)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        script = find_script("rabbitmq-server")
        if script is None:
            raise RuntimeError("rabbitmq-server not found: run `bash tools/setup.sh`")
        out = open(self.home / "server.out", "ab")
        try:
            self.proc = subprocess.Popen([script], env=self.env(), stdout=out, cwd=self.home,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        finally:
            out.close()

    def wait_started(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not all(port_open("127.0.0.1", port, 0.3) for port in self.ports()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = (self.home / "server.out").read_text(errors="replace")
                self.close()
                raise RuntimeError(f"RabbitMQ node {self.nodename} did not start on "
                                   f"127.0.0.1:{self.amqp_port}:\n{tail(text)}")
            time.sleep(0.2)

    def stop(self, timeout: float = 60) -> None:
        """Stop the node and wait until its AMQP port refuses connections."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # SIGTERM: RabbitMQ stops as `rabbitmqctl stop` does (closing
            # connections, syncing queues), without the CLI's start-up time
            stop_process(self.proc, timeout=timeout)
        self.proc = None
        deadline = time.monotonic() + timeout
        while port_open("127.0.0.1", self.amqp_port, 0.3) and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the node (the whole Erlang VM): a machine lost, no goodbye."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        deadline = time.monotonic() + 30
        while port_open("127.0.0.1", self.amqp_port, 0.3) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the node for good (its directory stays, for the logs)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                stop_process(self.proc, timeout=10)
        self.proc = None


def _prepare(home: Path, name: str, management: bool, cookie_text: str | None = None,
             extra_conf: str = "", mqtt: bool = False,
             tls: TestCA | None = None) -> RabbitNode:
    """A node's directory, configuration and cookie; not started. With
    ``tls``, a TLS listener (and management over https) with its server
    certificate as well."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    node = RabbitNode(name, home, free_port(), free_port(), free_port(), management)
    plugins = ["rabbitmq_management"] if management else []
    if mqtt:
        node.mqtt_port, node.web_mqtt_port = free_port(), free_port()
        extra_conf += _MQTT_CONF.format(mqtt=node.mqtt_port, ws=node.web_mqtt_port)
        plugins += ["rabbitmq_mqtt", "rabbitmq_web_mqtt"]
    if tls is not None:
        node.amqps_port = free_port()
        files = {"ca": tls.ca_file, "cert": tls.cert, "key": tls.key}
        extra_conf += _TLS_CONF.format(amqps=node.amqps_port, **files)
        if mqtt:
            node.mqtts_port = free_port()
            extra_conf += f"mqtt.listeners.ssl.default = 127.0.0.1:{node.mqtts_port}\n"
            node.web_mqtts_port = free_port()
            extra_conf += _WEB_MQTT_TLS_CONF.format(wss=node.web_mqtts_port, **files)
        if management:
            node.https_port = free_port()
            extra_conf += _TLS_MANAGEMENT_CONF.format(https=node.https_port, **files)
    (home / "rabbitmq.conf").write_text(_CONF.format(amqp=node.amqp_port, http=node.http_port)
                                        + extra_conf)
    (home / "enabled_plugins").write_text(f"[{','.join(plugins)}].")
    (home / "rabbitmq-env.conf").write_text("")
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(cookie_text or os.urandom(16).hex().upper())
        cookie.chmod(0o400)
    return node


def prepare_rabbit(home: Path, name: str, management: bool = True,
                   mqtt: bool = False, tls: TestCA | None = None) -> RabbitNode:
    """The node ``start_rabbit`` starts, not started yet: ``node.launch()``
    boots it in the background, ``node.wait_started()`` waits for it."""
    return _prepare(home, name, management, mqtt=mqtt, tls=tls)


def start_rabbit(home: Path, name: str, management: bool = True,
                 mqtt: bool = False, tls: TestCA | None = None) -> RabbitNode:
    """A started private node named ``name`` whose files live in ``home``
    (``mqtt``: with the MQTT and web-MQTT plugins on ports of their own;
    ``tls``, a tools/testca.TestCA: a TLS listener on ``amqps_port``, and
    the management API on ``https_port``, with that CA's server
    certificate, beside the plain ones)."""
    node = prepare_rabbit(home, name, management, mqtt=mqtt, tls=tls)
    node.start()
    return node


def launch_cluster(home: Path, prefix: str, count: int = 3, management: bool = True,
                   tls: TestCA | None = None) -> list[RabbitNode]:
    """The nodes of ``start_cluster``, launched side by side, not waited for
    (``wait_cluster`` does)."""
    home = Path(home)
    cookie = os.urandom(16).hex().upper()
    names = [f"{prefix}{i}" for i in range(1, count + 1)]
    peers = "cluster_formation.peer_discovery_backend = classic_config\n" + "".join(
        f"cluster_formation.classic_config.nodes.{i} = {n}@localhost\n"
        for i, n in enumerate(names, 1))
    nodes = [_prepare(home / n, n, management, cookie, peers, tls=tls) for n in names]
    try:
        for node in nodes:
            node.launch()
    except Exception:
        for node in nodes:
            node.close()
        raise
    return nodes


def wait_cluster(nodes: list[RabbitNode]) -> list[RabbitNode]:
    """Wait until the launched nodes of ``launch_cluster`` answer and are
    one cluster; on failure, they are stopped."""
    try:
        for node in nodes:
            node.wait_started(180)
        nodes[0].ctl("await_online_nodes", str(len(nodes)), timeout=120)
    except Exception:
        for node in nodes:
            node.close()
        raise
    return nodes


def start_cluster(home: Path, prefix: str, count: int = 3, management: bool = True,
                  tls: TestCA | None = None) -> list[RabbitNode]:
    """``count`` private nodes (``<prefix>1`` ... on loopback, one directory
    each under ``home``) forming one RabbitMQ cluster as they boot: the same
    Erlang cookie, and each node's configuration names the others (RabbitMQ's
    classic_config peer discovery). They start side by side. Quorum queues
    declared there have a member on every node."""
    return wait_cluster(launch_cluster(home, prefix, count, management, tls))
