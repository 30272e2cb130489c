"""Broker administration through RabbitMQ's management HTTP API.

Scheme: http(s)://<broker host>:15672/api (the ``rabbitmq_management``
plugin; ``tools/setup.sh`` enables it). Capabilities: users with password
and tags, the switch's vhost (``/`` by default) and permissions on it
(topic permissions on amq.topic too, for MQTT clients), which plugins
listen (it cannot enable one: that is ``rabbitmq-plugins`` on the
broker's host), topic exchanges, exchange-to-exchange bindings, queue listing and deletion.
HTTP through sarra.broker.management.JsonClient (requests).

The HTTP API rather than ``rabbitmqctl`` or AMQP: it works against a remote
broker with the administrator account of the switch description, needs
neither root nor the Erlang cookie, and reads back users (with their
password hashes), permissions and bindings, which ``check`` compares.
Library errors are converted here into BrokerError.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from ..broker.management import JsonClient
from ..config.credentials import Credentials
from ..errors import BrokerError
from ..tls import TlsPolicy
from .description import STREAM, XPUBLIC, Switch
from .plan import (MQTT_EXCHANGE, ROUTERS, STREAM_KEY, XPRIVATE, Account, Binding,
                   BrokerState,
                   Difference, Permissions, TopicPermissions, build_plan, differences,
                   owned_by)

log = logging.getLogger(__name__)

PLUGIN_HINT = ("is RabbitMQ's management plugin enabled? "
               "(rabbitmq-plugins enable rabbitmq_management)")


def _q(name: str) -> str:
    return quote(name, safe="")


class ManagementApi:
    """A thin client of the management API: JSON in, JSON out, BrokerError on failure."""

    def __init__(self, url: str, user: str, password: str, vhost: str = "/",
                 timeout: float = 15.0, tls: TlsPolicy | None = None):
        self.url = url.rstrip("/")
        self.user = user
        self._client = JsonClient(user, password, timeout, tls=tls)
        self.vhost = vhost
        self._vhost = _q(vhost)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "ManagementApi":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None,
                missing_ok: bool = False) -> Any:
        url = f"{self.url}/{path}"
        try:
            status, answer = self._client.call(method, url, body)
        except BrokerError as exc:
            if not exc.recoverable:
                raise
            raise BrokerError(f"cannot reach the management API at {self.url}: "
                              f"{exc}; {PLUGIN_HINT}", recoverable=True) from exc
        if status == 404 and missing_ok:
            return None
        if status == 401:
            raise BrokerError(f"{self.url}: the management API refused the login of "
                              f"'{self.user}' (wrong password, or not an administrator)")
        if status >= 400:
            reason = answer.get("reason", "") if isinstance(answer, dict) else answer
            raise BrokerError(f"{method} {url}: {status} {reason or ''}".strip(),
                              recoverable=status >= 500)
        return answer

    # -- reading ---------------------------------------------------------
    def users(self) -> dict[str, dict]:
        return {u["name"]: u for u in self.request("GET", "users")}

    def permissions(self) -> dict[str, Permissions]:
        rows = self.request("GET", f"vhosts/{self._vhost}/permissions") or []
        return {r["user"]: Permissions(r["configure"], r["write"], r["read"]) for r in rows}

    def topic_permissions(self) -> dict[str, TopicPermissions]:
        rows = self.request("GET", f"vhosts/{self._vhost}/topic-permissions",
                            missing_ok=True) or []
        return {r["user"]: TopicPermissions(r["write"], r["read"])
                for r in rows if r.get("exchange") == MQTT_EXCHANGE}

    def listeners(self) -> list[dict]:
        """The broker's listeners: protocol (amqp, mqtt, http/web-mqtt...),
        ip_address, port, node."""
        overview = self.request("GET", "overview") or {}
        return [row for row in overview.get("listeners") or [] if isinstance(row, dict)]

    def protocols(self) -> set[str]:
        """The protocols of the broker's listeners (amqp, mqtt, http/web-mqtt...)."""
        return {row.get("protocol", "") for row in self.listeners()}

    def exchanges(self) -> dict[str, dict]:
        rows = self.request("GET", f"exchanges/{self._vhost}"
                                   "?columns=name,type,durable,auto_delete,internal")
        return {r["name"]: r for r in rows or []}

    def bindings_to(self, exchange: str) -> set[Binding]:
        rows = self.request("GET", f"exchanges/{self._vhost}/{_q(exchange)}/bindings/"
                                   "destination", missing_ok=True) or []
        return {Binding(r["source"], r["destination"], r["routing_key"])
                for r in rows if r.get("destination_type") == "exchange"}

    def bindings_from(self, exchange: str) -> set[Binding]:
        rows = self.request("GET", f"exchanges/{self._vhost}/{_q(exchange)}/bindings/"
                                   "source", missing_ok=True) or []
        return {Binding(r["source"], r["destination"], r["routing_key"])
                for r in rows if r.get("destination_type") == "exchange"}

    def queues(self) -> list[str]:
        rows = self.request("GET", f"queues/{self._vhost}?columns=name") or []
        return [r["name"] for r in rows]

    def has_vhost(self) -> bool:
        return self.request("GET", f"vhosts/{self._vhost}", missing_ok=True) is not None

    def state(self) -> BrokerState:
        if not self.has_vhost():
            return BrokerState(self.users(), {}, {}, set(), vhost=False)
        bindings: set[Binding] = set()
        for exchange in ROUTERS:
            bindings |= self.bindings_to(exchange)
        bindings |= self.bindings_from(XPRIVATE)
        stream = self.request("GET", f"queues/{self._vhost}/{_q(STREAM)}", missing_ok=True)
        bound = stream is not None and any(
            row.get("routing_key") == STREAM_KEY for row in self.request(
                "GET", f"bindings/{self._vhost}/e/{_q(XPUBLIC)}/q/{_q(STREAM)}",
                missing_ok=True) or [])
        return BrokerState(self.users(), self.permissions(), self.exchanges(), bindings,
                           stream=stream, stream_bound=bound,
                           topic_permissions=self.topic_permissions(),
                           protocols=self.protocols())

    # -- changing --------------------------------------------------------
    def put_vhost(self, name: str) -> None:
        self.request("PUT", f"vhosts/{_q(name)}", {})

    def put_user(self, account: Account) -> None:
        self.request("PUT", f"users/{_q(account.name)}",
                     {"password": account.password, "tags": ",".join(account.tags)})

    def put_permissions(self, account: Account) -> None:
        self.request("PUT", f"permissions/{self._vhost}/{_q(account.name)}",
                     account.perms.as_dict())

    def put_topic_permissions(self, account: Account) -> None:
        self.request("PUT", f"topic-permissions/{self._vhost}/{_q(account.name)}",
                     account.topics.as_dict())

    def put_exchange(self, name: str) -> None:
        self.request("PUT", f"exchanges/{self._vhost}/{_q(name)}",
                     {"type": "topic", "durable": True, "auto_delete": False,
                      "internal": False, "arguments": {}})

    def bind(self, binding: Binding) -> None:
        self.request("POST", f"bindings/{self._vhost}/e/{_q(binding.source)}/e/"
                             f"{_q(binding.destination)}",
                     {"routing_key": binding.key, "arguments": {}})

    def unbind(self, binding: Binding) -> None:
        path = f"bindings/{self._vhost}/e/{_q(binding.source)}/e/{_q(binding.destination)}"
        for row in self.request("GET", path, missing_ok=True) or []:
            if row.get("routing_key") == binding.key:
                self.request("DELETE", f"{path}/{_q(row['properties_key'])}", missing_ok=True)

    def put_stream(self, arguments: dict) -> None:
        """Declare the switch's stream and bind xpublic to it."""
        self.request("PUT", f"queues/{self._vhost}/{_q(STREAM)}",
                     {"durable": True, "auto_delete": False, "arguments": arguments})
        self.bind_stream(STREAM)

    def bind_stream(self, name: str) -> None:
        self.request("POST", f"bindings/{self._vhost}/e/{_q(XPUBLIC)}/q/{_q(name)}",
                     {"routing_key": STREAM_KEY, "arguments": {}})

    def delete_permissions(self, name: str) -> None:
        self.request("DELETE", f"permissions/{self._vhost}/{_q(name)}", missing_ok=True)

    def user_vhosts(self, name: str) -> set[str]:
        rows = self.request("GET", f"users/{_q(name)}/permissions", missing_ok=True) or []
        return {r["vhost"] for r in rows}

    def delete_user(self, name: str) -> None:
        self.request("DELETE", f"users/{_q(name)}", missing_ok=True)

    def delete_exchange(self, name: str) -> None:
        self.request("DELETE", f"exchanges/{self._vhost}/{_q(name)}", missing_ok=True)

    def delete_queue(self, name: str) -> None:
        self.request("DELETE", f"queues/{self._vhost}/{_q(name)}", missing_ok=True)


def connect(switch: Switch, management_url: str | None = None,
            credentials=None) -> ManagementApi:
    """A client of the switch's management API, logged in as its administrator."""
    user, password = switch.admin_login(credentials)
    # an https API: verified against its credentials line's ca_file=, else the
    # description's ca_file, else the system's CAs
    tls = TlsPolicy(ca_file=switch.ca_file or None,
                    credentials=credentials if credentials is not None else Credentials())
    return ManagementApi(management_url or switch.management_url, user, password,
                         switch.vhost, tls=tls)


def apply(api: ManagementApi, diff: Difference) -> None:
    verb, subject = diff.action
    getattr(api, verb)(subject)


def plan_differences(switch: Switch, api: ManagementApi,
                     passwords: dict[str, str]) -> list[Difference]:
    return differences(build_plan(switch, passwords), api.state(), switch.vhost)


def declare(switch: Switch, api: ManagementApi, passwords: dict[str, str],
            only: str | None = None) -> tuple[list[str], list[str]]:
    """Make the broker hold what ``switch`` describes (never deleting
    anything but a binding a role change left behind).

    ``only``: just that user's accounts, exchanges and bindings (and the
    switch's own exchanges). Returns (one line per change, conflicts that
    could not be resolved).
    """
    done, conflicts = [], []
    for diff in plan_differences(switch, api, passwords):
        if only is not None and diff.owner not in (only, None):
            continue
        if diff.action is not None:
            apply(api, diff)
            log.debug("%s", diff.done)
            done.append(diff.done)
        elif diff.conflict:
            conflicts.append(diff.problem)
    return done, conflicts


def check(switch: Switch, api: ManagementApi, passwords: dict[str, str]) -> list[str]:
    """Every difference between the description and the broker (nothing changed)."""
    return [d.problem for d in plan_differences(switch, api, passwords)]


def remove_user(api: ManagementApi, name: str) -> list[str]:
    """Delete user ``name``'s exchanges (xs_/xr_<name>[_suffix]), queues
    (q_<name>.*) and permissions on the switch's vhost, then the user,
    unless it still has permissions on another vhost (another switch of
    the same broker). One line per deletion."""
    if not api.has_vhost():
        raise BrokerError(f"vhost {api.vhost} does not exist on {api.url} (nothing to remove)")
    done = []
    for exchange in sorted(api.exchanges()):
        if owned_by(exchange, name):
            api.delete_exchange(exchange)
            done.append(f"deleted exchange {exchange}")
    for queue in sorted(api.queues()):
        if queue.startswith(f"q_{name}."):
            api.delete_queue(queue)
            done.append(f"deleted queue {queue}")
    if name in api.permissions():
        api.delete_permissions(name)
        api.request("DELETE", f"topic-permissions/{api._vhost}/{_q(name)}", missing_ok=True)
        done.append(f"removed the permissions of {name} on vhost {api.vhost}")
    if name in api.users():
        elsewhere = api.user_vhosts(name)
        if elsewhere:
            done.append(f"kept user {name}: it has permissions on vhost "
                        f"{', '.join(sorted(elsewhere))}")
        else:
            api.delete_user(name)
            done.append(f"deleted user {name}")
    for line in done:
        log.debug("%s", line)
    return done
