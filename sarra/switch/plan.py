"""What a switch description asks of the broker, and how the broker differs.

Pure functions on plain data (no I/O): ``permissions(role, user)`` gives the
RabbitMQ regexes of doc/protocol.md §8.4, ``build_plan`` the users, exchanges and
exchange-to-exchange bindings a switch needs, and ``differences`` compares a
plan with a ``BrokerState`` read from the broker (rabbit.py does the reading
and the applying).

Permissions (on the switch's vhost, the path of its broker URL, ``/`` by
default; RabbitMQ searches each regex unanchored, so every alternative
starts with ``^`` and every user-name pattern ends at a separator or at
``$``)::

    source u      configure ^q_u\\..*
                  write     ^q_u\\..*|^xs_u(_.*)?$
                  read      ^q_u\\..*|^x[rs]_u(_.*)?$|^xpublic(_stream)?$
    subscriber u  configure ^q_u\\..*
                  write     ^q_u\\..*|^xs_u$
                  read      ^q_u\\..*|^x[rs]_u$|^xpublic(_stream)?$
    link u        configure ^q_u\\..*
                  write     ^q_u\\..*|^xreport_in$
                  read      ^q_u\\..*|^xpublic(_stream)?$
    feeder, admin .* .* .*

With ``mqtt: on`` (RabbitMQ's MQTT plugins, doc/protocol.md §15.4) each
source, subscriber and link may also configure, write and read its MQTT
sessions' queues (``^mqtt-subscription-q_u\\.``: the client id is a queue
name of its own) and write and read ``amq.topic``, where the plugin
publishes and binds; topic permissions there hold its MQTT clients (and
AMQP ones on amq.topic) to the same exchanges, by routing key::

    source u      write ^xs_u(_[^.]*)?\\.      read ^x[rs]_u(_[^.]*)?\\.|^xpublic\\.
    subscriber u  write ^xs_u\\.               read ^x[rs]_u\\.|^xpublic\\.
    link u        write ^xreport_in\\.         read ^xpublic\\.

Write on a queue is what RabbitMQ checks to bind it; read on an exchange is
what it checks to bind a queue to it; read on a queue, to consume it (every
user may read the switch's stream, xpublic_stream, as it may xpublic); no user may configure an exchange
(dd_audit declares them all). A link is a neighbouring switch: it reads
xpublic (the posts it takes on) and writes log messages about this
switch's data back into xreport_in (its consumers' downloads), and
nothing else; it has no exchanges of its own.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field

from ..readers import PRIVATE_EXCHANGE, private_exchange
from .description import STREAM, XPUBLIC, XREPORT, XREPORT_IN, XSARRA, Switch

POST_KEY = "v02.post.#"       # a source's posts: xs_<u> -> xsarra
REPORT_KEY = "v02.report.#"   # everybody's log messages: xs_<u> -> xreport_in
PRIVATE_KEY = "#"             # every restricted post: xprivate -> xprivate_<link>
XPRIVATE = PRIVATE_EXCHANGE   # restricted posts (dd_sara writes, links read, via bindings)
SWITCH_EXCHANGES = (XPUBLIC, XREPORT, XSARRA, XREPORT_IN, XPRIVATE)
ROUTERS = (XSARRA, XREPORT_IN)  # the exchanges fed by e2e bindings
ALL = (".*", ".*", ".*")
TAGS = {"admin": ("administrator",), "feeder": (), "source": (), "subscriber": (),
        "link": ()}
HASHES = {"rabbit_password_hashing_sha256": hashlib.sha256,
          "rabbit_password_hashing_sha512": hashlib.sha512,
          "rabbit_password_hashing_md5": hashlib.md5}


MQTT_EXCHANGE = "amq.topic"   # where RabbitMQ's MQTT plugin publishes (mqtt.exchange)
MQTT_PLUGINS = ("rabbitmq_mqtt", "rabbitmq_web_mqtt")
MQTT_PROTOCOLS = {"mqtt": "rabbitmq_mqtt", "http/web-mqtt": "rabbitmq_web_mqtt"}


@dataclass(frozen=True)
class TopicPermissions:
    """A user's topic permissions on MQTT_EXCHANGE (regexes of routing keys)."""
    write: str
    read: str

    def as_dict(self) -> dict[str, str]:
        return {"exchange": MQTT_EXCHANGE, "write": self.write, "read": self.read}


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str

    def as_dict(self) -> dict[str, str]:
        return {"configure": self.configure, "write": self.write, "read": self.read}


def permissions(role: str, user: str, mqtt: bool = False) -> Permissions:
    """The configure/write/read regexes of ``user`` with ``role`` (``mqtt``:
    with what its MQTT clients need)."""
    if role in ("admin", "feeder"):
        return Permissions(*ALL)
    amqp = _permissions(role, user)
    if not mqtt:
        return amqp
    sessions = rf"|^mqtt-subscription-q_{user}\..*"
    exchange = rf"|^{re.escape(MQTT_EXCHANGE)}$"
    return Permissions(amqp.configure + sessions, amqp.write + sessions + exchange,
                       amqp.read + sessions + exchange)


def topic_permissions(role: str, user: str) -> TopicPermissions | None:
    """The topic permissions on MQTT_EXCHANGE of ``user`` with ``role``
    (None: admin and feeder, whom nothing restricts)."""
    public = rf"^{XPUBLIC}\."
    if role == "source":
        return TopicPermissions(rf"^xs_{user}(_[^.]*)?\.", rf"^x[rs]_{user}(_[^.]*)?\.|{public}")
    if role == "subscriber":
        return TopicPermissions(rf"^xs_{user}\.", rf"^x[rs]_{user}\.|{public}")
    if role == "link":
        return TopicPermissions(rf"^{XREPORT_IN}\.", public)
    return None


def _permissions(role: str, user: str) -> Permissions:
    queues = rf"^q_{user}\..*"
    public = rf"^{XPUBLIC}({STREAM[len(XPUBLIC):]})?$"      # xpublic, xpublic_stream
    private = rf"|^{private_exchange(user)}$"              # the restricted posts for it
    if role == "source":
        return Permissions(queues, rf"{queues}|^xs_{user}(_.*)?$",
                           rf"{queues}|^x[rs]_{user}(_.*)?$|{public}{private}")
    if role == "subscriber":
        return Permissions(queues, rf"{queues}|^xs_{user}$",
                           rf"{queues}|^x[rs]_{user}$|{public}{private}")
    if role == "link":
        return Permissions(queues, rf"{queues}|^{XREPORT_IN}$", rf"{queues}|{public}{private}")
    raise ValueError(f"unknown role {role!r}")


def allowed(pattern: str, name: str) -> bool:
    """Whether RabbitMQ grants ``name`` under ``pattern`` (an unanchored search;
    the empty pattern grants nothing)."""
    return bool(pattern) and re.search(pattern, name) is not None


def user_exchanges(user: str) -> tuple[str, str]:
    return f"xs_{user}", f"xr_{user}"


def owned_by(name: str, user: str) -> bool:
    """Whether exchange ``name`` belongs to ``user`` (xs_u, xr_u, xs_u_suffix...,
    xprivate_u), the whole name ('$' would take "xs_u\\n" for xs_u)."""
    return (re.fullmatch(rf"x[sr]_{re.escape(user)}(_.*)?", name, re.DOTALL) is not None
            or name == private_exchange(user))


def password_matches(password_hash: str, algorithm: str, password: str) -> bool:
    """Whether RabbitMQ's ``password_hash`` (base64 of a 4-byte salt and
    H(salt + password)) is that of ``password``."""
    try:
        raw = base64.b64decode(password_hash or "", validate=True)
    except ValueError:
        return False
    digest = HASHES.get(algorithm or "rabbit_password_hashing_sha256")
    if digest is None or len(raw) <= 4:
        return False
    salt = raw[:4]
    return raw[4:] == digest(salt + password.encode("utf-8")).digest()


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password: str = field(repr=False)
    tags: tuple[str, ...]
    perms: Permissions
    topics: TopicPermissions | None = None    # on MQTT_EXCHANGE, with mqtt: on


@dataclass(frozen=True)
class Binding:
    """An exchange-to-exchange binding."""
    source: str
    destination: str
    key: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination} ({self.key})"


@dataclass
class Plan:
    accounts: dict[str, Account]
    exchanges: dict[str, str | None]     # name -> owning user (None: the switch's)
    bindings: dict[Binding, str]         # binding -> owning user
    stream: int = 0                      # STREAM's retention in seconds (0: none)
    mqtt: bool = False                   # MQTT clients too (the plugins' listeners)


STREAM_KEY = "#"            # the stream keeps every post of xpublic


def stream_arguments(seconds: int) -> dict[str, str]:
    """The arguments of the switch's stream (x-max-age: RabbitMQ's units)."""
    return {"x-queue-type": "stream", "x-max-age": f"{seconds}s"}


def build_plan(switch: Switch, passwords: dict[str, str]) -> Plan:
    """The accounts, exchanges and bindings ``switch`` needs."""
    accounts = {name: Account(name, role, passwords[name], TAGS[role],
                              permissions(role, name, switch.mqtt),
                              topic_permissions(role, name) if switch.mqtt else None)
                for name, role in switch.accounts().items()}
    exchanges: dict[str, str | None] = {name: None for name in SWITCH_EXCHANGES}
    bindings: dict[Binding, str] = {}
    for name, role in sorted(switch.accounts().items()):
        if role in ("source", "subscriber", "link"):
            exchanges[private_exchange(name)] = name
        if role == "link":       # a link carries every restricted post onward
            bindings[Binding(XPRIVATE, private_exchange(name), PRIVATE_KEY)] = name
        if role not in ("source", "subscriber"):
            continue
        xs, xr = user_exchanges(name)
        exchanges[xs] = exchanges[xr] = name
        if role == "source":
            bindings[Binding(xs, XSARRA, POST_KEY)] = name
        bindings[Binding(xs, XREPORT_IN, REPORT_KEY)] = name
    return Plan(accounts, exchanges, bindings, switch.stream, switch.mqtt)


@dataclass
class BrokerState:
    """What the broker holds, as the management API shows it."""
    users: dict[str, dict]                 # name -> {tags, password_hash, hashing_algorithm}
    permissions: dict[str, Permissions]    # on the switch's vhost
    exchanges: dict[str, dict]             # name -> {type, durable, auto_delete, internal}
    bindings: set[Binding]                 # e2e bindings into ROUTERS, and out of XPRIVATE
    vhost: bool = True                     # whether the switch's vhost exists
    stream: dict | None = None             # STREAM's queue ({type, arguments}), if any
    stream_bound: bool = False             # whether xpublic is bound to STREAM
    topic_permissions: dict[str, TopicPermissions] = field(default_factory=dict)
    protocols: set[str] = field(default_factory=set)    # of the listeners (mqtt, amqp...)


@dataclass(frozen=True)
class Difference:
    """One way the broker differs from the plan.

    ``problem`` is what ``check`` says; ``action`` (verb, subject) is what
    ``declare`` does about it, with ``done`` saying it; ``owner`` is the
    user it is about (None: the switch's own exchanges and bindings).
    Without an action, ``declare`` leaves it alone (extra users and
    bindings are only reported) unless it is a ``conflict`` it cannot
    resolve (an exchange of the wrong kind), which makes it fail.
    """
    problem: str
    action: tuple[str, object] | None = None
    done: str = ""
    owner: str | None = None
    conflict: bool = False


def _tags(user: dict) -> tuple[str, ...]:
    tags = user.get("tags") or []
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,\s]+", tags) if t]
    return tuple(sorted(tags))


def _account_differences(account: Account, state: BrokerState,
                         vhost: str) -> list[Difference]:
    name, role = account.name, account.role
    out = []
    user = state.users.get(name)
    if user is None:
        out.append(Difference(f"missing user {name} ({role})", ("put_user", account),
                              f"created user {name} ({role})", name))
    else:
        wrong = []
        if _tags(user) != tuple(sorted(account.tags)):
            wrong.append(f"tags [{', '.join(_tags(user))}] instead of "
                         f"[{', '.join(account.tags)}]")
        if not password_matches(user.get("password_hash", ""),
                                user.get("hashing_algorithm", ""), account.password):
            wrong.append("password differs from credentials.conf")
        if wrong:
            out.append(Difference(f"user {name}: {'; '.join(wrong)}", ("put_user", account),
                                  f"updated user {name} ({role}): {'; '.join(wrong)}", name))
    perms = state.permissions.get(name)
    if perms != account.perms:
        if perms is None:
            problem = f"user {name} has no permissions on vhost {vhost}"
        else:
            wrong = [f"{kind} '{got}' instead of '{want}'"
                     for kind, got, want in zip(("configure", "write", "read"),
                                                (perms.configure, perms.write, perms.read),
                                                (account.perms.configure, account.perms.write,
                                                 account.perms.read))
                     if got != want]
            problem = f"user {name}: {'; '.join(wrong)}"
        out.append(Difference(problem, ("put_permissions", account),
                              f"set permissions of {name} ({role})", name))
    topics = state.topic_permissions.get(name)
    if account.topics is not None and topics != account.topics:
        problem = (f"user {name} has no topic permissions on {MQTT_EXCHANGE}" if topics is None
                   else f"user {name}: topic permissions on {MQTT_EXCHANGE} write "
                        f"'{topics.write}' read '{topics.read}' instead of write "
                        f"'{account.topics.write}' read '{account.topics.read}'")
        out.append(Difference(problem, ("put_topic_permissions", account),
                              f"set topic permissions of {name} on {MQTT_EXCHANGE}", name))
    return out


def _plugin_differences(plan: Plan, state: BrokerState) -> list[Difference]:
    """``mqtt: on``: the MQTT plugins' listeners must be there. The
    management API cannot enable a plugin: what to run on the broker's host."""
    if not plan.mqtt:
        return []
    missing = [plugin for proto, plugin in MQTT_PROTOCOLS.items() if proto not in state.protocols]
    if not missing:
        return []
    return [Difference(f"mqtt: on, but the broker has no listener of {', '.join(missing)} "
                       f"(the management API cannot enable plugins): on the broker's host, run "
                       f"'rabbitmq-plugins enable {' '.join(MQTT_PLUGINS)}' (MQTT on 1883, "
                       f"8883 with TLS, MQTT over websockets on 15675, path /ws), or name "
                       f"the node in the description's rabbitmq_node for declare to do it",
                       conflict=True)]


def _looks_like_sarra(name: str, state: BrokerState) -> bool:
    perms = state.permissions.get(name)
    return ((perms is not None and perms.configure.startswith(f"^q_{name}"))
            or f"xs_{name}" in state.exchanges)


def differences(plan: Plan, state: BrokerState, vhost: str = "/") -> list[Difference]:
    """Everything that differs, in a stable order: accounts, extra users,
    exchanges, bindings (missing, then extra)."""
    out: list[Difference] = []
    if not state.vhost:
        out.append(Difference(f"missing vhost {vhost}", ("put_vhost", vhost),
                              f"created vhost {vhost}"))
    for name in sorted(plan.accounts):
        out.extend(_account_differences(plan.accounts[name], state, vhost))
    for name in sorted(set(state.users) - set(plan.accounts)):
        if _looks_like_sarra(name, state):
            out.append(Difference(f"extra user {name} (not in the description)", owner=name))
    for name, owner in sorted(plan.exchanges.items()):
        info = state.exchanges.get(name)
        if info is None:
            out.append(Difference(f"missing exchange {name}", ("put_exchange", name),
                                  f"declared exchange {name}", owner))
        elif (info.get("type"), bool(info.get("durable")), bool(info.get("auto_delete")),
              bool(info.get("internal"))) != ("topic", True, False, False):
            out.append(Difference(
                f"exchange {name} is {info.get('type')} durable={info.get('durable')} "
                f"auto_delete={info.get('auto_delete')} internal={info.get('internal')}; "
                "expected a durable topic exchange (delete it, then declare)", owner=owner,
                conflict=True))
    out.extend(_stream_differences(plan, state))
    out.extend(_plugin_differences(plan, state))
    for binding, owner in sorted(plan.bindings.items(), key=lambda kv: str(kv[0])):
        if binding not in state.bindings:
            out.append(Difference(f"missing binding {binding}", ("bind", binding),
                                   f"bound {binding}", owner))
    owners = {x: o for x, o in plan.exchanges.items() if o is not None}
    for binding in sorted(state.bindings - set(plan.bindings), key=str):
        owner = owners.get(binding.source)
        # a described user's exchange: ours to fix (a role changed);
        # anything else is only reported
        action = ("unbind", binding) if owner is not None else None
        out.append(Difference(f"extra binding {binding}", action,
                              f"unbound {binding}", owner))
    return out


def _stream_differences(plan: Plan, state: BrokerState) -> list[Difference]:
    """The switch's stream (the description's ``stream`` retention): there,
    a stream with that x-max-age, and bound to xpublic. An existing queue
    of another kind or retention is a conflict: RabbitMQ does not change a
    queue's arguments (delete it, then declare)."""
    if not plan.stream:
        return []
    want = stream_arguments(plan.stream)
    if state.stream is None:
        return [Difference(f"missing stream {STREAM} (xpublic's posts for {plan.stream}s)",
                           ("put_stream", want), f"declared stream {STREAM} "
                           f"(x-max-age {want['x-max-age']}) bound to {XPUBLIC}")]
    got = state.stream.get("arguments") or {}
    if state.stream.get("type") != "stream" or got.get("x-max-age") != want["x-max-age"]:
        return [Difference(
            f"queue {STREAM} is a {state.stream.get('type')} queue with x-max-age "
            f"{got.get('x-max-age')}; expected a stream with x-max-age {want['x-max-age']} "
            f"(delete it, then declare)", conflict=True)]
    if not state.stream_bound:
        return [Difference(f"stream {STREAM} is not bound to {XPUBLIC}",
                           ("bind_stream", STREAM), f"bound {XPUBLIC} -> {STREAM}")]
    return []
