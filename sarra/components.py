"""Each tool as a few defaults and a choice of stages over the one Flow."""
import os
import re

from . import service
from .broker import make_broker
from .config import paths
from .errors import ConfigError
from .flow.engine import Flow
from .flow.gather import BrokerSource, PathSource
from .flow.housekeeping import Housekeeper
from .flow.nodupe import DuplicateCache
from .flow.publish import Publisher, Reporter, broker_user
from .flow.retry import RetryQueue
from .flow.send import Sender
from .flow.watching import WatchSource
from .flow.work import Downloader
from .plugins import load_hooks
from .throttle import Throttle

# tool defaults (PROTOCOL.md A.14); a config file or the command line overrides them
PRESETS: dict[str, dict] = {
    "subscribe": {"accept_unmatch": False, "mirror": False},
    "post": {"accept_unmatch": True},
    "watch": {"accept_unmatch": True},
    "sara": {"accept_unmatch": True, "mirror": True, "post_exchange": "xpublic",
             "report_exchange": "xreport_in"},
    "shovel": {"accept_unmatch": True, "report_back": False},
    "winnow": {"accept_unmatch": True, "report_back": False, "nodupe_ttl": "20m"},
    "sender": {"accept_unmatch": False, "mirror": True},
    "log": {"accept_unmatch": True, "topic_prefix": "v02.report", "expire": "1d"},
}


def instance() -> int:
    """The instance number a daemon was started as; 0 for a foreground run
    (its retry queue and metrics never mix with a started instance's)."""
    return int(os.environ.get("SARRA_INSTANCE", "0") or 0)


RETRY_FILE = re.compile(r"^retry\.(\d+)\.jsonl$")


def _retry_queue(tool: str, cfg) -> RetryQueue:
    """This instance's retry queue. Instance 1 also takes over the queues of
    instances beyond ``instances`` that no longer run (``instances`` was
    lowered): their failed messages are tried again, not stranded."""
    n = instance()
    path = paths.state_path(tool, cfg.key, f"retry.{n:02d}.jsonl")
    queue = RetryQueue(path, cfg.retry_ttl, cfg.retry_delay, max_tries=cfg.retry_max)
    if n == 1:
        folder = os.path.dirname(path)
        for name in sorted(os.listdir(folder)):
            m = RETRY_FILE.match(name)
            if m and int(m.group(1)) > cfg.instances and not service.alive(
                    tool, cfg.key, int(m.group(1))):
                queue.adopt(os.path.join(folder, name))
    return queue


def _poster(cfg, url: str | None) -> Publisher | None:
    if not url:
        return None
    exchange = cfg.post_exchange or f"xs_{broker_user(url)}"
    if cfg.post_exchange_suffix:
        exchange = f"{exchange}_{cfg.post_exchange_suffix}"
    return Publisher(make_broker(url, heartbeat=cfg.broker_heartbeat), exchange,
                     cfg.post_topic_prefix, cfg.persistent, home=cfg.cluster)


def _post_url(cfg) -> str:
    url = cfg.resolve_url("post_broker") or cfg.resolve_url("broker")
    if not url:
        raise ConfigError("no post_broker (or broker) to post to", option="post_broker")
    if not cfg.post_base_url:
        raise ConfigError("posts need post_base_url (the URL the files are served at)",
                          option="post_base_url")
    return url


def throttle(cfg, kind: str) -> Throttle | None:
    """The configuration's limit on bytes/s or messages/s, shared by its
    instances through a file in its state directory (None: no limit)."""
    rate = cfg.byte_rate_max if kind == "bytes" else cfg.message_rate_max
    if not rate:
        return None
    return Throttle(paths.state_path(cfg.tool, cfg.key, f"throttle.{kind}"), rate)


def _limited(flow: Flow) -> Flow:
    """Every flow: its hooks (a bad one is a ConfigError now, not at the
    first message) and its message rate limit."""
    flow.hooks = load_hooks(flow.cfg)
    flow.throttle = throttle(flow.cfg, "messages")
    return flow


def _daemon(flow: Flow) -> Flow:
    """A flow that runs as a daemon instance: rate limit, duplicate
    suppression (nodupe_ttl) and housekeeping."""
    cfg = flow.cfg
    if cfg.nodupe_ttl > 0:
        flow.nodupe = DuplicateCache(paths.state_path(cfg.tool, cfg.key, "nodupe.sqlite3"),
                                     cfg.nodupe_ttl, cfg.nodupe_basis)
    flow.housekeeper = Housekeeper(
        flow, paths.state_path(cfg.tool, cfg.key, f"metrics.{instance():02d}.json"),
        cfg.heartbeat)
    return _limited(flow)


def post_flow(cfg, targets: list[str]) -> Flow:
    """dd_post: files and trees -> posts."""
    return _limited(Flow(cfg, PathSource(cfg, targets), poster=_poster(cfg, _post_url(cfg)),
                         post_all=True))


def watch_flow(cfg) -> Flow:
    """dd_watch: changes in watched trees -> posts."""
    return _daemon(Flow(cfg, WatchSource(cfg), poster=_poster(cfg, _post_url(cfg)),
                        post_all=True))


def subscribe_flow(cfg, tool: str = "subscribe") -> Flow:
    """dd_subscribe: posts -> downloads -> log messages (and optional re-posts)."""
    source = BrokerSource(cfg, tool)
    reporter = None
    if cfg.report_back:
        reporter = Reporter(None, cfg.report_exchange or f"xs_{source.user}", source.user,
                            cfg.hostname)
    retry = _retry_queue(tool, cfg)
    post_url = cfg.resolve_url("post_broker")
    if post_url and not cfg.post_base_url:
        raise ConfigError("post_broker is set but not post_base_url: re-posts need "
                          "the URL our copies are served at", option="post_base_url")
    worker = None
    if cfg.download:
        worker = Downloader(cfg, tick=lambda _n: source.broker and source.broker.keepalive(),
                            throttle=throttle(cfg, "bytes"))
    return _daemon(Flow(cfg, source, worker, _poster(cfg, post_url), reporter, retry,
                        post_all=not cfg.download))


def sara_flow(cfg) -> Flow:
    """dd_sara: a switch acquiring what its sources post (on the exchanges
    ``source_from_exchange`` vouches for), re-announcing it with its own base URL."""
    return subscribe_flow(cfg, "sara")


def shovel_flow(cfg, tool: str = "shovel") -> Flow:
    """dd_shovel: messages (posts or log messages) copied to another exchange or
    broker as they are; ``post_exchange xr_${SOURCE}`` routes log messages home
    (with ``cluster``: only those about data that entered the network here)."""
    source = BrokerSource(cfg, tool)
    url = cfg.resolve_url("post_broker") or cfg.resolve_url("broker")
    return _daemon(Flow(cfg, source, poster=_poster(cfg, url), post_all=True))


def winnow_flow(cfg) -> Flow:
    """dd_winnow: posts of the same products from several feeds (``exchange``
    names them, comma-separated) -> each distinct file posted once."""
    if cfg.nodupe_ttl <= 0:
        raise ConfigError("dd_winnow needs a duplicate cache lifetime", option="nodupe_ttl")
    return shovel_flow(cfg, "winnow")


def sender_flow(cfg) -> Flow:
    """dd_sender: posts of files on this switch -> each file pushed to
    ``destination`` (SFTP) -> log messages (201 Copied), and with post_broker,
    posts announcing the remote copies at ``post_base_url``."""
    source = BrokerSource(cfg, "sender")
    reporter = None
    if cfg.report_back:
        reporter = Reporter(None, cfg.report_exchange or f"xs_{source.user}", source.user,
                            cfg.hostname)
    retry = _retry_queue("sender", cfg)
    post_url = cfg.resolve_url("post_broker")
    if post_url and not cfg.post_base_url:
        raise ConfigError("post_broker is set but not post_base_url: re-posts need the "
                          "URL the remote copies are served at", option="post_base_url")
    worker = Sender(cfg, tick=lambda _n: source.broker and source.broker.keepalive(),
                    throttle=throttle(cfg, "bytes"))
    return _daemon(Flow(cfg, source, worker, _poster(cfg, post_url), reporter, retry))


FLOWS = {"subscribe": subscribe_flow, "watch": watch_flow, "sara": sara_flow,
         "shovel": shovel_flow, "winnow": winnow_flow, "sender": sender_flow}
