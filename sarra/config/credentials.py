"""Passwords live in one file, ``credentials.conf``, and nowhere else.

Each line holds one URL with its password, optionally followed by details
separated by commas (and/or blanks)::

    amqp://alice:secret@broker.example.com/
    sftp://bob@host.example.com/ ssh_keyfile=/home/bob/.ssh/id_ed25519
    ftp://carol:pw@ftp.example.com/,passive,binary
    ftps://dave:pw@ftp.example.com/ ca_file=/etc/ssl/our-ca.pem
    https://data.example.com/ bearer_token=abc123

Configurations name ``amqp://alice@broker.example.com/``;
``Credentials.lookup`` fills the password in by scheme, user, host and port.
``mask`` hides a password anywhere it must be shown (logs, status, help).
"""
import logging
import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from .paths import config_dir

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "http": 80, "https": 443,
                 "sftp": 22, "ftp": 21, "ftps": 21,
                 "mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}

# scheme://user:password@  (password up to the last '@' before '/' or blank)
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):[^/\s]*@")
# the same, password up to the last '@' of the word: for masking, where a
# password with a raw '/' must not leak either
_USERINFO_WIDE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(\S*)@")

# bare detail words and what they mean
_FLAGS = {"passive": ("passive", True), "active": ("passive", False),
          "binary": ("binary", True), "ascii": ("binary", False),
          "tls": ("tls", True), "prot_p": ("prot_p", True)}
_KEYS = ("ssh_keyfile", "bearer_token", "ca_file")


def _mask_match(match: re.Match) -> str:
    head, slash, tail = match.group(2).partition("/")
    if slash and head.isdigit():
        # host:port/path...@ : no password here; look further along
        return f"{match.group(1)}:{head}/" + mask(tail + "@")
    return f"{match.group(1)}:***@"


def mask(url: str) -> str:
    """``url`` (or any text holding URLs) with every password as '***'.

    Errs on the side of hiding: a URL with a port and an '@' in its path
    (``http://h:8080/a@b``) is shown as is, but ``scheme://user:x/y@host``
    is taken as a password containing a '/'.
    """
    if not isinstance(url, str):
        return url
    return _USERINFO_WIDE.sub(_mask_match, url)


def strip_password(url: str) -> str:
    """``url`` with its password (and the ':' before it) removed."""
    if not isinstance(url, str):
        return url
    return _USERINFO.sub(r"\1@", url)


def url_user(url: str | None) -> str | None:
    """The user a URL names (%-decoded), None when it names none."""
    if not url:
        return None
    try:
        user = urlsplit(url).username
    except ValueError:
        return None
    return unquote(user) if user else None


def broker_user(url: str | None) -> str:
    """Who a broker URL logs in as: its user, 'anonymous' when it names none
    (exchanges xs_<user>, queues q_<user>...)."""
    return url_user(url) or "anonymous"


@dataclass(frozen=True)
class _Key:
    scheme: str
    user: str | None
    host: str
    port: int | None


def _split_userinfo(url: str) -> tuple[str, str | None, str | None, str]:
    """(scheme '://', user, password, rest) as written (still %-encoded)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("no scheme")
    end = len(rest)
    for stop in "/?#":
        pos = rest.find(stop)
        if pos != -1:
            end = min(end, pos)
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return scheme + sep, None, None, authority + tail
    user, colon, password = userinfo.partition(":")
    return scheme + sep, user, (password if colon else None), hostport + tail


def _key(url: str) -> _Key:
    parts = urlsplit(strip_password(url))
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme)
    user = unquote(parts.username) if parts.username else None
    return _Key(scheme, user, (parts.hostname or "").lower(), port)


@dataclass
class _Entry:
    url: str
    key: _Key
    details: dict = field(default_factory=dict)


def _parse_details(words: list[str], where: str) -> dict:
    details: dict = {}
    for word in words:
        name, eq, value = word.partition("=")
        if eq and name in _KEYS:
            details[name] = value
        elif not eq and word in _FLAGS:
            key, flag = _FLAGS[word]
            details[key] = flag
        else:
            log.warning("%s: unknown credential detail '%s' ignored",
                        where, name)
    return details


class Credentials:
    """The entries of a credentials file (default ``<config_dir>/credentials.conf``).

    A missing file means no credentials; a malformed line is a ConfigError.
    """

    def __init__(self, path: str | None = None):
        self.path = path or os.path.join(config_dir(), "credentials.conf")
        self._entries: list[_Entry] = []
        if os.path.exists(self.path):
            self._check_mode()
            try:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read: {exc}", self.path) from exc
            self._parse(text)

    @classmethod
    def from_text(cls, text: str, path: str = "<credentials>") -> "Credentials":
        """Credentials from the text of a file (for tests and tools)."""
        self = cls.__new__(cls)
        self.path, self._entries = path, []
        self._parse(text)
        return self

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Credentials({self.path!r}, {len(self._entries)} entries)"

    def _check_mode(self) -> None:
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return
        if mode & 0o044:
            log.warning("%s is readable by group or others (mode %o); "
                        "chmod 600 it", self.path, mode & 0o777)

    def _parse(self, text: str) -> None:
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{self.path}:{number}"
            # details follow the URL after a space or a comma; a comma
            # before the '@' is part of the password
            first, *more = line.split(None, 1)
            rest = more[0] if more else ""
            at = first.rfind("@")
            cut = first.find(",", at + 1)
            if cut >= 0:
                first, rest = first[:cut], first[cut + 1:] + " " + rest
            url = first
            details = [w for w in re.split(r"[\s,]+", rest) if w]
            try:
                _split_userinfo(url)
                key = _key(url)
            except ValueError:
                # never echo the line: it holds a password
                raise ConfigError("not a URL (expected scheme://user:password@"
                                  "host/)", self.path, number) from None
            self._entries.append(
                _Entry(url, key, _parse_details(details, where)))

    def _find(self, url: str) -> _Entry | None:
        try:
            wanted = _key(url)
        except ValueError:
            return None
        for entry in self._entries:
            if entry.key == wanted:
                return entry
        return None

    def lookup(self, url: str) -> str:
        """``url`` with the password of the matching entry filled in.

        Entries match on scheme, user, host and port (default port per
        scheme). A URL that already has a password, or matches nothing,
        is returned unchanged.
        """
        try:
            prefix, user, password, rest = _split_userinfo(url)
        except ValueError:
            return url
        if password is not None or user is None:
            return url
        entry = self._find(url)
        if entry is None:
            return url
        _, _, secret, _ = _split_userinfo(entry.url)
        if secret is None:
            return url
        return f"{prefix}{user}:{secret}@{rest}"

    def details(self, url: str) -> dict:
        """The details (ssh_keyfile, ca_file, passive, tls...) of the entry for ``url``."""
        entry = self._find(url)
        return dict(entry.details) if entry else {}

    def users(self, url: str) -> list[str]:
        """The users that have a password for ``url``'s scheme, host and port
        (``sarra web``: who may log in to the console)."""
        try:
            wanted = _key(url)
        except ValueError:
            return []
        return [e.key.user for e in self._entries if e.key.user is not None
                and (e.key.scheme, e.key.host, e.key.port) ==
                (wanted.scheme, wanted.host, wanted.port)
                and _split_userinfo(e.url)[2] is not None]
