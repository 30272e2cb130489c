"""dd_poll's gather stage: what remote directories hold becomes posts.

Every ``sleep`` seconds a round lists each ``path`` on the server of
``poll_url`` (its subdirectories too with ``recursive``) through the
listing of its scheme (sarra/poll/), and posts each file that is new, or
whose size or modification time changed since it was announced, with the
remote URL as base: subscribers fetch the file from that server. With
``file_age_min``, a new or changed file is announced only once it has been
listed unchanged for that long (a file still being written changes between
two listings).

The round is a generator: the flow takes a batch of posts at a time, so a
listing of any length is never held whole. What was announced is kept in
the state directory (sarra/poll/state.py), committed when the batch's posts
are confirmed (``ack``); a restart announces nothing already announced.
With a lease (sarra/broker/lease.py), only the instance holding it polls.
"""
import logging
import time
from typing import Iterator

from .. import checksum
from ..broker.lease import Lease
from ..config import paths
from ..errors import ConfigError, TransferError
from ..message import Message, format_time
from ..parts import Parts
from ..poll import LISTERS, ListingError
from ..poll.base import SKIP, WAIT, Entry, Key, refusal, verdict
from ..poll.state import PollState
from ..transfer import scheme_of
from .announce import common_headers
from .filter import choose
from .recorded import RecordedBatches

log = logging.getLogger(__name__)

BATCH = 100            # posts handed to the flow at a time
BACKOFF_MAX = 300.0    # seconds: the longest wait after failed rounds
TOLD_MAX = 1000        # refused names remembered as already warned of


def split_url(url: str) -> tuple[str, str]:
    """(origin 'scheme://[user@]host[:port]/', absolute path) of a URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"'{url}' is not a URL (scheme://host/path)", option="poll_url")
    authority, _slash, path = rest.partition("/")
    if not authority:
        raise ConfigError(f"'{url}' names no host", option="poll_url")
    return f"{scheme.lower()}://{authority}/", "/" + path


def directories(base_path: str, listed: list[str]) -> list[str]:
    """The remote directories to list: each ``path`` under the poll_url's
    path (an absolute one as it is), ending in '/'; poll_url's own without any."""
    out = []
    for p in listed or [""]:
        full = p if p.startswith("/") else base_path.rstrip("/") + "/" + p
        parts = [c for c in full.split("/") if c not in ("", ".")]
        if ".." in parts:
            raise ConfigError(f"'{p}': a remote directory with '..'", option="path")
        out.append("/" + "/".join(parts) + ("/" if parts else ""))
    return list(dict.fromkeys(out))


def remote_sum(method: str, name: str) -> str:
    """The ``sum`` of a poll's post for the file ``name``: nothing is read,
    so the content methods become 'computed on download' (doc/protocol.md
    §4.3); ``n`` is the MD5 of the name, ``0`` a random number."""
    if method in checksum.CONTENT_METHODS:
        return f"z,{method}"
    if method == "n":
        return checksum.sum_name("n", name)
    if method == "0":
        return f"0,{checksum.random_value()}"
    return method


class PollSource(RecordedBatches):
    """The gather stage of dd_poll (a contracts.Source; ack and rewind:
    RecordedBatches)."""
    broker = None
    done = False           # a poll never ends by itself

    def __init__(self, cfg, lease: Lease | None = None, tool: str = "poll", **listing):
        self.cfg = cfg
        url = cfg.poll_url
        if not url:
            raise ConfigError("nothing to poll: give poll_url (the server, "
                              "e.g. sftp://user@host/)", option="poll_url")
        if cfg.resolve_url("poll_url") != cfg.credentials.lookup(url):   # written in the file
            raise ConfigError("poll_url must not hold a password (it would be posted): put "
                              "the URL with its password in credentials.conf", option="poll_url")
        self.origin, base_path = split_url(url)
        self.scheme = scheme_of(url)
        if self.scheme not in LISTERS:
            raise ConfigError(f"cannot list {self.scheme} URLs (listings: "
                              f"{', '.join(LISTERS.names())})", option="poll_url")
        self.dirs = directories(base_path, cfg.path)
        self.base_url = cfg.post_base_url or self.origin
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        self.base_path = split_url(self.base_url)[1]
        if not all(d.startswith(self.base_path) for d in self.dirs):
            raise ConfigError(f"post_base_url {self.base_url}: its path is not above the "
                              f"polled directories ({', '.join(self.dirs)})",
                              option="post_base_url")
        self.interval = cfg.sleep if cfg.sleep > 0 else 1.0
        self.lister = LISTERS.get(self.scheme)(timeout=cfg.timeout, tls=cfg.tls,
                                               credentials=cfg.credentials, **listing)
        self.lease = lease
        self.state_file = paths.state_path(tool, cfg.key, "poll.db")
        self.state: PollState | None = None
        self.round: Iterator[Message] | None = None
        self.next_round = 0.0
        self.failures = 0
        self.errors = 0          # paths of the current round that could not be listed
        self.ready: list[Message] = []
        self.batch: list[Message] = []
        self.rounds = 0
        self.told: set[tuple[str, str]] = set()     # refused names already warned of
        self.stats = dict.fromkeys(("listed", "announced", "unchanged", "waiting", "refused",
                                    "skipped"), 0)

    # -- the Flow's source interface ---------------------------------------
    def connect(self) -> None:
        if self.state is None:
            self.state = PollState(self.state_file)
            log.info("polling %s every %gs: %s (%d announced before)", self.origin,
                     self.interval, ", ".join(self.dirs), len(self.state))

    def exchanges(self) -> list[str]:
        return []

    def get(self, timeout: float) -> tuple[list[Message], list]:
        if not self._active(timeout):
            return [], []
        if self.ready:
            self.batch, self.ready = self.ready[:BATCH], self.ready[BATCH:]
            return self.batch, []
        now = time.monotonic()
        if self.round is None and now >= self.next_round:
            self.round = self._round()
            self.next_round = now + self.interval
        if self.round is None:
            time.sleep(max(0.0, min(timeout, self.next_round - now)))
            return [], []
        self.batch = []          # what the round gave is posted, even if it fails then
        try:
            for msg in self.round:
                self.batch.append(msg)
                if len(self.batch) >= BATCH:
                    break
            else:
                self._round_done()
        except Exception as exc:   # noqa: BLE001 - a bug in a listing must not stop the poller
            log.debug("the round failed", exc_info=True)
            self.round = None
            self._failed(f"{exc.__class__.__name__}: {exc}")
        return self.batch, []

    def close(self) -> None:
        self._abandon()
        self.lister.close()
        if self.lease is not None:
            self.lease.close()
        if self.state is not None:
            self.state.close()
            self.state = None

    # -- rounds -------------------------------------------------------------
    def _active(self, timeout: float) -> bool:
        """Whether this instance polls now (it holds the lease, or there is
        none); one that lost the lease drops what it had not posted."""
        if self.lease is None or self.lease.held(0.0 if self.round or self.ready else
                                                 min(timeout, 1.0)):
            return True
        if self.round is not None or self.ready:
            log.warning("not polling: the lease is lost; what was not posted is left to "
                        "the instance that holds it")
            self._abandon()
        return False

    def _abandon(self) -> None:
        if self.round is not None:
            self.round.close()
            self.round = None
        self.ready, self.batch = [], []
        if self.state is not None:
            self.state.rollback()

    def _round_done(self) -> None:
        self.round = None
        if self.errors:
            self._failed(f"{self.errors} of the {len(self.dirs)} paths could not be listed")
        else:
            self.failures = 0
        if not self.ready and not self.batch:
            self.state.commit()      # what is waiting, what was forgotten (else: at ack)
        s, self.rounds = self.stats, self.rounds + 1
        text = (f"{s['listed']} files listed, {s['announced']} announced, {s['waiting']} "
                f"waiting (file_age_min), {s['unchanged']} unchanged, {s['refused']} names "
                f"refused, {s['skipped']} directories skipped")
        if self.rounds == 1:
            log.info("first round: %s", text)
        elif s["announced"] or s["refused"] or s["skipped"]:
            log.info("round %d: %s", self.rounds, text)
        else:
            log.debug("round %d: %s", self.rounds, text)
        self.stats = dict.fromkeys(self.stats, 0)

    def _failed(self, why: str) -> None:
        """A round that could not list everything: the next one sooner than
        ``sleep`` (1 s, doubling at each failure up to ``sleep``, at least
        BACKOFF_MAX)."""
        self.failures += 1
        delay = min(2.0 ** (self.failures - 1), max(self.interval, BACKOFF_MAX))
        self.next_round = time.monotonic() + delay
        log.error("polling %s: %s; next round in %gs", self.origin, why, delay)

    def _round(self) -> Iterator[Message]:
        """The posts of one round. A directory whose listing is not
        understood is skipped (a warning); a path the server cannot list
        (refused login, lost connection, no such directory) is an error, and
        the round goes on with the next path."""
        self.errors = 0
        for top in self.dirs:
            stack = [top]
            try:
                while stack:
                    directory = stack.pop()
                    try:
                        yield from self._directory(directory, stack)
                    except ListingError as exc:
                        self.stats["skipped"] += 1
                        log.warning("%s: listing skipped this round: %s", directory, exc)
            except TransferError as exc:
                self.errors += 1
                log.error("%s: %s", top, exc)

    def _directory(self, directory: str, stack: list[str]) -> Iterator[Message]:
        now = time.time()
        for e in self.lister.entries(self.origin + directory.lstrip("/")):
            why = refusal(e.name)
            if why is not None:
                self.stats["refused"] += 1
                self._refused(directory, why)
                continue
            path = directory + e.name
            if e.is_dir:
                if self.cfg.recursive:
                    stack.append(path + "/")
                continue
            self.stats["listed"] += 1
            self.state.see(path)
            msg = self._consider(path, e, now)
            if msg is not None:
                yield msg
        self.state.forget_unseen(directory)

    def _refused(self, directory: str, why: str) -> None:
        """A warning for each name refused, once (then at debug level)."""
        said = (directory, why)
        if said in self.told:
            log.debug("%s: a name of the listing refused: %s", directory, why)
            return
        if len(self.told) >= TOLD_MAX:
            self.told.clear()
        self.told.add(said)
        log.warning("%s: a name of the listing refused (never posted): %s", directory, why)

    def _consider(self, path: str, e: Entry, now: float) -> Message | None:
        key = Key.of(e)
        action, waiting = verdict(key, self.state.announced(path), self.state.waiting(path),
                                  now, self.cfg.file_age_min)
        if action == SKIP:
            self.stats["unchanged"] += 1
            return None
        msg = self._message(path, e)
        if self.cfg.masks and not choose(msg, self.cfg.masks,
                                         self.cfg.accept_unmatch is not False, None)[0]:
            self.state.wait(path, None)      # rejected: nothing to wait for
            return None
        if action == WAIT:
            self.stats["waiting"] += 1
            self.state.wait(path, waiting)
            return None
        self.state.announce(path, key)
        self.stats["announced"] += 1
        return msg

    def _message(self, path: str, e: Entry) -> Message:
        headers = common_headers(self.cfg)
        headers["sum"] = remote_sum(self.cfg.sum, e.name)
        if e.size is not None and e.exact:
            headers["parts"] = str(Parts.whole(e.size))
        if self.cfg.preserve_time and e.mtime is not None:
            headers["mtime"] = headers["atime"] = format_time(e.mtime)
        return Message(format_time(time.time()), self.base_url, path[len(self.base_path):],
                       headers)
