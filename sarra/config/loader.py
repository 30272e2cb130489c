"""Reading configurations: files, includes, variables, command-line overrides.

Precedence, lowest first: option defaults, tool presets, ``default.conf``,
the configuration file (with its includes), the command line. Syntax
(doc/user-guide.md §11): ``keyword value...`` per line, '#' comment lines, a bare
keyword is True for booleans. ``accept``/``reject`` clauses capture the
placement options (directory, mirror, strip, flatten, rename) in force where
they appear. Every error names the file, line and option.

Passwords: a URL option never holds one. A password written inline in a
config file is kept aside and only ``Config.resolve_url`` hands it out
(otherwise it comes from credentials.conf).
"""
import difflib
import hashlib
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__, tools
from ..errors import ConfigError
from .credentials import Credentials, mask, strip_password, url_user
from ..tls import TlsPolicy
from . import remote
from . import variables as var
from .options import (WORD_ALIASES, IGNORED, NOT_YET, OPTIONS, PLUGIN_KEYWORDS, PLUGINS, HOOKS_INSTEAD,
                      REFUSED_ELSEWHERE,
                      LOG_EVENTS, SPECIAL_KEYWORDS, Option, combine_log_events,
                      is_bool_word, known_names, lookup, parse_bool, parse_value, plugin_for,
                      split_urls)
from .paths import TOOLS, config_dir, config_file

COMMAND_LINE = "command line"
# options whose time, group and message variables (${%Y%m%d}, ${YYYYMMDD},
# ${1}, ${SOURCE}...) are kept literally while loading: the flow replaces
# them for each message (sarra/flow/filter.py:resolve); ${SOURCE} alone is
# kept in `post_exchange` likewise
PER_MESSAGE = ("directory", "rename")
HOOK_STAGES = ("on_message", "on_part", "on_file", "on_post")
PLACEMENT = ("directory", "mirror", "strip", "flatten", "rename")
# options that change how a run shows things, not what it consumes: an ad hoc
# run keeps its queue whatever they are
DISPLAY_ONLY = frozenset(("follow", "format", "debug", "log_level", "file"))

SHORT_OPTIONS = {"-b": "broker", "-ex": "exchange", "-u": "post_base_url",
                 "-pb": "post_broker", "-pbu": "post_base_url",
                 "-pbd": "post_base_dir", "-c": "config", "-f": "follow"}



@dataclass
class Mask:
    """One accept/reject clause and the placement in force where it appears."""
    kind: str                  # 'accept' | 'reject'
    pattern: str
    regex: re.Pattern
    directory: str
    mirror: bool
    strip: str
    flatten: str
    rename: str | None
    file: str | None = None
    line: int | None = None
    # where the directory and rename in force were set: option -> (file, line)
    placed_at: dict = field(default_factory=dict)

    def matches(self, url: str) -> bool:
        """True when the clause matches the full URL (base_url + relpath)."""
        return self.regex.match(url) is not None


class Config:
    """The option values of one configuration of one tool.

    Every option is an attribute (``cfg.broker``, ``cfg.prefetch``...).
    URL options never contain a password: use ``resolve_url``.
    """

    def __init__(self, tool: str, name: str | None, values: dict[str, Any],
                 origins: dict[str, str], masks: list[Mask], files: list[str],
                 credentials: Credentials, secrets_: dict[str, str],
                 notes: list[str] | None = None, remote: dict[str, str] | None = None):
        self.tool, self.name = tool, name
        self.masks, self.files, self.credentials = masks, files, credentials
        self._values, self._origins, self._secrets = values, origins, secrets_
        self.notes = notes or []       # what the reader should hear of (warnings)
        self.remote = remote or {}     # URL -> text of the fragments included from URLs

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            value = self._values[name]
        except KeyError:
            raise AttributeError(f"no option '{name}'") from None
        # kept as a plain attribute: the flows read their options for each
        # file, and this method is not called again for it (``override``
        # forgets it)
        self.__dict__[name] = value
        return value

    def __repr__(self) -> str:
        return f"Config(tool={self.tool!r}, name={self.name!r}, files={self.files!r})"

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(_canonical(name), default)

    def origin(self, name: str) -> str:
        """Where the value comes from: 'file:line', 'command line' or 'default'."""
        where = self._origins.get(_canonical(name))
        if where is None:
            raise KeyError(name)
        return "default" if where == "preset" else where

    def is_set(self, name: str) -> bool:
        """True when the option was given in a file or on the command line."""
        return self._origins.get(_canonical(name), "default") not in ("default", "preset")

    @property
    def key(self) -> str:
        """The name state, logs and queue names go by: the configuration's
        name, or for options given only on the command line, ``adhoc-``
        and a digest of them (two different ad hoc subscribers never share
        a queue; the same command run again finds its queue again)."""
        if self.name:
            return self.name
        given = sorted((n, repr(self._values[n])) for n, o in self._origins.items()
                       if o == COMMAND_LINE and n not in DISPLAY_ONLY)
        given += sorted((m.kind, m.pattern) for m in self.masks)
        return "adhoc-" + hashlib.sha1(repr(given).encode()).hexdigest()[:8]

    def override(self, name: str, value: Any) -> None:
        """Set an option from the program itself (a default worked out at run
        time, e.g. dd_log's exchange from the broker user)."""
        name = _canonical(name)
        if name not in OPTIONS:
            raise ConfigError("unknown option", option=name)
        self._values[name] = value
        self.__dict__.pop(name, None)

    def not_implemented(self) -> list[str]:
        """Options given in a file or on the command line that this version
        accepts but does not act upon yet."""
        return sorted(n for n in NOT_YET if self.is_set(n))

    @property
    def tls(self) -> TlsPolicy:
        """How this configuration verifies TLS servers (ca_file, tls_verify and
        the ca_file= details of credentials.conf: sarra/tls.py)."""
        return TlsPolicy(verify=self._values.get("tls_verify", True),
                         ca_file=self._values.get("ca_file"), credentials=self.credentials)

    def servers(self) -> list[str]:
        """The URLs this configuration names (brokers, destination, poll_url,
        management_url...), as written: no passwords."""
        found: list[str] = []
        for name, option in OPTIONS.items():
            value = self._values.get(name)
            if not value or not isinstance(value, str):
                continue
            if option.kind == "urls":
                found += split_urls(value)
            elif option.kind == "url" or "://" in value and name == "management_url":
                found.append(value)
        return found

    def resolve_url(self, name: str) -> str | None:
        """The URL option ``name`` with its password (inline or credentials.conf);
        of a list of URLs (a cluster's nodes), the first."""
        urls = self.resolve_urls(name)
        return urls[0] if urls else None

    def resolve_urls(self, name: str) -> list[str]:
        """Every URL of option ``name`` (one, or a cluster's nodes), each with
        its password: inline, else looked up in credentials.conf URL by URL."""
        name = _canonical(name)
        given = self._secrets.get(name) or self._values.get(name)
        if given is None:
            return []
        if OPTIONS[name].kind != "urls":
            return [self.credentials.lookup(given)]
        return [self.credentials.lookup(url) for url in split_urls(given)]

    def dump(self) -> dict[str, Any]:
        """Every option value (passwords masked) and the masks, for display."""
        out: dict[str, Any] = {}
        for name, value in self._values.items():
            if OPTIONS[name].secret and value is not None:
                out[name] = "***"
            elif isinstance(value, list):
                out[name] = [mask(v) for v in value]
            else:
                out[name] = mask(value)
        out["masks"] = [{"kind": m.kind, "pattern": mask(m.pattern),
                         "directory": mask(m.directory), "mirror": m.mirror,
                         "strip": m.strip, "flatten": m.flatten,
                         "rename": m.rename} for m in self.masks]
        return out


def _canonical(name: str) -> str:
    found = lookup(name)
    return found[0].name if found else name


def _suggest(keyword: str, prefix: str = "") -> str:
    close = difflib.get_close_matches(keyword, known_names(), n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known_names()}
        close = [lowered[keyword.lower()]] if keyword.lower() in lowered else []
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


# '#' after a value is part of it (doc/user-guide.md §11: comment lines only); a
# '#' after blanks most likely was meant as a comment, so the reader is told
TRAILING_COMMENT = re.compile(r"\s#")


def _split_line(text: str) -> tuple[str, str | None] | None:
    line = text.strip()
    if not line or line.startswith("#"):
        return None
    words = line.split(None, 1)
    return words[0], (words[1].strip() if len(words) > 1 else None)


class _Loader:
    """Accumulates values while reading defaults, files and overrides."""

    def __init__(self, tool: str, name: str | None, cli_broker: str | None,
                 refresh: bool = False, cli_http: bool = False):
        self.tool, self.name, self.cli_broker = tool, name, cli_broker
        self.refresh, self.cli_http = refresh, cli_http   # include from a URL: fetch now?
        self.remote: dict[str, str] = {}     # URL -> the fragment's text, as loaded
        self.fragment: str | None = None     # the URL whose fragment is being read
        self.values: dict[str, Any] = {}
        self.origins: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.masks: list[Mask] = []
        self.files: list[str] = []
        self.stack: list[str] = []
        self.notes: list[str] = []
        self.randid = secrets.token_hex(4)
        self.now = time.time()
        self.where: dict[str, tuple[str, int | None]] = {}   # option -> (file, line)
        self.base_refs: list[tuple[str, str, str, int | None]] = []  # var, option, file, line
        self.log_stages: dict[str, tuple[str, int | None]] = {}    # stage -> where asked
        self.log_callback: tuple[str, int | None] | None = None     # callback log: where
        self.nodupe_callback: tuple[str, int | None] | None = None
        for option in OPTIONS.values():
            default = option.default
            self.values[option.name] = list(default) if isinstance(default, list) else default
            self.origins[option.name] = "default"

    # -- values ---------------------------------------------------------
    def store(self, option: Option, value: Any, origin: str) -> None:
        name = option.name
        if option.kind == "list":
            value = self.values[name] + [value]
        elif option.kind in ("url", "urls") and value is not None:
            bare = ",".join(strip_password(u) for u in split_urls(value)) \
                if option.kind == "urls" else strip_password(value)
            if bare != value:
                self.secrets[name] = value
            else:
                self.secrets.pop(name, None)
            value = bare
        self.values[name] = value
        self.origins[name] = origin
        if origin != "preset":
            file, _, line = origin.rpartition(":")
            self.where[name] = (file, int(line)) if line.isdigit() else (origin, None)

    def preset(self, key: str, value: Any) -> None:
        found = lookup(key)
        if found is None:
            raise ConfigError(f"unknown option in tool presets{_suggest(key)}",
                              option=key)
        option, _ = found
        if isinstance(value, str):
            self.apply(key, value, "preset", None)
        elif option.kind == "list":
            self.values[option.name] = list(value or [])
        else:
            self.values[option.name] = value
        self.origins[option.name] = "preset"

    # -- variables ------------------------------------------------------
    def variable(self, name: str) -> str | None:
        """A named built-in, else the environment (sr3: built-ins first)."""
        builtins = {"PROGRAM": self.tool, "CONFIG": self.name or "",
                    "RANDID": self.randid}
        if name in builtins:
            return builtins[name]
        if name == "HOSTNAME":
            return socket.gethostname()
        if name == "BROKER_USER":
            return self.broker_user()
        if name == "POST_BROKER_USER":
            return url_user(next(iter(split_urls(self.values.get("post_broker"))), None))
        if self.fragment is not None:     # data from elsewhere reads nothing of ours
            return None
        return os.environ.get(name)

    def broker_user(self) -> str | None:
        return url_user(next(iter(split_urls(self.cli_broker or self.values.get("broker"))),
                             None))

    def base_value(self, ref: str) -> str | None:
        """${BD}/${DR}: base_dir; ${PBD}/${PDR}: post_base_dir, else base_dir."""
        name = var.BASE_VARS[ref]
        value = self.values.get(name)
        if value is None and name == "post_base_dir":
            value = self.values.get("base_dir")
        return value

    def expand(self, text: str, option: str, file: str, line: int | None) -> str:
        """``text`` with its ``${...}`` replaced; those of each message kept
        in ``directory`` and ``rename`` (and ${SOURCE} in post_exchange), and
        ${BD}/${PBD} there kept until the end of the configuration."""
        per_message = option in PER_MESSAGE

        def fail(why: str) -> ConfigError:
            return ConfigError(why, file, line, option)

        def replace(inner: str) -> str:
            kind = var.kind(inner)
            keep = "${" + inner + "}"
            if kind == var.TIME:
                try:
                    var.time_format(inner)
                except ValueError as exc:
                    raise fail(f"${{{inner}}}: {exc}") from None
                if per_message:
                    return keep
                offset = self.values.get("var_time_offset") or 0.0
                return var.time_value(inner, self.now + offset)
            if kind in (var.GROUP, var.MESSAGE):
                if per_message or (option == "post_exchange" and inner == "SOURCE"):
                    return keep
                what = "a group of the accept pattern" if kind == var.GROUP else \
                    "a value of each message"
                raise fail(f"${{{inner}}} is {what}: it has a meaning only in "
                           f"directory and rename" + (" (and ${SOURCE} in post_exchange)"
                                                      if inner == "SOURCE" else ""))
            if kind == var.BASE:
                if per_message:
                    self.base_refs.append((inner, option, file, line))
                    return keep
                value = self.base_value(inner)
                if value is None:
                    raise fail(f"${{{inner}}} needs {var.BASE_VARS[inner]} to be set "
                               "before this line")
                return value
            value = self.variable(inner) if kind == var.NAME else None
            if value is None and self.fragment is not None:
                raise fail(f"${{{inner}}}: a fragment included from a URL reads no "
                           "environment variable")
            if value is None:
                raise fail(f"unknown variable ${{{inner}}}")
            return value
        return var.substitute(text, replace)

    # -- lines ----------------------------------------------------------
    def apply(self, keyword: str, raw: str | None, file: str,
              line: int | None) -> None:
        """Apply one ``keyword value`` from ``file`` (or the command line)."""
        origin = f"{file}:{line}" if line else file
        if self.fragment is not None and (keyword in remote.FRAGMENT_FORBIDS or
                                          _canonical(keyword) in remote.FRAGMENT_FORBIDS):
            raise ConfigError(f"not in a fragment included from a URL ({self.fragment}): "
                              "it may not include files, declare variables or name hooks "
                              "(they run code); put this line in the configuration itself",
                              file, line, keyword)
        if keyword in SPECIAL_KEYWORDS:
            self.special(keyword, raw, file, line)
            return
        if keyword in IGNORED:
            self.notes.append(f"{origin}: {keyword}: ignored: {IGNORED[keyword]}")
            return
        if keyword in PLUGIN_KEYWORDS:
            self.plugin(keyword, raw, file, line)
            return
        found = lookup(keyword)
        if found is None:
            raise ConfigError(f"unknown option{_suggest(keyword)}", file, line,
                              keyword)
        option, adjust = found
        if option.name in REFUSED_ELSEWHERE and not option.applies_to(self.tool):
            raise ConfigError(f"not an option of dd_{self.tool}: "
                              f"{REFUSED_ELSEWHERE[option.name]}", file, line, keyword)
        if raw is not None:
            raw = self.expand(raw, option.name, file, line)
        if option.name in HOOK_STAGES and raw and raw.split()[0] in PLUGINS \
                and raw.split()[0] != "log":   # 'on_file log FILE' is sarra's own log hook
            self.plugin(keyword, raw, file, line)     # a v2 plugin: on_message msg_log
            return
        try:
            if adjust is not None:
                raw = adjust(raw)
            if option.name == "log_events" and raw and raw.strip()[:1] in "+-":
                raw = combine_log_events(self.values["log_events"], raw) or "none"
            value = parse_value(option, raw)
        except ValueError as exc:
            raise ConfigError(str(exc), file, line, keyword) from None
        self.store(option, value, origin)

    def plugin(self, keyword: str, raw: str | None, file: str, line: int | None) -> None:
        """An sr3 callback or a v2 plugin: what sarra does instead (PLUGINS),
        else a ConfigError saying what to use."""
        words = (raw or "").split()
        if not words:
            raise ConfigError("needs a value", file, line, keyword)
        name = words[0]
        what = plugin_for(name)
        here = (file, line)
        if what is None:
            raise ConfigError(f"'{name}' is an sr3 callback or v2 plugin that sarra does "
                              f"not have. {HOOKS_INSTEAD}", file, line, keyword)
        if what[0] == "log":
            if what[1] is None:
                self.log_callback = here
            for stage in what[1] or ():
                self.log_stages.setdefault(stage, here)
        elif what[0] == "nodupe":
            self.nodupe_callback = here
            if what[1]:
                self.apply("nodupe_basis", what[1], file, line)

    def special(self, keyword: str, raw: str | None, file: str,
                line: int | None) -> None:
        if raw is None:
            raise ConfigError("needs a value", file, line, keyword)
        raw = self.expand(raw, keyword, file, line)
        if keyword in ("accept", "reject"):
            self.add_mask(keyword, raw, file, line)
        elif keyword == "include":
            self.include(raw, file, line)
        else:
            self.declare(raw, file, line)

    def add_mask(self, kind: str, pattern: str, file: str, line: int | None) -> None:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"invalid regular expression '{pattern}': {exc}",
                              file, line, kind) from None
        v = self.values
        placed_at = {o: self.where[o] for o in PER_MESSAGE if o in self.where}
        self.masks.append(Mask(kind, pattern, regex, v["directory"], v["mirror"],
                               v["strip"], v["flatten"], v["rename"],
                               file, line, placed_at))

    # -- the end of the configuration -------------------------------------
    def finish(self) -> None:
        """What needs the whole configuration: ${BD}/${PBD} in directory and
        rename, the accept groups they use, and the log and nodupe callbacks."""
        v = self.values
        for ref, option, file, line in self.base_refs:
            if self.base_value(ref) is None:
                name = var.BASE_VARS[ref]
                raise ConfigError(f"${{{ref}}} needs {name}" + (" (or base_dir)" if
                                  name == "post_base_dir" else "") + ", which is not set",
                                  file, line, option)

        def bases(text):
            if text is None or "${" not in text:
                return text
            return var.substitute(text, lambda inner: self.base_value(inner)
                                  if inner in var.BASE_VARS else "${" + inner + "}")
        for option in PER_MESSAGE:
            v[option] = bases(v[option])
        for m in self.masks:
            m.directory, m.rename = bases(m.directory), bases(m.rename)
        zero = bool(v.get("sundew_compat_regex_first_match_is_zero"))
        for m in self.masks:
            if m.kind == "accept":
                self.check_groups(m.regex.groups, m.directory, m.rename, m.placed_at,
                                  zero, f"the accept pattern at {m.file}:{m.line}"
                                  if m.line else f"the accept pattern '{m.pattern}'")
        if not any(m.kind == "accept" for m in self.masks) or v.get("accept_unmatch"):
            self.check_groups(-1, v["directory"], v["rename"], self.where, zero,
                              "a message no accept pattern matched")
        self.finish_callbacks()

    def check_groups(self, groups: int, directory, rename, placed_at: dict, zero: bool,
                     what: str) -> None:
        for option, text in (("directory", directory), ("rename", rename)):
            for inner in var.references(text):
                if var.kind(inner) != var.GROUP:
                    continue
                n = var.group_index(inner, zero)
                if n > groups:
                    file, line = placed_at.get(option, (None, None))
                    has = "has no groups" if groups <= 0 else \
                        f"has {groups} group{'s' if groups != 1 else ''}"
                    raise ConfigError(f"${{{inner}}}: {what} {has}" +
                                      (" (${0} is the whole match)" if groups >= 0 and
                                       not zero else ""), file, line, option)

    def finish_callbacks(self) -> None:
        """The log callback (sr3's ``callback log``, v2's msg_log...) and
        log_events: the built-in log hook at their stages; a nodupe callback:
        the duplicate cache."""
        stages = dict(self.log_stages)
        events = self.values.get("log_events")
        where = self.where.get("log_events")
        if self.origins["log_events"] in ("default", "preset") and self.log_callback:
            events, where = "after_accept,after_work", self.log_callback
        for event in (events or "").split(","):
            stage = LOG_EVENTS.get(event)
            if stage:
                stages.setdefault(stage, where or (COMMAND_LINE, None))
        for stage in HOOK_STAGES:
            if stage in stages and "log" not in self.values[stage]:
                file, line = stages[stage]
                self.values[stage] = self.values[stage] + ["log"]
                self.origins[stage] = f"{file}:{line}" if line else file
        if self.nodupe_callback and self.origins["nodupe_ttl"] in ("default", "preset") \
                and not self.values["nodupe_ttl"]:
            file, line = self.nodupe_callback
            self.store(OPTIONS["nodupe_ttl"], 300.0, f"{file}:{line}" if line else file)

    def declare(self, raw: str, file: str, line: int | None) -> None:
        what, _, rest = raw.partition(" ")
        name, eq, value = rest.strip().partition("=")
        if what != "env" or not eq or not re.fullmatch(r"[A-Za-z_]\w*", name.strip()):
            raise ConfigError("only 'declare env NAME=value' is supported",
                              file, line, "declare")
        os.environ[name.strip()] = value.strip()

    # -- files ----------------------------------------------------------
    def include(self, target: str, file: str, line: int | None) -> None:
        if remote.is_url(target):
            self.include_url(target.strip(), file, line)
            return
        target = os.path.expanduser(target)
        if file == COMMAND_LINE:
            bases = [os.getcwd(), config_dir()]
        else:
            bases = [os.path.dirname(os.path.abspath(file)), config_dir()]
        candidates = [os.path.join(base, name) for base in bases
                      for name in (target, target + ".conf")]
        for path in candidates:
            if os.path.isfile(path):
                self.read_file(path, file, line)
                return
        raise ConfigError(f"included file '{target}' not found (looked in "
                          f"{', '.join(bases)})", file, line, "include")

    def include_url(self, url: str, file: str, line: int | None) -> None:
        """``include https://...``: the fragment there (remote.get: fetched for a
        run, else the cached copy; the cached copy with a warning when the
        server cannot be read), read as a file whose name is the URL."""
        allow_http = bool(self.values["include_http"] or self.cli_http)
        if url.lower().startswith("http://") and not allow_http:
            raise ConfigError(f"{url}: an include over http (unencrypted, anyone on the way "
                              "may change it) needs include_http on; use https",
                              file, line, "include")
        if url in self.stack:
            raise ConfigError(f"include loop: {' -> '.join(self.stack + [url])}",
                              file, line, "include")
        try:
            got = remote.get(url, self.refresh, self.values["timeout"], allow_http)
        except remote.FetchError as exc:
            raise ConfigError(f"cannot include {url}: {exc} (and no copy of it is cached "
                              f"in {os.path.dirname(remote.cache_path(url))})",
                              file, line, "include") from None
        if got.problem:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(got.fetched))
            self.notes.append(f"{file}:{line}: include {url}: {got.problem}: using the copy "
                              f"cached {when}")
        self.remote[url] = got.text
        self.fragment = url
        try:
            self.read_text(got.text, url)
        finally:
            self.fragment = None

    def read_file(self, path: str, parent: str | None = None,
                  parent_line: int | None = None) -> None:
        real = os.path.realpath(path)
        if real in self.stack:
            chain = " -> ".join(self.stack + [real])
            raise ConfigError(f"include loop: {chain}", parent, parent_line,
                              "include")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", path) from None
        self.read_text(text, path, real)

    def read_text(self, text: str, path: str, real: str | None = None) -> None:
        """The lines of ``text``, read from ``path`` (a file, or a URL)."""
        self.files.append(path)
        self.stack.append(real or path)
        try:
            for number, raw_line in enumerate(text.splitlines(), 1):
                parsed = _split_line(raw_line)
                if parsed is not None:
                    if parsed[1] is not None and TRAILING_COMMENT.search(parsed[1]):
                        self.notes.append(f"{path}:{number}: {parsed[0]}: the ' #...' is "
                                          "part of the value (comments go on lines of "
                                          "their own)")
                    self.apply(parsed[0], parsed[1], path, number)
        finally:
            self.stack.pop()


def load_config(tool: str, name: str | None,
                overrides: list[tuple[str, str]] | tuple = (),
                presets: dict | None = None, source: str | None = None,
                refresh: bool = False) -> Config:
    """Read the configuration ``name`` of ``tool`` (None: config-less mode);
    ``source``: read that file as configuration ``name`` (``sarra edit``
    checks a copy being edited, beside the file, so its includes are found);
    ``refresh``: fetch the fragments included from URLs again (a run does),
    rather than read their cached copies.

    Order: defaults < presets < default.conf < the config file < overrides.
    """
    if tool not in TOOLS:
        raise ConfigError(f"unknown tool '{tool}' (tools: {', '.join(TOOLS)})")
    cli_broker = next((v for k, v in overrides
                       if _canonical(k.lstrip("-")) == "broker"), None)
    cli_http = any(_canonical(k.lstrip("-")) == "include_http" and is_bool_word(v)
                   and parse_bool(v) for k, v in overrides)   # before the files are read
    loader = _Loader(tool, name, cli_broker, refresh, cli_http)
    for key, value in (presets or {}).items():
        loader.preset(key, value)
    default = os.path.join(config_dir(), "default.conf")
    if os.path.isfile(default):
        loader.read_file(default)
    if name:
        path = source or config_file(tool, name)
        if not os.path.isfile(path):
            raise ConfigError("configuration file not found" + config_hint(tool, name), path)
        loader.read_file(path)
        if source is None:
            name = os.path.splitext(os.path.basename(path))[0]
    for key, value in overrides:
        loader.apply(key.lstrip("-"), value, COMMAND_LINE, None)
    loader.finish()
    return Config(tool, name, loader.values, loader.origins, loader.masks,
                  loader.files, Credentials(), loader.secrets, loader.notes, loader.remote)


def configuration_names(tool: str) -> list[str]:
    """The configurations of ``tool``: <config_dir>/<tool>/*.conf, without .conf."""
    directory = os.path.join(config_dir(), tool)
    try:
        return sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".conf"))
    except OSError:
        return []


DISABLED = ".conf.off"     # a disabled configuration's file (sr3's way): sarra enable


def disabled_names(tool: str) -> list[str]:
    """The disabled configurations of ``tool``: <config_dir>/<tool>/*.conf.off."""
    directory = os.path.join(config_dir(), tool)
    try:
        return sorted(f[:-len(DISABLED)] for f in os.listdir(directory)
                      if f.endswith(DISABLED))
    except OSError:
        return []


def config_hint(tool: str, name: str) -> str:
    """For 'configuration file not found': the closest name and those there are."""
    if "/" in name or os.sep in name:
        return ""
    if (name[:-5] if name.endswith(".conf") else name) in disabled_names(tool):
        return f" (it is disabled: sarra enable {tool}/{name} enables it)"
    names = configuration_names(tool)
    if not names:
        return f" (there is no {tool} configuration in {os.path.join(config_dir(), tool)})"
    wanted = name[:-5] if name.endswith(".conf") else name
    close = difflib.get_close_matches(wanted, names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f" ({hint}{tool} configurations: {', '.join(names)})"


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'X'?)' for the closest of ``choices``, '' when none is."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ------------------------------------------------------------ command line

@dataclass
class Invocation:
    """What a tool's command line asks for."""
    action: str | None
    config: str | None
    paths: list[str] = field(default_factory=list)
    overrides: list[tuple[str, str]] = field(default_factory=list)
    show_help: bool = False
    show_version: bool = False
    tool: str = ""


def _cli_name(flag: str) -> str:
    """Canonical-or-alias name for ``--name``/short flag; ConfigError if unknown."""
    if flag in SHORT_OPTIONS:
        return SHORT_OPTIONS[flag]
    if flag.startswith("--") and len(flag) > 2:
        name = flag[2:].replace("-", "_")
        if name == "config" or name in SPECIAL_KEYWORDS or lookup(name):
            return name
        suggestion = _suggest(name, "--")
    else:
        suggestion = _suggest(flag.lstrip("-"), "--")
    raise ConfigError(f"unknown option{suggestion}", COMMAND_LINE, None, flag)


def _is_flag(name: str) -> bool:
    found = lookup(name)
    # tlsRigour (lax, medium, strict) is a bool option's alias that takes a word
    return found is not None and found[0].kind == "bool" and name not in WORD_ALIASES


def scan_options(argv: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``--name value`` options (as overrides) and the other arguments of
    ``argv`` (ConfigError for an unknown option): ``sarra show`` reads its
    command line with it."""
    inv = Invocation(action=None, config=None)
    rest = _scan(list(argv), inv)
    if inv.config:
        rest.append(inv.config)
    return inv.overrides, rest


def _scan(argv: list[str], inv: Invocation) -> list[str]:
    """Fill options into ``inv``; return the positional arguments."""
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            positionals.extend(argv[i:])
            break
        if token in ("-h", "--help"):
            inv.show_help = True
        elif token in ("-V", "--version"):
            inv.show_version = True
        elif not token.startswith("-") or token == "-":
            positionals.append(token)
        else:
            flag, eq, value = token.partition("=")
            name = _cli_name(flag)
            if not eq and _is_flag(name):
                if i < len(argv) and is_bool_word(argv[i]):
                    value, i = argv[i], i + 1
                else:
                    value = "true"
            elif not eq:
                if i >= len(argv):
                    raise ConfigError("needs a value", COMMAND_LINE, None, flag)
                value, i = argv[i], i + 1
            if name == "config":
                inv.config = value
            else:
                inv.overrides.append((name, value))
    return positionals


def _too_many(extra: list[str]) -> ConfigError:
    return ConfigError(f"unexpected argument(s): {' '.join(extra)}", COMMAND_LINE)


def _assign_daemon(inv: Invocation, args: list[str], actions: tuple) -> None:
    if not args:
        raise ConfigError(f"missing action (one of: {', '.join(actions)})",
                          COMMAND_LINE)
    action = args[0]
    if action not in actions:
        close = difflib.get_close_matches(action, actions, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown action '{action}' ({hint}actions: "
                          f"{', '.join(actions)})", COMMAND_LINE)
    inv.action = action
    if len(args) > 2:
        raise _too_many(args[2:])
    if len(args) == 2:
        if inv.config and inv.config != args[1]:
            raise ConfigError(f"two configurations given: {inv.config} and "
                              f"{args[1]}", COMMAND_LINE)
        inv.config = args[1]
    adhoc_ok = ("foreground", "declare", "cleanup")   # an ad hoc run and its queue
    if inv.config is None and not (action in adhoc_ok and inv.overrides):
        raise ConfigError(f"'{action}' needs a configuration name "
                          "(foreground, declare and cleanup need one, or options)", COMMAND_LINE)


def parse_argv(tool: str, argv: list[str]) -> Invocation:
    """Parse the arguments of ``dd_<tool>`` (without the program name).

    Daemons: ``[--name value | --flag]... ACTION CONFIG``; post:
    ``[--name value]... PATH...``; log: ``[--follow] [CONFIG]`` (dd_audit
    has its own parser: sarra.switch.command). Overrides keep the name as given (an
    alias stays an alias); ``load_config`` validates them.
    """
    if tool not in TOOLS:
        raise ConfigError(f"unknown tool '{tool}' (tools: {', '.join(TOOLS)})")
    inv = Invocation(action=None, config=None, tool=tool)
    args = _scan(list(argv), inv)
    if inv.show_help or inv.show_version:
        inv.paths = args
        return inv
    kind = tools.tool(tool).command
    if kind == tools.PATHS:
        inv.paths = args
    elif kind == tools.READER:
        if args and args[0] in tools.tool(tool).actions:   # dd_log cleanup [CONFIG]
            inv.action, args = args[0], args[1:]
        if len(args) > 1:
            raise _too_many(args[1:])
        inv.config = args[0] if args else inv.config
    else:
        _assign_daemon(inv, args, tools.tool(tool).actions)
    return inv


# ------------------------------------------------------------------ help

_METAVAR = {"str": "TEXT", "int": "N", "float": "NUMBER", "size": "SIZE",
            "duration": "DURATION", "octal": "MODE", "url": "URL", "urls": "URL[,URL...]",
            "list": "VALUE", "choice": "CHOICE"}


def show_value(option: Option, value: Any = None) -> str:
    """``value`` of ``option`` (None: its default) as the help and ``sarra
    show`` write it (passwords masked)."""
    value = option.default if value is None else value
    if isinstance(value, str) and option.kind in ("duration", "size", "bool"):
        return value                # a tool's preset, as written (expire 1d)
    if option.kind == "octal" and value is not None:
        return oct(value)[2:]
    if option.kind == "bool" and value is not None:
        return "on" if value else "off"
    if value is None or value == []:
        return "none"
    if option.kind == "duration":
        return f"{value:g}s"
    return mask(str(value))


def help_text(tool: str) -> str:
    """Usage and every option ``tool`` acts on: kind, default (the tool's own
    when it has one: its presets, its defaults worked out when it runs), help."""
    info = tools.tool(tool)
    lines = [f"usage: {info.usage}", f"{info.script}: {info.summary} (sarra {__version__})",
             ""]
    if info.actions:
        lines += [f"actions: {' '.join(info.actions)}", ""]
    lines += ["options (in a config file: 'name value'; sizes take k/m/g/t, "
              "durations s/m/h/d/w; a bare boolean means on):",
              "  -h, --help    this text", "  -V, --version show the version",
              "  --accept REGEX / --reject REGEX   select URLs (repeatable, "
              "in order)", "  --include FILE   read FILE here"]
    shorts: dict[str, str] = {}
    for flag, name in SHORT_OPTIONS.items():
        shorts[name] = f"{shorts[name]}, {flag}" if name in shorts else flag
    unused = set(info.unused) | set(NOT_YET)
    for option in OPTIONS.values():
        if not option.applies_to(tool) or option.name in unused:
            continue
        metavar = "[on|off]" if option.kind == "bool" else _METAVAR[option.kind]
        if option.kind == "choice":
            metavar = "|".join(option.choices)
        short = f"{shorts[option.name]}, " if option.name in shorts else ""
        head = f"  {short}--{option.name} {metavar}"
        shown = info.help_defaults.get(option.name) or \
            show_value(option, info.presets.get(option.name))
        text = f"{option.help} [default: {shown}]"
        if option.aliases:
            text += f" (also: {', '.join(option.aliases)})"
        lines.append(f"{head}\n      {text}")
    ignored = sorted(n for n in unused if n in OPTIONS and OPTIONS[n].applies_to(tool))
    if ignored:
        lines.append(f"\nread but without effect in {info.script}: {', '.join(ignored)}")
    return "\n".join(lines) + "\n"
