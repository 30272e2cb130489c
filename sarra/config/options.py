"""The declared options: name, kind, default, help, aliases.

Canonical names are the v2 snake_case ones (doc/protocol.md §12.3); sr3
camelCase names and old v2/DD2015 names are aliases, all mapped here in
``ALIASES``. A few aliases also change the value (``no_download`` is
``download`` inverted, ``kbytes_ps N`` is ``byte_rate_max N*1024``): those
are in ``ALIAS_ADJUST``.

``parse_value(option, raw)`` turns the text of a value (None for a bare
keyword) into its Python value, or raises ValueError with the reason.
"""
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from ..tools import DAEMONS as DAEMON_TOOLS
from ..tools import TOOLS
from ..readers import canonical, parse_readers
from .variables import parse_signed_duration

KINDS = ("str", "bool", "int", "float", "size", "duration", "octal", "url",
         "urls", "list", "choice")

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")

# keywords the loader handles itself (not options)
SPECIAL_KEYWORDS = ("accept", "reject", "include", "declare")


@dataclass(frozen=True)
class Option:
    name: str
    kind: str
    default: Any
    help: str
    aliases: tuple[str, ...] = ()
    repeat: bool = False
    secret: bool = False
    tools: tuple[str, ...] | None = None     # None: every tool
    choices: tuple[str, ...] = ()             # for kind 'choice'
    convert: Callable[[str | None], Any] | None = None  # replaces the kind's parser

    def applies_to(self, tool: str) -> bool:
        return self.tools is None or tool in self.tools


# ---------------------------------------------------------------- parsers

def parse_bool(raw: str | None) -> bool:
    if raw is None:
        return True
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"'{raw}' is not a boolean (true/yes/on/1, false/no/off/0)")


def is_bool_word(raw: str) -> bool:
    return raw.strip().lower() in TRUE_WORDS + FALSE_WORDS


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(raw: str) -> int:
    """Bytes: '1M' = 1048576, '512k', '1g', '100' (binary multiples)."""
    match = _SIZE.fullmatch(raw.strip())
    if not match:
        raise ValueError(f"'{raw}' is not a size (number with optional k/m/g/t)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(raw: str) -> float:
    """Seconds: '30', '5m' = 300, '1d' = 86400 (suffix s/m/h/d/w)."""
    match = _DURATION.fullmatch(raw.strip())
    if not match:
        raise ValueError(f"'{raw}' is not a duration (number with optional s/m/h/d/w)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_octal(raw: str) -> int:
    text = raw.strip().lower()
    text = text[2:] if text.startswith("0o") else text
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"'{raw}' is not an octal mode (e.g. 644)") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"'{raw}' is out of range for a mode")
    return mode


def parse_url(raw: str) -> str:
    url = raw.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        # the text may hold a password: do not echo it
        raise ValueError("not a valid URL (bad port, or a password with a raw "
                         "'/', ':' or '@': %-encode it)") from None
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", parts.scheme or ""):
        raise ValueError("not a URL: no scheme (e.g. amqp://user@host/)")
    if parts.scheme.lower() in ("amqp", "amqps") and not parts.hostname:
        raise ValueError("an amqp URL needs a host (amqp://user@host/)")
    return url


def parse_urls(raw: str) -> str:
    """One URL, or several separated by commas (the nodes of a cluster, tried
    in turn); kept as given, without spaces."""
    items = [item.strip() for item in raw.split(",")]
    if len(items) > 1 and not all(items):
        raise ValueError("an empty address in the list (URL,URL,...)")
    return ",".join(parse_url(item) for item in items)


def split_urls(value: str | None) -> list[str]:
    """The URLs of a ``urls`` option's value (its comma-separated list)."""
    return [item for item in (value or "").split(",") if item]


_SUM_NAMES = {"md5": "d", "sha512": "s", "md5name": "n", "random": "0",
              "xxh128": "x", "cod,md5": "z,d", "cod,sha512": "z,s",
              "cod,xxh128": "z,x"}
# WIS2's methods that have no letter are named in full (sarra/checksum.py)
_WIS2_SUMS = ("sha256", "sha384", "sha3-256", "sha3-384", "sha3-512")
_SUM_LETTERS = ("d", "s", "n", "0", "x", "z,d", "z,s", "z,x") + _WIS2_SUMS + tuple(
    f"z,{name}" for name in _WIS2_SUMS)


def parse_sum(raw: str | None) -> str:
    """A posting checksum: a letter of doc/protocol.md §4.1, or its sr3 name."""
    if raw is None:
        raise ValueError("needs a value")
    text = raw.strip().replace(" ", "")
    text = _SUM_NAMES.get(text.lower(), text)
    if text not in _SUM_LETTERS:
        raise ValueError(f"unknown checksum '{raw}' (use one of "
                         f"{', '.join(_SUM_LETTERS + tuple(_SUM_NAMES))})")
    return text


def parse_topic(raw: str | None) -> str:
    """A whole topic: AMQP words, or MQTT levels ('/' becomes '.')."""
    if raw is None or not raw.strip().strip("./"):
        raise ValueError("needs a topic")
    words = raw.strip().strip("/").replace("/", ".").split(".")
    if any(w in ("", "#", "*", "+") for w in words):
        raise ValueError(f"'{raw}' is not a topic (empty words or wildcards)")
    return ".".join(words)


_DATA_ID_FIELD = re.compile(r"\{([^{}]*)\}")


def parse_data_id(raw: str | None) -> str:
    """A wis2_data_id template: text with {relpath} and {basename}."""
    if raw is None or not raw.strip():
        raise ValueError("needs a template ({relpath}, {basename})")
    unknown = [f for f in _DATA_ID_FIELD.findall(raw) if f not in ("relpath", "basename")]
    if unknown:
        raise ValueError(f"unknown field {{{unknown[0]}}} (use {{relpath}} or {{basename}})")
    return raw.strip()


_EVENTS = ("create", "delete", "link", "modify")


def parse_events(raw: str | None) -> str:
    if raw is None:
        raise ValueError("needs a value")
    words = [w for w in re.split(r"[|,\s]+", raw.strip()) if w]
    bad = [w for w in words if w not in _EVENTS]
    if bad or not words:
        raise ValueError(f"unknown event(s) {', '.join(bad) or raw!r} "
                         f"(use {'|'.join(_EVENTS)})")
    return "|".join(words)


def parse_strip(raw: str | None) -> str:
    """A count of leading path components, or a regex to remove."""
    if raw is None:
        raise ValueError("needs a value")
    text = raw.strip()
    if not text.isdigit():
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"neither a count nor a valid regex: {exc}") from None
    return text


def parse_reserve(raw: str | None) -> int | float:
    """Free space to keep: a size (bytes, an int), or 'N%' of the file
    system (a float, the share: '1%' = 0.01)."""
    if raw is None:
        raise ValueError("needs a value")
    text = raw.strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1]) / 100
        except ValueError:
            raise ValueError(f"'{raw}' is not a percentage (e.g. 1%)") from None
        if not 0 <= share < 1:
            raise ValueError(f"'{raw}' is not a percentage below 100%")
        return share
    return parse_size(text)


def parse_nodupe(raw: str | None) -> float:
    """A duplicate-cache lifetime; on (or bare) = 300 s, off = 0."""
    if raw is None or raw.strip().lower() in TRUE_WORDS:
        return 300.0
    if raw.strip().lower() in FALSE_WORDS:
        return 0.0
    return parse_duration(raw)


# sr3's logEvents, and the hook stage at which sarra's log hook writes each
# (None: sarra logs it anyway: the housekeeping line every heartbeat, the
# start and stop lines, each rejection unless log_reject is off, and what
# came in each batch in the heartbeat's counts)
LOG_EVENTS = {"after_accept": "on_message", "after_work": "on_file",
              "after_post": "on_post", "post": "on_post", "on_housekeeping": None,
              "on_start": None, "on_stop": None, "reject": None, "gather": None}
# 'all': every point
ALL_EVENTS = ("after_accept", "after_work", "after_post", "on_housekeeping")


def parse_log_events(raw: str | None) -> str | None:
    """sr3's logEvents: event names, comma-separated ('none' or '' for none;
    'all' for every point)."""
    if raw is None:
        raise ValueError("needs a value")
    words = [w for w in re.split(r"[|,\s]+", raw.strip().lstrip("+")) if w]
    if [w.lower() for w in words] in ([], ["none"], ["off"]):
        return None
    words = [e for w in words for e in (ALL_EVENTS if w == "all" else (w,))]
    bad = [w for w in words if w not in LOG_EVENTS]
    if bad:
        raise ValueError(f"event(s) {', '.join(bad)} not logged by sarra: it logs "
                         f"{', '.join(LOG_EVENTS)} or all (on_housekeeping, on_start, "
                         "on_stop always; errors and warnings always; reject: log_reject)")
    return ",".join(dict.fromkeys(words))


def combine_log_events(current: str | None, raw: str) -> str | None:
    """``logEvents +A,B`` adds to the events in force, ``-A`` removes (sr3)."""
    text = raw.strip()
    have = (current or "").split(",") if current else []
    change = (parse_log_events(text[1:]) or "").split(",")
    if text.startswith("+"):
        have += [e for e in change if e and e not in have]
    elif text.startswith("-"):
        have = [e for e in have if e not in change]
    else:
        return parse_log_events(raw)
    return ",".join(have) or None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": lambda raw: raw, "int": lambda raw: _number(int, raw, "an integer"),
    "float": lambda raw: _number(float, raw, "a number"),
    "size": parse_size, "duration": parse_duration, "octal": parse_octal,
    "url": parse_url, "urls": parse_urls, "list": lambda raw: raw,
}


def _number(kind: type, raw: str, what: str) -> Any:
    try:
        return kind(raw.strip())
    except ValueError:
        raise ValueError(f"'{raw}' is not {what}") from None


def parse_value(option: Option, raw: str | None) -> Any:
    """The value of ``option`` given as ``raw`` (None: bare keyword)."""
    if option.convert is not None:
        return option.convert(raw)
    if option.kind == "bool":
        return parse_bool(raw)
    if raw is None:
        raise ValueError("needs a value")
    if option.kind == "choice":
        if raw.strip().lower() not in option.choices:
            raise ValueError(f"'{raw}' is not one of {', '.join(option.choices)}")
        return raw.strip().lower()
    return _PARSERS[option.kind](raw)


# ----------------------------------------------------------------- table

# the option scopes, from what each tool is (sarra/tools.py)
POSTERS = tuple(t.name for t in TOOLS if t.announces)
CONSUMERS = tuple(t.name for t in TOOLS if t.consumes)
PLACERS = tuple(t.name for t in TOOLS if t.places)
DAEMONS = tuple(t.name for t in TOOLS if t.daemon)

_O = Option
_DECLARED = [
    # -- consuming
    _O("broker", "urls", None, "broker to consume from (amqp://user@host/; the "
       "password comes from credentials.conf; several nodes of a cluster: "
       "URL,URL,... tried in turn); dd_post, dd_watch: to post to when "
       "post_broker is not set"),
    _O("exchange", "str", "xpublic", "exchange to bind the queue to", tools=CONSUMERS),
    _O("exchange_suffix", "str", None, "bind to xs_<user>_<suffix>",
       ("exchangeSuffix",), tools=CONSUMERS),
    _O("topic_prefix", "str", "v02.post", "topic prefix of the messages consumed",
       ("topicPrefix",), tools=CONSUMERS),
    _O("subtopic", "list", [], "binding pattern after topic_prefix; repeatable "
       "(none given: '#')", repeat=True, tools=CONSUMERS),
    _O("queue_name", "str", None, "queue name (default "
       "q_<user>.<tool>.<config>.<random>)", ("queueName", "queue"), tools=CONSUMERS),
    _O("durable", "bool", True, "queue survives a broker restart", tools=CONSUMERS),
    _O("queue_type", "choice", "classic", "type of the queue declared: classic, quorum "
       "(replicated over a cluster's nodes), stream (read from an offset)",
       ("queueType",), tools=CONSUMERS, choices=("classic", "quorum", "stream")),
    _O("stream", "str", None, "read the switch's stream of this name (its "
       "announcements, kept for days) instead of a queue of our own", tools=CONSUMERS),
    _O("replay_from", "str", None, "where a stream is first read from: first, last, "
       "next, a duration ago (1h), an ISO time or an offset; then after the last "
       "message settled", ("replayFrom",), tools=CONSUMERS),
    _O("expire", "duration", 300.0, "queue expiry when unused (x-expires)",
       tools=CONSUMERS),
    _O("message_ttl", "duration", 0.0, "message lifetime in the queue "
       "(x-message-ttl; 0 = none)", ("messageAgeMax",), tools=CONSUMERS),
    _O("prefetch", "int", 25, "messages delivered ahead of acknowledgement",
       tools=CONSUMERS),
    _O("reset", "bool", False, "delete and recreate the queue (and caches) "
       "on start", tools=CONSUMERS),
    _O("heartbeat", "duration", 300.0, "housekeeping interval",
       ("housekeeping",), tools=DAEMON_TOOLS),
    _O("broker_heartbeat", "duration", 120.0, "AMQP connection heartbeat"),
    # -- TLS: brokers (amqps, mqtts, wss), https, ftps, the management API
    _O("ca_file", "str", None, "CA certificate (PEM) the certificates of this "
       "configuration's TLS servers are verified against, when their line in "
       "credentials.conf has no ca_file= (default: the system's CAs)", ("caFile",)),
    _O("tls_verify", "bool", True, "verify TLS servers' certificates and host names "
       "(off: nothing verified, a warning at every start; sr3: tlsRigour lax)",
       ("tlsRigour",)),
    # -- posting
    _O("post_broker", "urls", None, "broker to publish to (URL,URL,...: the "
       "nodes of a cluster, tried in turn)", ("postBroker",)),
    _O("post_exchange", "str", None, "exchange(s) to publish to, comma-separated; "
       "${SOURCE} is each message's source (default xs_<user>; dd_sara: xpublic)",
       ("postExchange",)),
    _O("post_exchange_suffix", "str", None, "publish to xs_<user>_<suffix>",
       ("post_exchangeSuffix", "postExchangeSuffix")),
    _O("post_exchange_split", "int", 0, "spread posts over N exchanges, "
       "<post_exchange>00, 01... up to N-1, each file always to the same one "
       "(chosen by its checksum: redundant posts of a file reach one dd_winnow); "
       "0 or 1: one exchange", ("post_exchangeSplit", "postExchangeSplit")),
    _O("post_topic_prefix", "str", "v02.post", "topic prefix of published "
       "messages (v03...: publish v03)", ("post_topicPrefix",
                                          "postTopicPrefix")),
    _O("post_format", "choice", None, "wire form of posts: v02, v03 or wis2 (WIS2 "
       "notification messages, doc/protocol.md §16); unset: v03 when "
       "post_topic_prefix starts with v03, else v02", ("postFormat",),
       choices=("v02", "v03", "wis2")),
    _O("post_topic", "str", None, "the whole topic of every post (words separated "
       "by '.' or '/'), instead of post_topic_prefix and the file's directories: "
       "a WIS2 topic below post_exchange, e.g. a.wis2.<centre>.data.core.<...>",
       ("postTopic",), convert=parse_topic),
    _O("wis2_metadata_id", "str", None, "post_format wis2: the metadata_id of every "
       "WNM (the WCMP2 record of the dataset, urn:wmo:md:<centre>:<name>)"),
    _O("wis2_data_id", "str", "{relpath}", "post_format wis2: each WNM's data_id, "
       "a template of {relpath} (the file's path, no leading /) and {basename}",
       convert=parse_data_id),
    _O("post_base_url", "url", None, "base URL written into posts",
       ("post_baseUrl", "postBaseUrl", "url")),
    _O("post_base_dir", "str", None, "local prefix removed from paths to form "
       "the relpath", ("post_baseDir", "postBaseDir")),
    _O("base_dir", "str", None, "local root corresponding to the URL tree",
       ("baseDir", "document_root")),
    _O("destination", "url", None, "where dd_sender sends files: "
       "sftp://, ftp:// or ftps://user@host[:port]/directory/ (password or ssh_keyfile from "
       "credentials.conf)", ("sendTo",), tools=("sender",)),
    _O("sum", "str", "s", "checksum for posts: d s n 0 x z,d z,s z,x "
       "(or md5 sha512 md5name random xxh128), or WIS2's sha256 sha384 sha3-256 "
       "sha3-384 sha3-512", ("identity",),
       convert=parse_sum),
    _O("persistent", "bool", True, "publish persistent messages"),
    _O("outlet", "choice", "post", "where posts go: post (the broker), json (a v03 "
       "JSON message per line on standard output, no broker) or url (the URL of "
       "each file per line on standard output, no broker)", tools=POSTERS,
       choices=("post", "json", "url")),
    # -- routing and anti-spoofing
    _O("source", "str", None, "source to write into posts"),
    _O("cluster", "str", None, "name of this switch (from_cluster)"),
    _O("to_clusters", "str", None, "destination clusters, comma-separated "
       "(ALL = every one)", ("toClusters", "to")),
    _O("readers", "str", "", "who may read the files posted: users of the switches "
       "the data reaches, comma-separated, each optionally user@cluster (a user of "
       "that switch only); travels as the readers header; empty: public",
       tools=POSTERS, convert=lambda raw: canonical(parse_readers(raw))),
    _O("private_dir", "str", None, "a switch's dd_sara: where restricted files go "
       "(under <private_dir>/<readers>/, never in the public tree); unset: restricted "
       "posts are refused", tools=("sara",)),
    _O("private_base_url", "url", None, "a switch's dd_sara: the URL private_dir is "
       "served at (restricted posts are announced at <private_base_url><readers>/)",
       tools=("sara",)),
    _O("private_exchange", "str", "xprivate", "a switch's dd_sara: where restricted "
       "posts are announced (its links read it), and to xprivate_<reader> for each "
       "reader of this switch whose exchange exists", tools=("sara",)),
    _O("source_from_exchange", "bool", False, "set source from the xs_<user> "
       "exchange the message came from", ("sourceFromExchange",), tools=CONSUMERS),
    _O("msg_to_clusters", "str", None, "on a link between switches: pass only posts "
       "whose to_clusters names one of these (comma-separated; ALL passes "
       "everywhere), and none from this cluster", ("msgToClusters",), tools=CONSUMERS),
    # -- metadata
    _O("preserve_time", "bool", True, "copy modification times",
       ("timeCopy",)),
    _O("preserve_mode", "bool", True, "copy permission bits", ("permCopy",)),
    _O("default_mode", "octal", 0o644, "mode of files when not copied",
       ("permDefault",)),
    _O("default_dir_mode", "octal", 0o755, "mode of directories created",
       ("permDirDefault",)),
    # -- watching and posting files
    _O("path", "list", [], "directory or file to watch/post; dd_poll: remote directory "
       "to list, under poll_url's path unless absolute; repeatable",
       repeat=True, tools=POSTERS + ("poll",)),
    _O("follow_symlinks", "bool", False, "post the targets of symbolic links",
       ("followSymlinks",), tools=POSTERS),
    _O("realpath_post", "bool", False, "post each file under its real path (symbolic "
       "links in it resolved, post_base_dir too) and descend through linked "
       "directories", ("realpathPost",), tools=POSTERS),
    _O("recursive", "bool", True, "descend into directories named on the command line "
       "(dd_post; dd_watch always watches whole trees); dd_poll: list the "
       "subdirectories of each path too", tools=POSTERS + ("poll",)),
    _O("post_on_start", "bool", False, "on a first start, post every file present "
       "(later starts always post what changed meanwhile)",
       ("postOnStart",), tools=("watch",)),
    _O("events", "str", "create|delete|link|modify", "file events to post",
       ("fileEvents",), tools=("watch",), convert=parse_events),
    _O("sleep", "duration", 0.0, "polling interval when polling (0: 1 s); dd_poll: "
       "time between the starts of two rounds", tools=("watch", "poll")),
    _O("poll_url", "url", None, "the server dd_poll lists: http(s)://, sftp://, ftp:// or "
       "ftps://[user@]host[:port]/[directory/] (password from credentials.conf)",
       ("pollUrl",), tools=("poll",)),
    _O("file_age_min", "duration", 0.0, "announce a new or changed remote file only once "
       "it has been listed unchanged (size and time) for this long (0: at once)",
       ("fileAgeMin",), tools=("poll",)),
    _O("temp_pattern", "list", [".*"], "file names (globs) never posted: files "
       "being written under a temporary name; repeatable (the inflight suffix "
       "is added)", ("tempPattern",), repeat=True, tools=("watch",)),
    _O("force_polling", "bool", False, "poll instead of using OS events",
       ("forcePolling",), tools=("watch",)),
    _O("inflight", "str", ".tmp", "temporary name while writing: .tmp "
       "(suffix), . (prefix), tmp/ (subdirectory), NONE; for dd_watch also "
       "a number: seconds a file must stay unchanged before it is posted", ("lock",)),
    # -- transfers
    _O("attempts", "int", 3, "tries of a transfer before it goes to retry", tools=PLACERS),
    _O("quarantine_deaths", "int", 3, "a message that comes again after this many "
       "processes died with it in hand is kept aside in the quarantine instead of "
       "handled again (0 = never)", ("quarantineDeaths",),
       tools=tuple(t.name for t in TOOLS if t.daemon and t.consumes)),
    _O("retry_ttl", "duration", 172800.0, "how long failed transfers are tried "
       "again before they are given up (0 = forever)", ("retryTtl",),
       tools=CONSUMERS),
    _O("retry_max", "int", 0, "tries of a failed transfer (each of 'attempts') before "
       "it is given up and reported so (0 = until retry_ttl)", ("retryMax",),
       tools=CONSUMERS),
    _O("retry_delay", "duration", 5.0, "wait before the first retry; doubles at "
       "each failure, up to 10 minutes", ("retryDelay",), tools=CONSUMERS),
    _O("timeout", "duration", 30.0, "timeout of one network operation"),
    _O("bufsize", "size", 1048576, "transfer buffer size", ("bufSize",)),
    _O("blocksize", "size", 1, "partition files in blocks of this size "
       "(1 = never partition, 0 = choose by file size)", ("blockSize",)),
    _O("instances", "int", 1, "processes sharing the queue", tools=DAEMON_TOOLS),
    _O("fsync", "bool", True, "put what each batch wrote (downloaded files, their "
       "renames, the retry and state files) on stable storage before its messages are "
       "acknowledged: one file-system sync per batch (off: a scratch target)",
       tools=CONSUMERS),
    _O("inplace", "bool", True, "assemble received parts into the file itself",
       ("inPlace",), tools=PLACERS),
    _O("message_rate_max", "float", 0.0, "messages per second, all instances of the "
       "configuration together (0 = unlimited)", ("post_rate_limit", "messageRateMax")),
    _O("byte_rate_max", "size", 0, "bytes per second of transfers, all instances of the "
       "configuration together (0 = unlimited)", ("byteRateMax",), tools=PLACERS),
    _O("transfer_rate_min", "size", 1024, "slowest download kept going, in bytes per "
       "second over each span of 'timeout' seconds (the first is a grace period); a "
       "slower one is cut off and retried later (0 = no minimum)",
       ("transferRateMin",), tools=("subscribe", "sara")),
    _O("download_size_max", "size", 1 << 30, "ceiling of a download whose size the "
       "post does not announce: cut off there and not retried (0 = no ceiling)",
       ("downloadSizeMax",), tools=("subscribe", "sara")),
    _O("disk_reserve", "size", 0.01, "free space downloads leave on the file system "
       "they write to: a size, or N% of the file system (0 = none); short of it, a "
       "download stops and is retried later", ("diskReserve",),
       tools=("subscribe", "sara"), convert=parse_reserve),
    _O("nodupe_ttl", "duration", 0.0, "duplicate suppression lifetime "
       "(on = 300 s, off = 0)", ("suppress_duplicates", "cache",
                                  "no_duplicates", "nodupeTtl"),
       convert=parse_nodupe),
    _O("nodupe_basis", "choice", "path", "duplicate key: relpath, file name "
       "or data (checksum only)", ("suppress_duplicates_basis",
                                   "nodupeBasis"),
       choices=("path", "name", "data")),
    # -- health: sarra status, check, metrics and sanity judge the daemons by these
    _O("lag_warn", "duration", 60.0, "lag (when the last batch was handled minus the "
       "pubtime of its last message) above which a configuration is lagging",
       ("runStateThreshold_lag",), tools=DAEMONS),
    _O("stuck_after", "duration", 300.0, "an instance that wrote no figures for this "
       "long, or whose configuration handled nothing this long while messages wait in "
       "its queue, is stuck (sarra sanity restarts it)", ("runStateThreshold_hung",),
       tools=DAEMONS),
    _O("idle_after", "duration", 60.0, "nothing handled for this long, nothing waiting: "
       "idle", ("runStateThreshold_idle",), tools=DAEMONS),
    _O("failing_ratio", "float", 0.5, "share of the messages handled over the last minute "
       "that failed (queued for retry, given up) from which a configuration is failing "
       "(0: never by that share)", tools=DAEMONS),
    _O("management_url", "str", None, "RabbitMQ management API the depth of the queue is "
       "read from, as the broker's user (default http://<broker host>:15672/api; "
       "off: not read)", tools=tuple(t.name for t in TOOLS if t.daemon and t.consumes)),
    # -- reporting
    _O("report_back", "bool", True, "send log messages back to the source",
       ("report",), tools=CONSUMERS),
    _O("report_exchange", "str", None, "exchange for log messages (default "
       "xs_<user>; dd_sara: xreport_in, where the switch's log router takes them)",
       ("reportExchange",), tools=CONSUMERS),
    # -- selection and placement
    _O("accept_unmatch", "bool", None, "accept messages no accept/reject "
       "matched (default per tool)", ("acceptUnmatched", "accept_unmatched",
                                      "acceptUnmatch")),
    _O("mirror", "bool", False, "reproduce the relpath tree under directory",
       tools=PLACERS),
    _O("strip", "str", "0", "remove N leading path components, or a regex, "
       "from relpath", convert=parse_strip),
    _O("flatten", "str", "/", "replace '/' in relpath by this string", tools=PLACERS),
    _O("directory", "str", ".", "local destination root (${YYYYMMDD}... "
       "expanded per message)", tools=PLACERS),
    _O("rename", "str", None, "force the destination name (a directory if "
       "it ends with '/')", tools=PLACERS),
    _O("overwrite", "bool", False, "download even when the local file has "
       "the same checksum", tools=PLACERS),
    _O("delete", "bool", False, "delete the file at its source once its download is "
       "verified (its checksum matched; file: removed, sftp, ftp, ftps: removed on the "
       "server, http(s): an HTTP DELETE)", tools=("subscribe", "sara")),
    _O("download", "bool", True, "fetch the files (off: consume messages only)",
       tools=PLACERS),
    # -- operation
    _O("debug", "bool", False, "log at debug level"),
    _O("log_rotate", "int", 5, "rotated log files kept per instance", ("logRotateCount",),
       tools=DAEMON_TOOLS),
    _O("log_rotate_interval", "duration", 86400.0, "how often an instance's log file "
       "is rotated", ("logRotateInterval",), tools=DAEMON_TOOLS),
    _O("log_level", "choice", "info", "logging level", ("logLevel", "loglevel"),
       choices=("debug", "info", "warning", "error", "critical")),
    _O("hostname", "str", None, "host name written in log messages "
       "(default: this host)", tools=CONSUMERS),
    _O("vip", "str", None, "one instance works at a time, on any machine, and another "
       "takes over when it dies: a lease held on the broker (sr3's floating IP address "
       "is not needed: any value)", tools=("watch", "poll")),
    _O("follow", "bool", False, "keep reading new log messages", tools=("log",)),
    _O("format", "choice", "table", "how dd_log shows log messages: a table, or JSON "
       "lines", tools=("log",), choices=("table", "json")),
    _O("ledger_max_age", "duration", 604800.0, "how long dd_log keeps the log messages "
       "it read in its ledger (by when it read them; 0: keeps no ledger)",
       tools=("log",)),
    _O("file", "str", None, "answer from the ledger: every log message about this file "
       "(a relpath, a file name, or a pattern with * ? [...]), after reading what waits",
       tools=("log",)),
    _O("log_events", "str", None, "a line in the log for each message at these points "
       "(sr3's logEvents): after_accept (accepted), after_work (its work done: each file "
       "received or sent), after_post (posted), all; on_housekeeping, on_start, on_stop "
       "and reject are always logged (reject: unless log_reject is off); comma-separated, "
       "+EVENTS adds, -EVENTS removes, none for none", ("logEvents",),
       convert=lambda raw: parse_log_events(raw)),
    _O("log_reject", "bool", True, "log each message rejected, with the reason (INFO; "
       "off: rejections are counted, not logged)", ("logReject",)),
    _O("var_time_offset", "duration", 0.0, "added to the time of every date and time "
       "variable (${%Y%m%d}, ${YYYYMMDD}...): -5m is five minutes ago",
       ("varTimeOffset",), convert=parse_signed_duration),
    _O("sundew_compat_regex_first_match_is_zero", "bool", False, "${0} in directory "
       "and rename is the first group of the accept pattern (Sundew's numbering), "
       "not the whole match", tools=PLACERS),
    # -- configuration fragments included from URLs (include https://...)
    _O("include_http", "bool", False, "allow 'include http://...' (unencrypted: anyone on "
       "the way may change the fragment); https only otherwise", ("includeHttp",)),
    _O("include_refresh", "duration", 3600.0, "how often a running instance fetches the "
       "fragments it included from URLs again (a changed one is cached for the next "
       "start, and the log says so; 0 = only at start)", ("includeRefresh",),
       tools=DAEMON_TOOLS),
    # -- hooks: package.module:Class or 'exec COMMAND ARGS...'
    _O("on_message", "list", [], "hook before work (PASS/SKIP); repeatable",
       repeat=True),
    _O("on_part", "list", [], "hook after each part; repeatable", repeat=True),
    _O("on_file", "list", [], "hook after a whole file; repeatable",
       repeat=True),
    _O("on_post", "list", [], "hook before each publish; repeatable",
       repeat=True),
]

OPTIONS: dict[str, Option] = {o.name: o for o in _DECLARED}

# declared (so that configurations written for the whole feature set load)
# but not acted upon yet: setting one draws a warning, never silence
NOT_YET: frozenset = frozenset()
# options refused where they do not apply, with what to do instead
REFUSED_ELSEWHERE: dict[str, str] = {
    "vip": "sarra needs no floating IP: instances sharing a queue (on any machine) "
           "split the work and take over from each other; dd_watch and dd_poll take a "
           "lease on the broker (vip in their configurations)",
}


def _invert(raw: str | None) -> str:
    return "false" if parse_bool(raw) else "true"


def _tls_rigour(raw: str | None) -> str:
    """sr3's tlsRigour: lax verifies nothing; medium and strict verify (sarra
    offers TLS 1.2 or later only, as strict asks)."""
    word = (raw or "").strip().lower()
    if word == "lax":
        return "off"
    if word in ("medium", "strict"):
        return "on"
    raise ValueError(f"'{raw}' is not a tlsRigour (lax, medium or strict)")


def _kbytes(raw: str | None) -> str | None:
    if raw is None or not re.fullmatch(r"\s*\d+(\.\d*)?\s*", raw):
        return raw
    return str(int(float(raw) * 1024))


# alias -> canonical name: camelCase (sr3) and old names
ALIASES: dict[str, str] = {alias: o.name for o in _DECLARED for alias in o.aliases}
ALIASES.update({"no_download": "download", "notify_only": "download",
                "kbytes_ps": "byte_rate_max"})

# aliases whose value is rewritten before parsing
ALIAS_ADJUST: dict[str, Callable[[str | None], str | None]] = {
    "no_download": _invert, "notify_only": _invert, "kbytes_ps": _kbytes,
    "tlsRigour": _tls_rigour,
}
# aliases of bool options whose value is a word of their own, never left out
WORD_ALIASES = frozenset({"tlsRigour"})


# sr3 and v2 keywords with no option of their own, and what sarra does
# instead: read, with a warning saying why they change nothing
IGNORED: dict[str, str] = {
    "batch": "sarra keeps its transfer connections open (no reconnection every N "
             "files) and takes up to 'prefetch' messages at a time: set prefetch to "
             "change that",
}

# keywords naming an sr3 flow callback or a v2 plugin (the on_* hook options
# too, for the names below)
PLUGIN_KEYWORDS = ("callback", "callback_prepend", "flowcb", "flowCallback",
                   "flowCallbackPrepend", "plugin", "on_heartbeat", "on_housekeeping")
# what sarra does for an sr3 callback or a v2 plugin named there:
#   ("log", stages): the built-in log hook writes a line to the log at those hook
#     stages (None: the stages of log_events, by default after_accept, after_work);
#   ("nodupe", basis): the duplicate cache (nodupe_ttl 300 s unless set;
#     nodupe_basis given, or left);
#   ("builtin", what): sarra does it anyway (what says with what)
PLUGINS: dict[str, tuple] = {
    "log": ("log", None), "sarracenia.flowcb.log.Log": ("log", None),
    "msg_log": ("log", ("on_message",)), "file_log": ("log", ("on_file",)),
    "post_log": ("log", ("on_post",)),
    "hb_log": ("builtin", "the housekeeping line every heartbeat"),
    "nodupe": ("nodupe", None), "nodupe.name": ("nodupe", "name"),
    "nodupe.data": ("nodupe", "data"), "nodupe.disk": ("nodupe", None),
    "hb_cache": ("builtin", "the duplicate cache's own expiry (nodupe_ttl)"),
    "retry": ("builtin", "the retry queue (retry_ttl, retry_max, retry_delay)"),
    "hb_retry": ("builtin", "the retry queue (retry_ttl, retry_max, retry_delay)"),
    "post_rate_limit": ("builtin", "message_rate_max"),
    "msg_to_clusters": ("builtin", "the msg_to_clusters option"),
    "accept.toclusters": ("builtin", "the msg_to_clusters option"),
}
FLOWCB = "sarracenia.flowcb."


def plugin_for(name: str) -> tuple | None:
    """What sarra does for the sr3 callback or v2 plugin ``name`` (PLUGINS),
    also under sr3's full names: sarracenia.flowcb.log.Log is log,
    sarracenia.flowcb.nodupe.NoDupe nodupe. None: sarra has none."""
    if name in PLUGINS:
        return PLUGINS[name]
    if not name.startswith(FLOWCB):
        return None
    rest = name[len(FLOWCB):]
    module, _, last = rest.rpartition(".")
    return PLUGINS.get(rest) or (PLUGINS.get(module) if last[:1].isupper() else None)


# the hooks sarra has, for the message that refuses any other plugin
HOOKS_INSTEAD = ("sarra runs its own hooks, not sr3 callbacks or v2 plugins: on_message, "
                 "on_file or on_post with log [FILE], size MIN MAX (accept by size), "
                 "age MAX_AGE, move_to DIRECTORY, set_complete, exec COMMAND, or a "
                 "Python class package.module:Class (doc/hooks.md); nodupe_ttl for "
                 "duplicates, log_events for log lines")


def lookup(keyword: str) -> tuple[Option, Callable | None] | None:
    """(Option, value adjuster or None) for a name or alias; None if unknown."""
    name = ALIASES.get(keyword, keyword)
    option = OPTIONS.get(name)
    if option is None:
        return None
    return option, ALIAS_ADJUST.get(keyword)


def known_names() -> list[str]:
    """Every keyword accepted: option names, aliases and loader keywords."""
    return sorted(set(OPTIONS) | set(ALIASES) | set(SPECIAL_KEYWORDS) | set(IGNORED)
                  | set(PLUGIN_KEYWORDS))
