"""RabbitMQ's MQTT plugins, enabled by ``dd_audit declare`` on the broker's
own host: the management API can only say which listeners run, so with
``mqtt: on`` and ``rabbitmq_node:`` in the description, ``declare`` runs
``rabbitmq-plugins -n NODE enable --online`` for the plugins whose listeners
are missing, waits for the listeners to show in the API, and says their
ports. rabbitmq-plugins finds the node's Erlang cookie and enabled-plugins
file as it always does (the caller's HOME and RABBITMQ_* environment; the
Debian package's defaults when dd_audit runs as root or rabbitmq)."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time

from ..errors import BrokerError
from .plan import MQTT_PLUGINS, MQTT_PROTOCOLS

log = logging.getLogger(__name__)

WHAT = {"mqtt": "MQTT", "mqtt/ssl": "MQTT over TLS", "http/web-mqtt": "MQTT over websockets",
        "https/web-mqtt": "MQTT over secure websockets"}
SBIN = ("/usr/sbin/rabbitmq-plugins", "/usr/lib/rabbitmq/bin/rabbitmq-plugins")


def mqtt_ports(listeners: list[dict]) -> str:
    """The MQTT listeners, as an operator gives them to clients."""
    order = list(WHAT)
    out = []
    for row in sorted((r for r in listeners if r.get("protocol") in WHAT),
                      key=lambda r: (order.index(r["protocol"]), r.get("port") or 0)):
        ip = str(row.get("ip_address", "?"))
        host = f"[{ip}]" if ":" in ip else ip
        path = " (path /ws)" if "web-mqtt" in row["protocol"] else ""
        out.append(f"{WHAT[row['protocol']]} on {host}:{row.get('port', '?')}{path}")
    return ", ".join(out) or "no MQTT listener"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _reason(text: str) -> str:
    """What rabbitmq-plugins said went wrong: its "Error..." line (it then
    repeats the arguments and prints its usage), else its last line."""
    lines = [ANSI.sub("", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    return (errors or lines or ["no reason given"])[0 if errors else -1]


def _script() -> str:
    found = shutil.which("rabbitmq-plugins") or next(
        (p for p in SBIN if os.access(p, os.X_OK)), None)
    if found is None:
        raise BrokerError("rabbitmq_node: rabbitmq-plugins is not on this host; run "
                          "'rabbitmq-plugins enable rabbitmq_mqtt rabbitmq_web_mqtt' on the "
                          "broker's host", recoverable=False)
    return found


def enable_mqtt(api, node: str, timeout: float = 90.0) -> list[str]:
    """Enable the MQTT plugins whose listeners ``api`` does not show, on
    ``node``; one line saying what was done and the ports ([] when nothing
    was missing). BrokerError when rabbitmq-plugins fails or the listeners
    do not come up within ``timeout``."""
    if all(proto in api.protocols() for proto in MQTT_PROTOCOLS):
        return []
    # both, whichever listener is missing: a disabled plugin's listener may
    # linger in the API, and enabling an enabled plugin changes nothing
    missing = list(MQTT_PLUGINS)
    argv = [_script(), "-n", node, "enable", "--online", *missing]
    log.info("running %s", " ".join(argv))
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BrokerError(f"rabbitmq-plugins -n {node}: no answer in {timeout:.0f} s",
                          recoverable=False) from None
    if res.returncode != 0:
        raise BrokerError(f"rabbitmq-plugins -n {node} enable {' '.join(missing)} exited "
                          f"{res.returncode}: {_reason(res.stderr + res.stdout)}",
                          recoverable=False)
    deadline = time.monotonic() + timeout
    while True:
        listeners = api.listeners()
        if all(proto in {r.get("protocol") for r in listeners} for proto in MQTT_PROTOCOLS):
            return [f"enabled {', '.join(missing)} on node {node}: "
                    f"{mqtt_ports(listeners)}"]
        if time.monotonic() > deadline:
            raise BrokerError(f"enabled {', '.join(missing)} on node {node}, but its "
                              f"listeners did not show in {timeout:.0f} s (its log says why)",
                              recoverable=False)
        time.sleep(0.5)
