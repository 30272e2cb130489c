"""Posting downstream and reporting upstream (log messages)."""
import logging
import re
import socket
import sys
import time
from collections import Counter
from dataclasses import replace
from typing import TextIO

from .. import codec
from ..broker import Outgoing, ensure_exchange
from ..errors import BrokerError, ConfigError, MessageError
from ..message import Message, Report
from ..readers import parse_readers, private_exchange

log = logging.getLogger(__name__)


MAX_TEXT = 255       # bytes of UTF-8 in an AMQP short string


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character), marked '...'
    (a lone surrogate, which UTF-8 cannot hold, is counted and cut as its escape)."""
    raw = text.encode("utf-8", "backslashreplace")
    if len(raw) <= limit:
        return text
    return raw[:limit - 3].decode("utf-8", "ignore") + "..."


SOURCE_VAR = "${SOURCE}"
_EXCHANGE_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
SOURCE_CHECK_TTL = 30.0    # s: how long an exchange named after a source is known to
                           # exist (or not) before it is checked again
SOURCE_CHECK_MAX = 1024    # names remembered at most


class Publisher:
    """Encodes messages and hands them to a broker, pipelined.

    ``exchange`` may name several exchanges, comma-separated (each message
    goes to every one), and ``${SOURCE}`` in a name is the message's
    ``source`` header (log routing: ``xr_${SOURCE}``). Such an exchange is
    never declared: a header, which whoever sent the message chose, must not
    create anything on the broker. It must exist already (dd_audit declares
    ``xr_<u>`` for each source of the switch), checked with a passive
    declare (again after ``SOURCE_CHECK_TTL``, so a source added or removed
    meanwhile is seen); a message naming a source without one is published
    nowhere (MessageError: the flow logs it, counts it unpublishable and
    drops it). With ``home`` (the ``cluster`` option) a ``${SOURCE}``
    exchange is one of this switch's own sources: a message whose
    ``from_cluster`` is not ``home`` (about data that entered the network
    elsewhere, whose source is somebody else's user, even under the same
    name) is not published there."""

    def __init__(self, broker, exchange: str, topic_prefix: str, persistent: bool = True,
                 home: str | None = None, mandatory: bool = False, split: int = 0,
                 post_format: str | None = None, topic: str | None = None,
                 wis2: dict | None = None, readers: str = ""):
        self.broker = broker
        # a poster's readers (the readers option): those named without a
        # cluster are checked, at each connection, to be users of the switch
        # posted to (an xprivate_<user> there), and a warning names the others
        self.readers = [r.user for r in parse_readers(readers) if r.cluster is None]
        # the wire form (None: from the topic prefix), the fixed topic
        # (post_topic) and the WNM settings (codec.encode)
        self.style = dict(post_format=post_format, topic=topic, **(wis2 or {}))
        # mandatory: each post must reach a queue; those that reached none are
        # counted by exchange after each flush (dd_post warns of them)
        self.mandatory = mandatory
        self.unroutable: Counter = Counter()
        self.home = home
        self.exchanges = [e.strip() for e in exchange.split(",") if e.strip()]
        # post_exchange_split N: exchange00 ... exchangeNN-1, one per message
        self.split = split if split > 1 else 0
        if self.split:
            self.exchanges = split_exchanges(exchange, self.split)
        self.exchange = ",".join(self.exchanges)
        self.topic_prefix = topic_prefix
        self.persistent = persistent
        self.count = 0
        self._declared: set[str] = set()
        # header-named exchanges: name -> (exists, when checked, monotonic)
        self._checked: dict[str, tuple[bool, float]] = {}

    def declare(self) -> None:
        """Declare the fixed exchanges (at each connection: what was known
        of the exchanges named after sources is checked again, too)."""
        self._checked.clear()
        for ex in self.exchanges:
            if SOURCE_VAR not in ex:
                ensure_exchange(self.broker, ex)
                self._declared.add(ex)
        unknown = [u for u in self.readers if not self._exists(private_exchange(u))]
        if unknown:
            log.warning("readers: %s %s no user of the switch at %s (no exchange %s): it "
                        "will keep the files private and report it in a log message, "
                        "unless another switch on the way has %s",
                        ", ".join(unknown), "is" if len(unknown) == 1 else "are",
                        getattr(self.broker, "name", "the broker"),
                        ", ".join(private_exchange(u) for u in unknown),
                        "this user" if len(unknown) == 1 else "these users")

    def targets(self, msg: Message) -> list[str]:
        """The exchanges ``msg`` goes to (MessageError: no usable source)."""
        return [ex for ex, _named in self._resolve(msg)]

    def _resolve(self, msg: Message) -> list[tuple[str, bool]]:
        """(exchange, named after the message's source) for each target."""
        if self.split:
            return [(self.exchanges[split_index(msg, self.split)], False)]
        out = []
        for ex in self.exchanges:
            named = SOURCE_VAR in ex
            if named:
                if self.home and msg.headers.get("from_cluster") != self.home:
                    continue
                source = msg.headers.get("source", "")
                if not _EXCHANGE_WORD.fullmatch(source):
                    raise MessageError(f"'{source}' cannot name an exchange", "source")
                ex = ex.replace(SOURCE_VAR, source)
            out.append((ex, named))
        return out

    def exists(self, name: str) -> bool:
        """Whether exchange ``name`` is on the broker (never created here)."""
        return self._exists(name)

    def _exists(self, name: str) -> bool:
        """Whether exchange ``name`` is on the broker (a passive declare,
        remembered for SOURCE_CHECK_TTL seconds); never creates it."""
        now = time.monotonic()
        known = self._checked.get(name)
        if known is not None and now - known[1] < SOURCE_CHECK_TTL:
            return known[0]
        try:
            self.broker.declare_exchange(name, passive=True)
            found = True
        except BrokerError as exc:
            if exc.recoverable:
                raise
            found = False
        if len(self._checked) >= SOURCE_CHECK_MAX:   # many names made up: start again
            self._checked.clear()
        self._checked[name] = (found, now)
        return found

    def publish(self, msg: Message, exchange: str | None = None) -> None:
        topic, headers, body, content_type = codec.encode(msg, self.topic_prefix, **self.style)
        targets = [(exchange, False)] if exchange else self._resolve(msg)
        for ex, named in targets:       # before anything is published
            if named and not self._exists(ex):
                raise MessageError(
                    f"no exchange {ex}: '{msg.headers.get('source')}' is not a source of "
                    "this switch; published nowhere", "source")
        for ex, named in targets:
            if not named and ex not in self._declared:
                try:
                    ensure_exchange(self.broker, ex)
                except BrokerError as exc:
                    if exc.recoverable:
                        raise
                    raise MessageError(f"cannot publish to {ex}: {exc}", "exchange") from None
                self._declared.add(ex)
            self.broker.publish(Outgoing(ex, topic, headers, body, content_type,
                                         self.persistent, mandatory=self.mandatory))
        self.count += 1

    def mark(self) -> int:
        """Where this broker's publishing stands (``flush``'s ``since``)."""
        return self.broker.published

    def flush(self, timeout: float = 60.0, since: int | None = None) -> None:
        """Wait for the broker's confirms; ``since``: of what was published
        before that ``mark`` (what came after may still be on its way)."""
        leave = 0 if since is None else self.broker.published - since
        try:
            self.broker.flush(timeout, leave)
            if self.mandatory:
                for ex, _topic in getattr(self.broker, "returned", list)():
                    self.unroutable[ex] += 1
        except BrokerError as exc:
            # an exchange named after a source vanished since it was checked
            # (dd_audit remove-user): the broker closed the channel. The batch
            # is done again after a reconnection (declare: checked anew),
            # rather than the process stopped.
            if (exc.recoverable or "NOT_FOUND" not in str(exc)
                    or not any(SOURCE_VAR in ex for ex in self.exchanges)):
                raise
            raise BrokerError(f"{exc} (an exchange named after a source is gone: "
                              "they are checked again)", recoverable=True) from exc


def split_exchanges(exchange: str, n: int) -> list[str]:
    """post_exchange_split: ``exchange`` followed by two digits, 00 to n-1
    (sr3's names: xwinnow00 ... xwinnow04 for 5). ConfigError for more
    than one exchange, or one named after the source."""
    if "," in exchange or SOURCE_VAR in exchange:
        raise ConfigError(f"post_exchange_split spreads posts over the exchanges of one "
                          f"name; post_exchange is '{exchange}'", option="post_exchange_split")
    if n > 100:
        raise ConfigError(f"{n} is more than the 100 exchanges two digits name",
                          option="post_exchange_split")
    return [f"{exchange}{i:02d}" for i in range(n)]


def split_index(msg: Message, n: int) -> int:
    """Which of ``n`` exchanges ``msg`` goes to: the sum of the bytes of its
    checksum value (as the sum header writes it), modulo n. Every post of
    the same content (same sum) goes to the same exchange, so that one
    dd_winnow sees all the copies of a file."""
    value = msg.headers.get("sum", "").partition(",")[2].lower()
    return sum(value.encode("utf-8", "backslashreplace")) % n


class Outlet:
    """A Poster writing each post to standard output instead of a broker
    (the ``outlet`` option, sr3's): ``json``, the message as v03 JSON on
    one line; ``url``, the URL of the file."""
    broker = None
    exchange = "standard output"

    def __init__(self, kind: str, out: TextIO | None = None):
        self.kind = kind
        self._out = out
        self.unroutable: Counter = Counter()     # none: nothing is routed
        self.count = 0

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def declare(self) -> None:
        """Nothing to declare."""

    def publish(self, msg: Message) -> None:
        if self.kind == "url":
            line = msg.url
        else:
            line = codec.encode(msg, "v03.post")[2]
        print(line.encode("utf-8", "backslashreplace").decode("utf-8"), file=self.out)
        self.count += 1

    def mark(self) -> int:
        return self.count

    def flush(self, timeout: float = 60.0, since: int | None = None) -> None:
        self.out.flush()        # (printed: nothing is left to confirm)


class Reporter(Publisher):
    """Log messages (v02.report) about what we did with each post."""

    def __init__(self, broker, exchange: str, user: str, host: str | None = None):
        super().__init__(broker, exchange, "v02.report")
        self.user = user
        self.host = host or socket.getfqdn()

    def report(self, msg: Message, code: int, text: str) -> None:
        """A log message about ``msg``. Our own status text is shortened to
        fit a header; the headers of the post are forwarded as they came,
        unless that cannot be encoded (a value over 255 bytes, a lone
        surrogate...): then each text is escaped and cut to fit, so that
        the source still hears of it (MessageError only when even that
        cannot be sent: a pubtime that is no time)."""
        text = shorten(text, MAX_TEXT)
        duration = time.time() - msg.received if msg.received else 0.0
        headers = {k: v for k, v in msg.headers.items() if k != "message"}
        rep = replace(msg, headers=headers, extras={},
                      report=Report(code, self.host, self.user, duration, text))
        try:
            self.publish(rep)
        except MessageError:
            self.publish(_fitted(rep))


def _fit(text: str, limit: int | None = MAX_TEXT) -> str:
    """``text`` as valid UTF-8 (what cannot be encoded, escaped), cut to ``limit`` bytes."""
    safe = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return shorten(safe, limit) if limit else safe


def _fitted(rep: Message) -> Message:
    """A log message whose every text fits its place in the wire form."""
    headers = {_fit(k): _fit(v) for k, v in rep.headers.items()
               if len(_fit(k).encode()) < MAX_TEXT - 3}
    report = replace(rep.report, message=_fit(rep.report.message),
                     host=_fit(rep.report.host), user=_fit(rep.report.user))
    return replace(rep, headers=headers, report=report, base_url=_fit(rep.base_url, None),
                   relpath=_fit(rep.relpath, None))
