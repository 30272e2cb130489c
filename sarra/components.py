"""Each tool's flow: its collaborators chosen and built, handed to ``Flow``.

sarra/tools.py says what each tool is and names its factory here; a
factory builds everything the flow needs (a ConfigError now, not at the
first message) and returns the complete Flow.
"""
import os
import re
from typing import Callable
from urllib.parse import urlsplit

from . import lazy
from .broker import MQTT_SCHEMES, make_broker
from .broker.lease import Lease
from .config import broker_user, paths
from .errors import ConfigError
from .flow.engine import Flow
from .flow.gather import BrokerSource, PathSource
from .flow.ledger import FILE as LEDGER_FILE
from .flow.ledger import Ledger
from .flow.logview import LogPrinter
from .flow.nodupe import DuplicateCache
from .flow.publish import Outlet, Publisher, Reporter
from .flow.quarantine import Quarantine
from .flow.retry import RetryQueue
from .flow.send import Sender
from .flow.polling import PollSource
from .flow.private import Private
from .flow.watching import WatchSource
from .flow.work import Downloader
from .plugins import load_hooks
from .registry import load_dotted
from .throttle import Throttle
from .tools import BY_NAME, TOOLS

service = lazy.module("sarra.service")   # (the process table: for instances, not dd_post)

# what a daemon's foreground run calls after each batch (its progress line on a terminal)
OnBatch = Callable[[Flow], None] | None

# each tool's defaults (sarra/tools.py); a config file or the command line overrides them
PRESETS: dict[str, dict] = {t.name: t.presets for t in TOOLS}


instance = paths.instance


RETRY_FILE = re.compile(r"retry\.([0-9]+)\.jsonl")


def _retry_queue(tool: str, cfg) -> RetryQueue:
    """This instance's retry queue. Instance 1 also takes over the queues of
    instances beyond ``instances`` that no longer run (``instances`` was
    lowered): their failed messages are tried again, not stranded."""
    n = instance()
    path = paths.state_path(tool, cfg.key, f"retry.{n:02d}.jsonl")
    queue = RetryQueue(path, cfg.retry_ttl, cfg.retry_delay, max_tries=cfg.retry_max,
                       fsync=cfg.fsync)
    if n == 1:
        folder = os.path.dirname(path)
        for name in sorted(os.listdir(folder)):
            m = RETRY_FILE.fullmatch(name)
            if m and int(m.group(1)) > cfg.instances and not service.alive(
                    tool, cfg.key, int(m.group(1))):
                queue.adopt(os.path.join(folder, name))
    return queue


def _poster(cfg, urls: list[str], mandatory: bool = False,
            readers: str = "") -> Publisher | None:
    """A publisher on ``urls`` (one broker URL, or a cluster's nodes)."""
    if not urls:
        return None
    exchange = cfg.post_exchange or f"xs_{broker_user(urls[0])}"
    if cfg.post_exchange_suffix:
        exchange = f"{exchange}_{cfg.post_exchange_suffix}"
    return Publisher(make_broker(urls, heartbeat=cfg.broker_heartbeat, tls=cfg.tls), exchange,
                     cfg.post_topic_prefix, cfg.persistent, home=cfg.cluster,
                     mandatory=mandatory, split=cfg.post_exchange_split,
                     post_format=cfg.post_format, topic=cfg.post_topic,
                     wis2=dict(metadata_id=cfg.wis2_metadata_id, data_id=cfg.wis2_data_id),
                     readers=readers)


def _announcer(cfg, mandatory: bool = False) -> Publisher | Outlet:
    """Where dd_post's and dd_watch's posts go: the broker, or with
    ``outlet json|url`` standard output (no broker needed)."""
    if not cfg.post_base_url:
        raise ConfigError("posts need post_base_url (the URL the files are served at)",
                          option="post_base_url")
    if cfg.outlet != "post":
        return Outlet(cfg.outlet)
    url = cfg.resolve_urls("post_broker") or cfg.resolve_urls("broker")
    if not url:
        raise ConfigError("no post_broker (or broker) to post to (or outlet json or url: "
                          "posts on standard output)", option="post_broker")
    return _poster(cfg, url, mandatory, readers=cfg.get("readers") or "")


def _repost_url(cfg, what: str) -> list[str]:
    """post_broker for re-posts of the copies a worker makes (at post_base_url)."""
    url = cfg.resolve_urls("post_broker")
    if url and not cfg.post_base_url:
        raise ConfigError(f"post_broker is set but not post_base_url: re-posts need the "
                          f"URL {what} are served at", option="post_base_url")
    return url


def _reporter(cfg, source: BrokerSource) -> Reporter | None:
    """Log messages go back on the broker consumed from, to the user's
    exchange (or report_exchange)."""
    if not cfg.report_back:
        return None
    return Reporter(source.broker, cfg.report_exchange or f"xs_{source.user}", source.user,
                    cfg.hostname)


def throttle(cfg, kind: str) -> Throttle | None:
    """The configuration's limit on bytes/s or messages/s, shared by its
    instances through a file in its state directory (None: no limit)."""
    rate = cfg.byte_rate_max if kind == "bytes" else cfg.message_rate_max
    if not rate:
        return None
    return Throttle(paths.state_path(cfg.tool, cfg.key, f"throttle.{kind}"), rate)


def _flow(cfg, source, **parts) -> Flow:
    """Every flow: its hooks (a bad one is a ConfigError now, not at the
    first message) and its message rate limit."""
    return Flow(cfg, source, hooks=load_hooks(cfg), throttle=throttle(cfg, "messages"),
                **parts)


def _daemon(cfg, source, **parts) -> Flow:
    """A flow that runs as a daemon instance: also duplicate suppression
    (nodupe_ttl) and housekeeping (metrics file, periodic log line, sweep)."""
    nodupe = None
    if cfg.nodupe_ttl > 0:
        nodupe = DuplicateCache(paths.state_path(cfg.tool, cfg.key, "nodupe.sqlite3"),
                                cfg.nodupe_ttl, cfg.nodupe_basis)
    metrics = paths.state_path(cfg.tool, cfg.key, f"metrics.{instance():02d}.json")
    quarantine = Quarantine(paths.state_path(cfg.tool, cfg.key, "quarantine"),
                            cfg.quarantine_deaths, cfg.fsync)
    return _flow(cfg, source, nodupe=nodupe, metrics=metrics, quarantine=quarantine,
                 **parts)


class _Ticks:
    """The tick of long transfers (about once a second): keep the consumer's
    connection alive, and let the housekeeper write the metrics when due (a
    long transfer is work, not a stuck loop). ``flow`` is set once made."""

    def __init__(self, source: BrokerSource):
        self.source = source
        self.flow: Flow | None = None

    def __call__(self, _n: int) -> None:
        self.source.broker.keepalive()
        if self.flow is not None and self.flow.housekeeper is not None:
            self.flow.housekeeper.progress()


def _ticked(ticks: _Ticks, flow: Flow) -> Flow:
    ticks.flow = flow
    return flow


def post_flow(cfg, targets: list[str], connect_attempts: int = 0,
              on_batch: Callable[[Flow], None] | None = None) -> Flow:
    """dd_post: files and trees -> posts (mandatory: those no queue takes are
    counted, and dd_post warns of them)."""
    return _flow(cfg, PathSource(cfg, targets), poster=_announcer(cfg, True),
                 connect_attempts=connect_attempts, on_batch=on_batch)


def watch_flow(cfg, on_batch: OnBatch = None) -> Flow:
    """dd_watch: changes in watched trees -> posts (with vip, by the one
    instance holding the lease)."""
    lease = None
    if cfg.vip is not None:
        lease = _lease(cfg, "watch", "watching")
    return _daemon(cfg, WatchSource(cfg, lease=lease), poster=_announcer(cfg),
                   on_batch=on_batch)


def _lease(cfg, tool: str, what: str) -> Lease:
    """The configuration's lease, on the broker it posts to."""
    urls = cfg.resolve_urls("post_broker") or cfg.resolve_urls("broker")
    if not urls:
        raise ConfigError("no post_broker (or broker) to post to", option="post_broker")
    if any(u.split(":", 1)[0].lower() in MQTT_SCHEMES for u in urls):
        raise ConfigError(f"dd_{tool} holds its lease (one instance at a time) on an AMQP "
                          f"broker: post to RabbitMQ (amqp://, amqps://), not MQTT",
                          option="post_broker")
    return Lease(make_broker(urls, heartbeat=cfg.broker_heartbeat, tls=cfg.tls,
                             connection_name=f"sarra {tool}/{cfg.key} lease"),
                 lease_name(cfg, urls[0], tool), what=what)


def lease_name(cfg, url: str, tool: str) -> str:
    """The lease queue of a configuration: its instances, on any machine,
    name the same one (q_<user>.<tool>.<config>.lease)."""
    return f"q_{broker_user(url)}.{tool}.{cfg.key}.lease"


def poll_flow(cfg, on_batch: OnBatch = None) -> Flow:
    """dd_poll: listings of remote directories -> posts of what is new or
    changed there, by the one instance holding the lease."""
    lease = _lease(cfg, "poll", "polling")
    urls = cfg.resolve_urls("post_broker") or cfg.resolve_urls("broker")
    return _daemon(cfg, PollSource(cfg, lease), poster=_poster(cfg, urls), on_batch=on_batch)


def subscribe_flow(cfg, tool: str = "subscribe", on_batch: OnBatch = None) -> Flow:
    """dd_subscribe: posts -> downloads -> log messages (and optional re-posts).
    With download off, what is accepted is posted on as it came."""
    source = BrokerSource(cfg, tool)
    poster = _poster(cfg, _repost_url(cfg, "our copies"))
    worker = None
    ticks = _Ticks(source)
    if cfg.download:
        worker = Downloader(cfg, tick=ticks, throttle=throttle(cfg, "bytes"))
    # a switch's dd_sara keeps restricted posts restricted (flow/private.py)
    private = Private(cfg) if tool == "sara" else None
    return _ticked(ticks, _daemon(cfg, source, worker=worker, poster=poster,
                                  reporter=_reporter(cfg, source),
                                  retry=_retry_queue(tool, cfg), on_batch=on_batch,
                                  private=private))


def sara_flow(cfg, on_batch: OnBatch = None) -> Flow:
    """dd_sara: a switch acquiring what its sources post (on the exchanges
    ``source_from_exchange`` vouches for), re-announcing it with its own base URL."""
    return subscribe_flow(cfg, "sara", on_batch)


def shovel_flow(cfg, tool: str = "shovel", on_batch: OnBatch = None) -> Flow:
    """dd_shovel: messages (posts or log messages) copied to another exchange or
    broker as they are; ``post_exchange xr_${SOURCE}`` routes log messages home
    (with ``cluster``: only those about data that entered the network here)."""
    source = BrokerSource(cfg, tool)
    url = cfg.resolve_urls("post_broker") or cfg.resolve_urls("broker")
    return _daemon(cfg, source, poster=_poster(cfg, url), on_batch=on_batch)


def winnow_flow(cfg, on_batch: OnBatch = None) -> Flow:
    """dd_winnow: posts of the same products from several feeds (``exchange``
    names them, comma-separated) -> each distinct file posted once."""
    if cfg.nodupe_ttl <= 0:
        raise ConfigError("dd_winnow needs a duplicate cache lifetime", option="nodupe_ttl")
    return shovel_flow(cfg, "winnow", on_batch)


def sender_flow(cfg, on_batch: OnBatch = None) -> Flow:
    """dd_sender: posts of files on this switch -> each file pushed to
    ``destination`` (SFTP) -> log messages (201 Copied), and with post_broker,
    posts announcing the remote copies at ``post_base_url``."""
    source = BrokerSource(cfg, "sender")
    poster = _poster(cfg, _repost_url(cfg, "the remote copies"))
    ticks = _Ticks(source)
    worker = Sender(cfg, tick=ticks, throttle=throttle(cfg, "bytes"))
    return _ticked(ticks, _daemon(cfg, source, worker=worker, poster=poster,
                                  reporter=_reporter(cfg, source),
                                  retry=_retry_queue("sender", cfg), on_batch=on_batch))


LOG_IDLE_EXIT = 1.0     # dd_log without --follow stops after this long with nothing new


def log_flow(cfg) -> Flow:
    """dd_log: the log messages about the user's own data (``xr_<user>``,
    or ``exchange``) -> lines on stdout. The first run subscribes (a durable
    queue); each run shows what arrived since, and ``follow`` keeps showing
    what comes."""
    if not cfg.is_set("exchange"):
        cfg.override("exchange", f"xr_{broker_user(cfg.resolve_url('broker'))}")
    source = BrokerSource(cfg, "log", idle_exit=None if cfg.follow else LOG_IDLE_EXIT)
    ledger = None
    if cfg.ledger_max_age > 0:
        ledger = Ledger(ledger_path(cfg.key), cfg.ledger_max_age,
                        urlsplit(cfg.broker or "").hostname or "")
    return _flow(cfg, source, poster=LogPrinter(cfg.format, ledger=ledger, show=not cfg.file),
                 connect_attempts=1)


def ledger_path(config: str, make: bool = True) -> str:
    """The ledger of dd_log's configuration ``config`` (sarra/flow/ledger.py);
    its directory made when ``make``."""
    if make:
        return paths.state_path("log", config, LEDGER_FILE)
    return os.path.join(paths.state_dir(), "log", config, LEDGER_FILE)


def flow_for(tool: str, cfg, **options) -> Flow:
    """The flow of ``tool`` (sarra/tools.py names its factory)."""
    info = BY_NAME.get(tool)
    if info is None or info.flow is None:
        raise ConfigError(f"dd_{tool} runs no flow", option="tool")
    return load_dotted(info.flow, ConfigError)(cfg, **options)
