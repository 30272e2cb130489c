"""The switch description: one YAML file saying what a switch is made of.

The only module of sarra that imports yaml (PyYAML). Example (etc/switch.yaml)::

    cluster: lab1                      # this switch's name
    broker: amqp://admin@localhost/    # administrator URL; password in credentials.conf
    feeder: amqp://feeder@localhost/   # the account the switch's own components use
                                       # (on a cluster: a list, one URL per node)
    data_dir: /var/lib/sarra/data      # the tree the switch serves
    base_url: http://localhost:8090/   # how subscribers reach data_dir
    ca_file: /etc/sarra/our-ca.crt     # optional: the CA of its TLS servers (amqps,
                                       # https), for dd_audit and the components
    users:                             # name: role
      alice: source
      carol: subscriber
      lab2: link                       # switch lab2's account here
    links:                             # neighbours this switch takes posts from
      - cluster: lab0
        broker: amqp://lab1@switch0.example.com/   # our account (role link) there

Passwords are never in the YAML: each account's password is the one
credentials.conf holds for ``amqp://<user>@<broker host>:<port>/``.

``add_user_to_file`` / ``remove_user_from_file`` edit the ``users:`` block
as text, so comments and layout survive; only a description whose users are
written in flow style (``users: {alice: source}``) is rewritten whole, and
then its comments are lost (a warning says so).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import yaml

from ..config.credentials import Credentials, DEFAULT_PORTS
from ..config.options import parse_duration
from ..errors import ConfigError
from ..readers import PRIVATE_PATH

log = logging.getLogger(__name__)

XPUBLIC = "xpublic"          # validated posts of the switch (feeder writes, all read)
XREPORT = "xreport"          # validated log messages of the switch
XSARRA = "xsarra"            # every source's posts (e2e bindings from xs_<source>)
XREPORT_IN = "xreport_in"    # everybody's log messages (e2e bindings from xs_<user>)
STREAM = "xpublic_stream"    # xpublic's posts kept for days (the ``stream`` key), replayable

ROLES = ("admin", "feeder", "source", "subscriber", "link")
KEYS = ("cluster", "broker", "feeder", "data_dir", "base_url", "users", "links",
        "management_url", "instances", "queue_type", "stream", "mqtt",
        "ca_file", "private_dir", "password_file", "rabbitmq_node")
QUEUE_TYPES = ("classic", "quorum")     # of the switch's own queues
LINK_KEYS = ("cluster", "broker", "exchange", "to_clusters", "from_clusters")
REQUIRED = ("cluster", "broker", "feeder", "data_dir", "base_url", "users")

# Names become broker users, exchanges, queues, vhosts and file names: each
# is checked whole (``is_name``: fullmatch; '$' would also match before a
# final newline, and "alice\n" would pass for alice). ASCII only: [A-Za-z0-9]
# matches no look-alike letter or digit of another script.
#
# No '_' (it separates a user's name from an exchange suffix: xs_<u>_<suffix>)
# and no '.' (it ends the user's part of a queue name: q_<u>.<tool>...), so
# that no user's name plus a separator is the beginning of another's.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# The administrator and the feeder (the user part of broker and feeder) have
# every right and no exchanges of their own: '_' and '.' are harmless there.
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MANAGEMENT_PORTS = {"amqp": ("http", 15672), "amqps": ("https", 15671)}
# A cluster name goes into comma-separated header values (to_clusters).
# It also names the link's configuration files (sara/from-<cluster>.conf),
# whose name ends at the first '.' for the instances' bookkeeping: no '.'.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
EXCHANGE_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
# the vhost, the path of the broker URL once decoded ('/' is the default one)
VHOST_NAME = re.compile(r"/|[A-Za-z0-9_.:-][A-Za-z0-9_.:/-]*")
# a host name of a URL (an IP address is checked as one)
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_name(pattern: re.Pattern, value: object) -> bool:
    """Whether ``value`` is a string that ``pattern`` matches whole."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def shown(value: object) -> str:
    """``value`` quoted for a message, escapes showing what is not plain
    ASCII (a newline, a NUL, a Cyrillic 'а' in 'аlice')."""
    return ascii(value)


@dataclass(frozen=True)
class Link:
    """A neighbouring switch this one takes posts from (one ``links:`` entry).

    ``broker`` is this switch's account on the neighbour's broker (role
    ``link`` in the neighbour's description); through it this switch reads
    the neighbour's ``exchange`` (xpublic) and writes log messages back
    into its ``xreport_in``. The posts taken are those whose to_clusters
    names one of ``to_clusters`` (this switch, and whatever lies beyond
    it), ALL, or nothing; the log messages sent back are those whose
    from_cluster is one of ``from_clusters`` (the neighbour, and whatever
    lies beyond it on the way the data came).
    """

    cluster: str
    broker: str
    exchange: str
    to_clusters: tuple[str, ...]
    from_clusters: tuple[str, ...]

    @property
    def user(self) -> str:
        return urlsplit(self.broker).username or ""


@dataclass
class Switch:
    """A loaded, validated switch description."""

    cluster: str
    broker: str                    # administrator URL, without password
    feeder: str                    # the switch's own account URL(s, comma-separated:
                                   # a cluster's nodes), without password
    data_dir: str
    base_url: str
    users: dict[str, str]          # as written: name -> role
    links: list[Link] = field(default_factory=list)
    management_url: str = ""       # RabbitMQ management API, e.g. http://host:15672/api
    instances: int = 1             # of the switch's dd_sara (dd_audit configs)
    queue_type: str = "classic"    # of its components' queues (quorum: on a cluster)
    stream: int = 0                # seconds xpublic's posts stay in STREAM (0: no stream)
    mqtt: bool = False             # MQTT clients too (RabbitMQ's MQTT plugins)
    ca_file: str = ""              # CA (PEM) of the TLS servers named here ("": the system's)
    private_dir: str = ""          # restricted files (default data_dir + ".private")
    password_file: str = ""        # nginx's basic auth (default data_dir + ".htpasswd")
    rabbitmq_node: str = ""        # the broker's node on this host, for rabbitmq-plugins
    path: str = ""

    def __post_init__(self) -> None:
        root = os.path.normpath(self.data_dir)
        self.private_dir = self.private_dir or root + ".private"
        self.password_file = self.password_file or root + ".htpasswd"

    @property
    def private_base_url(self) -> str:
        """Where private_dir is served: ``<base_url>_private/``."""
        return self.base_url.rstrip("/") + f"/{PRIVATE_PATH}/"

    @property
    def vhost(self) -> str:
        """The RabbitMQ virtual host: the path of ``broker`` (``/`` when empty),
        as pika reads it (``amqp://admin@host/lab2`` is vhost ``lab2``)."""
        return vhost_of(self.broker)

    @property
    def admin_user(self) -> str:
        return urlsplit(self.broker).username or ""

    @property
    def feeder_user(self) -> str:
        return urlsplit(self.feeder_urls[0]).username or ""

    @property
    def feeder_urls(self) -> list[str]:
        """The feeder's URL, or one per node of the switch's cluster."""
        return self.feeder.split(",")

    def accounts(self) -> dict[str, str]:
        """Every account of the switch, name -> role: the users plus the
        administrator of ``broker`` and the account of ``feeder`` (one
        account named in both is the administrator)."""
        out = {self.feeder_user: "feeder", self.admin_user: "admin"}
        out.update(self.users)
        return out

    def as_data(self) -> dict:
        """The description as YAML data (management_url always written)."""
        return {"cluster": self.cluster, "broker": self.broker, "feeder": self.feeder,
                "data_dir": self.data_dir, "base_url": self.base_url,
                "users": dict(self.users), "links": [_link_data(k) for k in self.links],
                "management_url": self.management_url, "instances": self.instances,
                "queue_type": self.queue_type,
                **({"stream": f"{self.stream}s"} if self.stream else {}),
                **({"mqtt": True} if self.mqtt else {}),
                **({"ca_file": self.ca_file} if self.ca_file else {}),
                "private_dir": self.private_dir, "password_file": self.password_file,
                **({"rabbitmq_node": self.rabbitmq_node} if self.rabbitmq_node else {})}

    def with_users(self, users: dict[str, str]) -> "Switch":
        """A validated copy with other users (the file is not touched)."""
        return switch_from_data({**self.as_data(), "users": users}, self.path)

    def names(self, *roles: str) -> list[str]:
        """The accounts having one of ``roles``, sorted."""
        return sorted(n for n, r in self.accounts().items() if r in roles)

    def account_url(self, name: str) -> str:
        """``amqp://<name>@<broker host>:<port>/``: the key of its password."""
        return _account_url(self.broker, name)

    def passwords(self, names: list[str] | None = None,
                  credentials: Credentials | None = None) -> dict[str, str]:
        """name -> password from credentials.conf for ``names`` (default
        every account). A missing one is a ConfigError naming the users."""
        creds = credentials if credentials is not None else Credentials()
        out, missing = {}, []
        for name in (self.accounts() if names is None else names):
            url = creds.lookup(self.account_url(name))
            password = urlsplit(url).password
            if password is None:
                missing.append(name)
            else:
                out[name] = unquote(password)
        if missing:
            raise ConfigError(
                f"no password for user{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} in {creds.path} (add "
                + " ".join(self.account_url(n).replace("@", ":PASSWORD@", 1)
                           for n in missing) + ")",
                self.path, option="users")
        return out

    def admin_login(self, credentials: Credentials | None = None) -> tuple[str, str]:
        """(user, password) of the administrator, for the management API."""
        creds = credentials if credentials is not None else Credentials()
        password = urlsplit(creds.lookup(self.broker)).password
        if password is None:
            raise ConfigError(f"no password for the administrator {self.broker} in "
                              f"{creds.path}", self.path, option="broker")
        return self.admin_user, unquote(password)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _account_url(broker: str, name: str) -> str:
    parts = urlsplit(broker)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 5672)
    return f"{parts.scheme}://{name}@{_host(parts.hostname or '')}:{port}/"


def vhost_of(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _vhost(url: str, path: str, option: str) -> str:
    vhost = vhost_of(url)
    if not is_name(VHOST_NAME, vhost):
        raise ConfigError(f"bad vhost {shown(vhost)} (the path of '{url}'): letters, digits, "
                          "'_', '.', ':', '/' and '-'", path, option=option)
    return vhost


def _link_data(link: Link) -> dict:
    return {"cluster": link.cluster, "broker": link.broker, "exchange": link.exchange,
            "to_clusters": list(link.to_clusters),
            "from_clusters": list(link.from_clusters)}


# --------------------------------------------------------------------------- loading

def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the switch description: {exc}", path) from exc


def _parse(text: str, path: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", path,
                          mark.line + 1 if mark else None) from None


def _text(data: dict, key: str, path: str, option: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty string", path, option=option or key)
    if CONTROL.search(value.strip()):
        raise ConfigError("must be one line, without control characters", path,
                          option=option or key)
    return value.strip()


def _url(data: dict, key: str, path: str, schemes: tuple[str, ...],
         user: bool, option: str = "") -> str:
    option = option or key
    value = _text(data, key, path, option)
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"'{value}' is not a {'/'.join(schemes)} URL", path, option=option)
    if not (is_name(HOST_NAME, parts.hostname) or _is_ip(parts.hostname)):
        raise ConfigError(f"bad host name {shown(parts.hostname)} in '{value}'", path,
                          option=option)
    if user and not parts.username:
        raise ConfigError(f"'{value}' must name its account ({parts.scheme}://USER@host/)",
                          path, option=option)
    if parts.password is not None:
        raise ConfigError("no passwords in the switch description: put the URL with "
                          "its password in credentials.conf", path, option=option)
    if CONTROL.search(unquote(parts.path)):
        raise ConfigError(f"'{value}': its path has a control character (once decoded)",
                          path, option=option)
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _account(url: str, pattern: re.Pattern, path: str, option: str) -> str:
    """The user part of ``url``, checked whole: it becomes a broker user."""
    name = urlsplit(url).username or ""
    if not is_name(pattern, name):
        allowed = "'-'" if pattern is USER_NAME else "'_', '.' and '-'"
        raise ConfigError(f"bad account name {shown(name)} in '{url}': letters, digits and "
                          f"{allowed} only", path, option=option)
    return name


def _cluster(value: object, path: str, option: str) -> str:
    if not is_name(CLUSTER_NAME, value):
        raise ConfigError(f"bad cluster name {shown(value)}: letters, digits, '_' and '-'",
                          path, option=option)
    if value == "ALL":
        raise ConfigError("'ALL' cannot name a cluster: in to_clusters it means every one",
                          path, option=option)
    return value


def _clusters(value: object, default: tuple[str, ...], path: str,
              option: str) -> tuple[str, ...]:
    """A list of cluster names (or one name, or a comma-separated string)."""
    if value is None:
        return default
    if isinstance(value, str):
        value = [c.strip() for c in value.split(",") if c.strip()]
    if not isinstance(value, list) or not value:
        raise ConfigError("must be a list of cluster names", path, option=option)
    return tuple(dict.fromkeys(_cluster(c, path, option) for c in value))


def _links(value: object, cluster: str, path: str) -> list[Link]:
    links = [] if value is None else value
    if not isinstance(links, list):
        raise ConfigError("must be a list of neighbours (- cluster: NAME, broker: URL)",
                          path, option="links")
    out: list[Link] = []
    for i, entry in enumerate(links):
        where = f"links[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError("must be a mapping (cluster, broker, exchange, "
                              "to_clusters, from_clusters)", path, option=where)
        for key in entry:
            if key not in LINK_KEYS:
                raise ConfigError(f"unknown key (keys: {', '.join(LINK_KEYS)})", path,
                                  option=f"{where}.{key}")
        for key in ("cluster", "broker"):
            if key not in entry:
                raise ConfigError("missing", path, option=f"{where}.{key}")
        name = _cluster(entry["cluster"], path, f"{where}.cluster")
        if name == cluster:
            raise ConfigError(f"'{name}' is this switch's own cluster", path,
                              option=f"{where}.cluster")
        if any(link.cluster == name for link in out):
            raise ConfigError(f"a second link to '{name}'", path, option=f"{where}.cluster")
        exchange = entry.get("exchange", XPUBLIC)
        if not is_name(EXCHANGE_NAME, exchange):
            raise ConfigError(f"{shown(exchange)} is not an exchange name", path,
                              option=f"{where}.exchange")
        broker = _url(entry, "broker", path, ("amqp", "amqps"), user=True,
                      option=f"{where}.broker")
        # the account has the role link in the neighbour's description
        _account(broker, USER_NAME, path, f"{where}.broker")
        _vhost(broker, path, f"{where}.broker")
        out.append(Link(
            cluster=name,
            broker=broker,
            exchange=exchange,
            to_clusters=_clusters(entry.get("to_clusters"), (cluster,), path,
                                  f"{where}.to_clusters"),
            from_clusters=_clusters(entry.get("from_clusters"), (name,), path,
                                    f"{where}.from_clusters")))
    return out


def check_user(name: object, role: object, path: str = "") -> None:
    """ConfigError unless ``name`` is a valid user name and ``role`` a role."""
    if not isinstance(name, str):
        raise ConfigError(f"user name {name!r} is not a string (quote it)", path,
                          option="users")
    if not is_name(USER_NAME, name):
        plain = name.isascii() and name.isprintable()
        raise ConfigError(f"bad user name {shown(name)}: letters, digits and '-' only "
                          "('_' and '.' separate names from suffixes)", path,
                          option=f"users.{name if plain else shown(name)}")
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} (roles: {', '.join(ROLES)})", path,
                          option=f"users.{name}")


def switch_from_data(data: object, path: str = "<switch>") -> Switch:
    """Validate parsed YAML and build the Switch."""
    if not isinstance(data, dict):
        raise ConfigError("a switch description is a mapping of keys "
                          f"({', '.join(REQUIRED)})", path)
    for key in data:
        if key not in KEYS:
            raise ConfigError(f"unknown key (keys: {', '.join(KEYS)})", path, option=str(key))
    for key in REQUIRED:
        if key not in data:
            raise ConfigError("missing", path, option=key)
    users = {} if data.get("users") is None else data["users"]
    if not isinstance(users, dict):
        raise ConfigError("must be a mapping of user name to role", path, option="users")
    for name, role in users.items():
        check_user(name, role, path)
    broker = _url(data, "broker", path, ("amqp", "amqps"), user=True)
    feeders = _feeders(data, path)
    feeder = feeders[0]
    _account(broker, ACCOUNT_NAME, path, "broker")
    _vhost(broker, path, "broker")
    data_dir = _text(data, "data_dir", path)
    if not os.path.isabs(data_dir):
        raise ConfigError(f"'{data_dir}' is not an absolute path", path, option="data_dir")
    if (_account_url(broker, "") not in [_account_url(f, "") for f in feeders]
            or vhost_of(feeder) != vhost_of(broker)):
        raise ConfigError(f"'{feeder}' is not on the broker of '{broker}' (same host, port "
                          "and vhost; on a cluster, one of the feeder's URLs is the "
                          "broker's node)", path, option="feeder")
    base_url = _url(data, "base_url", path, ("http", "https"), user=False)
    management = data.get("management_url")
    if management is None:
        management = default_management_url(broker)
    else:
        management = _url(data, "management_url", path, ("http", "https"), user=False)
    cluster = _cluster(data["cluster"], path, "cluster")
    instances = data.get("instances", 1)
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise ConfigError(f"{instances!r} is not a number of instances (1 or more)", path,
                          option="instances")
    queue_type = data.get("queue_type", "classic")
    if queue_type not in QUEUE_TYPES:
        raise ConfigError(f"{shown(queue_type)}: one of {', '.join(QUEUE_TYPES)} (the type "
                          "of the switch's own queues)", path, option="queue_type")
    mqtt = data.get("mqtt", False)
    if not isinstance(mqtt, bool):
        raise ConfigError(f"{shown(mqtt)}: on or off (whether MQTT clients use the switch: "
                          "RabbitMQ's MQTT plugins)", path, option="mqtt")
    switch = Switch(cluster=cluster, broker=broker, feeder=",".join(feeders),
                    data_dir=data_dir, base_url=base_url, users=dict(users),
                    links=_links(data.get("links"), cluster, path),
                    management_url=management.rstrip("/"), instances=instances,
                    queue_type=queue_type, stream=_retention(data.get("stream"), path),
                    mqtt=mqtt, ca_file=_ca_file(data, path),
                    private_dir=_private_dir(data, data_dir, path),
                    password_file=_absolute(data, "password_file", path),
                    rabbitmq_node=_node(data, mqtt, path), path=path)
    for tree in (switch.data_dir, switch.private_dir):
        if os.path.normpath(switch.password_file).startswith(os.path.normpath(tree) + "/"):
            raise ConfigError(f"'{switch.password_file}' is inside '{tree}', which nginx "
                              "serves: the password file would be downloadable", path,
                              option="password_file")
    for name, fixed in ((switch.admin_user, "admin"), (switch.feeder_user, "feeder")):
        role = switch.users.get(name)
        if role is not None and role != fixed and not (fixed == "feeder" and role == "admin"):
            raise ConfigError(f"'{name}' is the {fixed} account of the switch, not a {role}",
                              path, option=f"users.{name}")
    return switch


NODE = re.compile(r"[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?")


def _node(data: dict, mqtt: bool, path: str) -> str:
    """``rabbitmq_node``: the Erlang name of the broker's node on the host
    dd_audit runs on (``rabbit@host``), which ``declare`` may give the MQTT
    plugins with rabbitmq-plugins; only with ``mqtt: on``."""
    if data.get("rabbitmq_node") is None:
        return ""
    value = _text(data, "rabbitmq_node", path)
    if not NODE.fullmatch(value):
        raise ConfigError(f"{shown(value)} is not a RabbitMQ node name (rabbit@host)", path,
                          option="rabbitmq_node")
    if not mqtt:
        raise ConfigError("is only used to enable the MQTT plugins: set 'mqtt: on' too, or "
                          "remove it", path, option="rabbitmq_node")
    return value


def _absolute(data: dict, key: str, path: str) -> str:
    """An absolute path, or nothing (the default)."""
    if data.get(key) is None:
        return ""
    value = _text(data, key, path)
    if not os.path.isabs(value):
        raise ConfigError(f"'{value}' is not an absolute path", path, option=key)
    if "$" in value:
        raise ConfigError(f"'{value}': nginx would read '$' as a variable", path, option=key)
    return os.path.normpath(value)


def _private_dir(data: dict, data_dir: str, path: str) -> str:
    """``private_dir``: where restricted files are kept (default data_dir +
    ".private"), never inside data_dir nor around it: nginx serves data_dir
    to anyone."""
    value = _absolute(data, "private_dir", path) or os.path.normpath(data_dir) + ".private"
    root = os.path.normpath(data_dir)
    if value == root or value.startswith(root.rstrip("/") + "/") or \
            root.startswith(value.rstrip("/") + "/"):
        raise ConfigError(f"'{value}' overlaps data_dir '{root}': restricted files would be "
                          "served to anyone (a directory beside it: the default is "
                          f"{root}.private)", path, option="private_dir")
    return value


def _ca_file(data: dict, path: str) -> str:
    """``ca_file``: an absolute path (the components run elsewhere than
    dd_audit's working directory), or nothing."""
    if data.get("ca_file") is None:
        return ""
    value = _text(data, "ca_file", path)
    if not os.path.isabs(value):
        raise ConfigError(f"'{value}' is not an absolute path", path, option="ca_file")
    return value


def _feeders(data: dict, path: str) -> list[str]:
    """``feeder``: one URL, or a list (YAML, or comma-separated) of one URL
    per node of the switch's cluster, the same account and vhost on each."""
    value = data.get("feeder")
    if isinstance(value, str) and "," in value:
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise ConfigError("must be a URL, or a list of URLs (a cluster's nodes)", path,
                          option="feeder")
    urls = [_url({"feeder": v}, "feeder", path, ("amqp", "amqps"), user=True)
            for v in value]
    for url in urls:
        _account(url, ACCOUNT_NAME, path, "feeder")
        if urlsplit(url).username != urlsplit(urls[0]).username or \
                vhost_of(url) != vhost_of(urls[0]):
            raise ConfigError(f"'{url}': every URL of the feeder names the same account "
                              "and vhost (the nodes of one cluster)", path, option="feeder")
    return urls


def _retention(value: object, path: str) -> int:
    """``stream``: how long xpublic's posts stay in the switch's stream
    (a duration: 7d, 12h; none: no stream), in whole seconds."""
    if value is None:
        return 0
    try:
        seconds = parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(f"{exc} (how long the stream keeps posts: 7d, 12h)", path,
                          option="stream") from None
    if seconds < 60:
        raise ConfigError(f"{shown(value)}: a stream keeps posts for a minute or more "
                          "(7d, 12h)", path, option="stream")
    return int(seconds)


def default_management_url(broker: str) -> str:
    """http://<broker host>:15672/api (https and 15671 for amqps)."""
    parts = urlsplit(broker)
    scheme, port = MANAGEMENT_PORTS.get(parts.scheme, ("http", 15672))
    return f"{scheme}://{_host(parts.hostname or 'localhost')}:{port}/api"


def load_switch(path: str) -> Switch:
    """Read and validate a switch description; ConfigError names file and key."""
    return switch_from_data(_parse(_read(path), path), path)


# --------------------------------------------------------------------------- editing

_USERS_LINE = re.compile(r"^users:[ \t]*(#.*)?$")
_ENTRY = re.compile(r"^(?P<indent>[ \t]+)(?P<key>\"[^\"]*\"|'[^']*'|[^\s#:'\"][^:#]*?)"
                    r"[ \t]*:[ \t]*(?P<value>[^#\s]*)")


def _key_text(name: str) -> str:
    """``name`` as a YAML key that reads back as the same string."""
    if yaml.safe_load(f"{name}: x") == {name: "x"}:
        return name
    return f'"{name}"'


def _users_block(lines: list[str]) -> tuple[int, int] | None:
    """(index of the ``users:`` line, index after its block) in block style."""
    for i, line in enumerate(lines):
        if _USERS_LINE.match(line):
            end = i + 1
            last = i + 1
            while end < len(lines):
                stripped = lines[end].strip()
                if lines[end][:1] in (" ", "\t") and stripped:
                    last = end + 1
                elif stripped and not stripped.startswith("#"):
                    break
                end += 1
            return i, last
    return None


def _edit_lines(lines: list[str], name: str, role: str | None) -> list[str] | None:
    block = _users_block(lines)
    if block is None:
        return None
    start, end = block
    indent, at = "  ", None
    for i in range(start + 1, end):
        m = _ENTRY.match(lines[i])
        if not m:
            continue
        indent = m.group("indent")
        key = yaml.safe_load(m.group("key") + ": x")
        if isinstance(key, dict) and name in key:
            at = i
    new = f"{indent}{_key_text(name)}: {role}\n" if role else None
    out = list(lines)
    if at is not None:
        out[at:at + 1] = [new] if new else []
    elif new:
        if end > 0 and not out[end - 1].endswith("\n"):
            out[end - 1] += "\n"
        out.insert(end, new)
    return out


def write_file(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` at once (a temporary file renamed over
    it, keeping its mode): never half-written."""
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(prefix=".switch-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _set_user(path: str, name: str, role: str | None) -> Switch:
    text = _read(path)
    data = _parse(text, path)
    current = switch_from_data(data, path)
    wanted = dict(current.users)
    if role is None:
        wanted.pop(name, None)
    else:
        wanted[name] = role
    if wanted == current.users:
        return current
    edited = _edit_lines(text.splitlines(keepends=True), name, role)
    new_text = "".join(edited) if edited is not None else ""
    parsed = _parse(new_text, path) if edited is not None else None
    if not isinstance(parsed, dict) or (parsed.get("users") or {}) != wanted:
        log.warning("%s: users are not a plain block; rewriting the whole file "
                    "(its comments are lost)", path)
        data = dict(data)
        data["users"] = wanted
        new_text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    switch = switch_from_data(_parse(new_text, path), path)
    write_file(path, new_text)
    return switch


def add_user_to_file(path: str, name: str, role: str) -> Switch:
    """Add ``name: role`` to the description (or change the role); comments kept."""
    check_user(name, role, path)
    return _set_user(path, name, role)


def remove_user_from_file(path: str, name: str) -> Switch:
    """Remove ``name`` from the users of the description; comments kept."""
    return _set_user(path, name, None)
