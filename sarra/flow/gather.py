"""Where messages come from: a broker queue, or paths on the command line."""
import logging
import os
import random
import time
from datetime import datetime, timezone

from .. import codec
from ..broker import (MQTT_SCHEMES, consumer_options, ensure_exchange, make_broker,
                      topic_matches)
from ..config import broker_user, paths
from ..errors import BrokerError, ConfigError, MessageError
from ..message import Message, pubtime_seconds
from ..readers import PUBLIC_EXCHANGE, private_exchange
from .announce import file_messages
from .contracts import Malformed
from .stream import OFFSET_HEADER, Position, parse_replay_from

log = logging.getLogger(__name__)


def queue_name(cfg, tool: str, user: str) -> str:
    """``q_<user>.<tool>.<config>.<rand8>.<rand8>``, saved so that every
    instance and every restart shares the same queue (doc/protocol.md §8.2)."""
    if cfg.queue_name:
        return cfg.queue_name
    config = cfg.key
    path = paths.state_path(tool, config, f"{tool}.{config}.{user}.qname")
    try:
        with open(path, encoding="utf-8") as f:
            name = f.read().strip()
        if name:
            return name
    except FileNotFoundError:
        pass
    name = "q_%s.%s.%s.%08d.%08d" % (user, tool, config, random.randrange(10**8),
                                     random.randrange(10**8))
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(name + "\n")
    try:
        os.link(tmp, path)  # first writer wins; the others read its name
    except FileExistsError:
        with open(path, encoding="utf-8") as f:
            name = f.read().strip()
    finally:
        os.unlink(tmp)
    return name


def _stream_share(instances: int) -> tuple[int, int]:
    """(remainder, modulus): the stream offsets this instance handles."""
    number = paths.instance()
    if number < 1 or instances <= 1:
        return 0, 1
    return (number - 1) % instances, instances


class BrokerSource:
    """Consume posts (or logs) from a queue bound to an exchange (a
    contracts.Source). With ``idle_exit`` (seconds), ``done`` once nothing
    came for that long (dd_log without --follow)."""

    def __init__(self, cfg, tool: str, idle_exit: float | None = None):
        self.cfg = cfg
        self.urls = cfg.resolve_urls("broker")     # one, or a cluster's nodes
        if not self.urls:
            raise ConfigError("no broker to consume from", option="broker")
        self.url = self.urls[0]
        self.user = broker_user(self.url)
        self.broker = make_broker(self.urls, heartbeat=cfg.broker_heartbeat, tls=cfg.tls,
                                  **consumer_options(self.url, cfg.instances))
        self.done = False
        self._idle_exit = idle_exit
        self._busy_at = time.monotonic()
        # a stream (the switch's, or our own queue of type stream): read from
        # an offset, our position kept in the state directory
        self.stream = cfg.stream
        self.queue = self.stream or queue_name(cfg, tool, self.user)
        self._replay_from = parse_replay_from(cfg.replay_from)
        self.position: Position | None = None
        if self.stream or cfg.queue_type == "stream":
            self.position = Position(paths.state_path(
                tool, cfg.key, f"stream.{paths.instance():02d}.offset"), cfg.fsync)
            self._share = _stream_share(cfg.instances)
            self._keys = self.binding_keys()
        elif cfg.replay_from is not None:
            raise ConfigError("replay_from reads a stream: give the switch's stream "
                              "(stream NAME) or queue_type stream", option="replay_from")
        if not self.stream:
            from ..broker.amqp import queue_arguments   # pika: only for a queue of its own
            queue_arguments(cfg.durable, cfg.expire, cfg.message_ttl, cfg.queue_type)
        self._offsets: dict = {}        # delivery tag -> stream offset
        self._since = None              # a replay from a time: said how far back it went

    def connect(self) -> None:
        self.broker.connect()
        offset = None
        if self.position is not None:
            self.position.forget()
            self._offsets.clear()
            offset = self.position.resume(self._replay_from)
            log.info("reading stream %s from %s", self.queue,
                     "offset %d" % offset if isinstance(offset, int) else offset)
            self._since = offset if isinstance(offset, datetime) else None
        if not self.stream:
            self.declare()
        self.broker.consume(self.queue, self.cfg.prefetch, offset)

    def binding_keys(self) -> list[str]:
        cfg = self.cfg
        return [f"{cfg.topic_prefix}.{sub}" for sub in (cfg.subtopic or ["#"])]

    def declare(self) -> None:
        b, cfg = self.broker, self.cfg
        exchanges = self.exchanges()
        for exchange in exchanges:
            ensure_exchange(b, exchange)
        if cfg.reset:
            b.delete_queue(self.queue)
        b.declare_queue(self.queue, cfg.durable, cfg.expire, cfg.message_ttl, cfg.queue_type)
        keys = self.binding_keys()
        exchanges = exchanges + self._private(exchanges)
        for exchange in exchanges:
            for key in keys:
                b.bind(self.queue, exchange, key)
        log.info("queue %s bound to %s with %s", self.queue, ", ".join(exchanges),
                 ", ".join(keys))

    def _private(self, exchanges: list[str]) -> list[str]:
        """A queue bound to a switch's xpublic is bound to ``xprivate_<user>``
        too, when the switch has one for its user: the restricted posts meant
        for it (doc/protocol.md §17), with the same subtopics. Checked, never
        declared (AMQP only: MQTT brokers have no such exchange)."""
        if PUBLIC_EXCHANGE not in exchanges or \
                self.url.split(":", 1)[0].lower() in MQTT_SCHEMES:
            return []
        name = private_exchange(self.user)
        try:
            self.broker.declare_exchange(name, passive=True)
        except BrokerError as exc:
            if exc.recoverable:
                raise
            return []
        return [name]

    def exchanges(self) -> list[str]:
        """The exchanges to bind to: ``exchange`` (comma-separated: several
        feeds), or the user's ``xs_<user>_<exchange_suffix>``."""
        if self.cfg.exchange_suffix:
            return [f"xs_{self.user}_{self.cfg.exchange_suffix}"]
        return [e.strip() for e in self.cfg.exchange.split(",") if e.strip()]

    def get(self, timeout: float) -> tuple[list[Message], list[Malformed]]:
        """(decoded messages, [(tag, reason, what can be read of it)] for
        messages that are not)."""
        good, bad = [], []
        now = time.time()
        deliveries = self.broker.get(timeout)
        if deliveries:
            self._busy_at = time.monotonic()
        elif self._idle_exit is not None and time.monotonic() - self._busy_at >= self._idle_exit:
            self.done = True
        if self.position is not None:
            deliveries = self._from_stream(deliveries)
        for d in deliveries:
            try:
                msg = codec.decode(d.topic, d.headers, d.body, d.content_type, d.exchange)
            except Exception as exc:   # codec.decode raises MessageError; anything else too
                log.error("malformed message on %s topic %.100s: %s; body %.200r",
                          d.exchange, d.topic, exc, d.body[:200])
                found = codec.salvage(d.topic, d.headers, d.body)
                if found is not None:
                    found.exchange, found.received = d.exchange, now
                bad.append(Malformed(d.tag, str(exc), found, d))
                continue
            msg.delivery_tag, msg.received, msg.redelivered = d.tag, now, d.redelivered
            msg.raw = d
            good.append(msg)
        if self._since is not None and good:
            self._first_replayed(good[0])
        return good, bad

    def _first_replayed(self, msg: Message) -> None:
        """A replay from a time: say when its first message was published,
        and that nothing older is kept when that is well after the time asked."""
        since, self._since = self._since, None
        published = pubtime_seconds(msg.pubtime)
        if published is None:
            return
        when = datetime.fromtimestamp(published, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if published - since.timestamp() > 60:
            log.warning("replay_from %s: the oldest message stream %s holds was published "
                        "at %s: nothing older is there (past the stream's retention, or "
                        "never posted)",
                        since.strftime("%Y-%m-%dT%H:%M:%SZ"), self.queue, when)
        else:
            log.info("replaying stream %s from the message published at %s", self.queue, when)

    def _from_stream(self, deliveries: list) -> list:
        """Stream deliveries: note each offset; settle at once those not for
        us (another instance's share, or a topic outside our subtopics: a
        stream holds everything its exchange carried)."""
        mine, others = [], []
        for d in deliveries:
            offset = d.headers.pop(OFFSET_HEADER, None)
            if not isinstance(offset, int):
                mine.append(d)      # not from a stream after all: handled as usual
                continue
            self.position.delivered(offset)
            self._offsets[d.tag] = offset
            if offset % self._share[1] != self._share[0] or \
                    not any(topic_matches(k, d.topic) for k in self._keys):
                others.append(d.tag)
            else:
                mine.append(d)
        if others:
            self.ack(others)
        return mine

    def ack(self, tags: list) -> None:
        if not tags:
            return
        if self.position is not None:
            # the position is on disk before the broker hears of the acks
            self.position.settle([self._offsets.pop(t) for t in tags if t in self._offsets])
        self.broker.ack(tags)

    def rewind(self) -> None:
        """Nothing to do: the broker gives unacknowledged messages again."""

    def close(self) -> None:
        self.broker.close()


class PathSource:
    """Files and trees named on the command line (dd_post), in batches (a
    contracts.Source). Its batches are pipelined (flow/engine.py): the
    last two may be given again."""
    broker = None
    pipelined = True

    def __init__(self, cfg, targets: list[str], batch: int = 256):
        self.cfg = cfg
        self.unlisted = 0      # directories that could not be listed
        self._files = self._expand(targets)
        self.total = len(self._files)
        self._next = 0
        self._batch = batch
        self.done = not self._files
        self.errors = 0
        self.messages = 0      # posts made of the files (a file in blocks makes several)
        self._given: list[tuple[int, int, int]] = []   # where each batch not acked began

    def _expand(self, targets: list[str]) -> list[str]:
        out: list[str] = []
        follow = self.cfg.follow_symlinks or self.cfg.realpath_post
        for t in targets:
            if os.path.isdir(t) and (follow or not os.path.islink(t)):
                if not self.cfg.recursive:
                    log.warning("%s is a directory (recursive is off): skipped", t)
                    continue
                found, unlisted = walk(t, follow)
                out.extend(found)
                self.unlisted += unlisted
            elif os.path.lexists(t):
                out.append(t)
            else:
                raise MessageError(f"{t}: no such file or directory", "path")
        return out

    def connect(self) -> None:
        pass

    def exchanges(self) -> list[str]:
        return []

    def get(self, timeout: float) -> tuple[list[Message], list[Malformed]]:
        chunk = self._files[self._next:self._next + self._batch]
        began = (self._next, self.errors, self.messages)
        self._next += len(chunk)
        self.done = self._next >= len(self._files)
        msgs = []
        for path in chunk:
            try:
                found = file_messages(self.cfg, path)
                msgs += found
                self.messages += len(found)
            except (OSError, MessageError) as exc:
                log.error("cannot post %s: %s", path, exc)
                self.errors += 1
        if msgs:            # (a batch of errors only has nothing to give again)
            self._given.append(began)
        return msgs, []

    def rewind(self) -> None:
        """Make the batches not acknowledged come again (after a lost connection)."""
        if self._given:
            self._next, self.errors, self.messages = self._given[0]
            self._given.clear()
            self.done = False

    def ack(self, tags: list) -> None:
        """The oldest batch given is confirmed."""
        if self._given:
            del self._given[0]

    def close(self) -> None:
        pass


def walk(top: str, follow_symlinks: bool = False) -> tuple[list[str], int]:
    """Every file and symlink under ``top``, sorted, without reading content;
    and how many directories could not be listed."""
    out: list[str] = []
    unlisted = 0
    stack = [top]
    seen: set[str] = set()      # real directories listed: a link loop is listed once
    while stack:
        d = stack.pop()
        if follow_symlinks:
            real = os.path.realpath(d)
            if real in seen:
                log.warning("%s: a directory already listed (a loop of links): skipped", d)
                continue
            seen.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            log.error("cannot list %s: %s", d, exc)
            unlisted += 1
            continue
        subdirs = []
        for e in entries:
            if e.is_dir(follow_symlinks=follow_symlinks):
                subdirs.append(e.path)
            else:
                out.append(e.path)
        stack.extend(reversed(subdirs))
    return out, unlisted
