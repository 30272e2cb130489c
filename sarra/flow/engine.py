"""The flow: gather -> filter -> on_message -> work -> on_part/on_file -> post (on_post)
-> log -> ack.

Every tool is this loop with different stages switched on. A message is
acknowledged only after its work is done and its post and log message are
confirmed by the broker; a lost connection means the batch comes again.
"""
import logging
import os
import time
from collections import Counter
from dataclasses import replace

from .. import checksum
from ..broker import reconnecting
from ..errors import (BrokerError, ChecksumError, MessageError, PluginError, TransferError,
                      UnsafePathError)
from ..message import Message
from ..parts import Parts
from ..plugins import Hooks
from ..worklist import Worklist
from .announce import relpath_for
from .filter import choose, default_placement

log = logging.getLogger(__name__)


class Flow:
    def __init__(self, cfg, source, worker=None, poster=None, reporter=None,
                 retry=None, hooks: Hooks | None = None, post_all: bool = False):
        self.cfg = cfg
        self.source = source
        self.worker = worker          # None: nothing to do but pass messages on
        self.poster = poster          # Publisher for posts downstream, or None
        self.reporter = reporter      # Reporter for log messages, or None
        self.retry = retry            # RetryQueue, or None
        self.hooks = hooks if hooks is not None else Hooks()
        self.post_all = post_all      # post every accepted message (dd_post)
        self.fallback = default_placement(cfg) if worker is not None else None
        self.stats: Counter = Counter()
        self.bytes = 0
        self.stopping = False
        self.on_batch = None          # callback(flow) after each batch (progress)
        self.connect_attempts = 0     # 0: try to reach the broker forever (daemons)
        self.throttle = None          # messages/s, shared by the instances
        self.housekeeper = None       # metrics file, periodic log line, stale files
        self.nodupe = None            # DuplicateCache, or None
        # what source_from_exchange trusts as published by feeders: the
        # exchanges the source reads (a broker source's, once)
        read = getattr(source, "exchanges", None)
        self.read_exchanges = frozenset(read()) if read is not None else frozenset()

    # -- the loop ----------------------------------------------------------
    def run(self) -> None:
        self._connect()
        try:
            while not self.stopping and not self.source.done:
                try:
                    self.step(timeout=1.0)
                except BrokerError as exc:
                    if not exc.recoverable:
                        raise
                    log.warning("broker connection lost (%s); the batch will come again", exc)
                    self._reconnect()
                if self.housekeeper is not None:
                    self.housekeeper.tick()
        finally:
            if self.housekeeper is not None:
                self.housekeeper.tick(final=True)
            self.close()

    def _connect(self) -> None:
        reconnecting(self._open_all, lambda: None, "connect",
                     attempts=self.connect_attempts, stop=lambda: self.stopping)

    def _open_all(self) -> None:
        self.source.connect()
        src = getattr(self.source, "broker", None)
        if self.reporter is not None and self.reporter.broker is None:
            self.reporter.broker = src   # logs go back on the broker we consume from
        for pub in (self.poster, self.reporter):
            if pub is not None:
                if pub.broker is not src:
                    pub.broker.connect()
                pub.declare()

    def _reconnect(self) -> None:
        for b in self._brokers():
            b.close()
        time.sleep(0.5)
        self._connect()

    def _brokers(self) -> list:
        out = []
        for b in (getattr(self.source, "broker", None),
                  self.poster and self.poster.broker, self.reporter and self.reporter.broker):
            if b is not None and all(b is not o for o in out):
                out.append(b)
        return out

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.hooks.close()
        for b in self._brokers():
            b.close()

    # -- one batch ----------------------------------------------------------
    def step(self, timeout: float) -> int:
        msgs, bad = self.source.get(timeout)
        if self.throttle and msgs:
            self.throttle.consume(len(msgs))
        tries: dict[int, int] = {}
        if self.retry is not None and len(msgs) < self.cfg.prefetch:
            again, tries = self.retry.take_due(self.cfg.prefetch - len(msgs))
            for m in again:
                m.from_retry = True      # admitted once already: not a duplicate
            msgs = msgs + again
        if not msgs and not bad:
            return 0
        wl = Worklist(incoming=list(msgs))
        if bad:
            self.stats["malformed"] += len(bad)
        try:
            self.report_malformed(bad)
            self.process(wl, tries)
        except BrokerError:
            if hasattr(self.source, "rewind"):
                self.source.rewind()
            if self.retry is not None:
                self.retry.release()
            if self.nodupe is not None:
                self.nodupe.release()
            raise
        self.source.ack([m.delivery_tag for m in wl.settled() + wl.failed
                         if m.delivery_tag is not None] + [b[0] for b in bad])
        if self.retry is not None:
            self.retry.release()   # what was not tried (stopping) stays queued
        if self.nodupe is not None:   # what a stop left undone comes again: not a duplicate
            self.nodupe.settle(wl.settled() + wl.failed)
        if self.on_batch is not None:
            self.on_batch(self)
        return len(msgs)

    def process(self, wl: Worklist, tries: dict[int, int]) -> None:
        places = self.filter(wl)
        self.run_hooks("on_message", wl)
        if self.worker is not None:
            self.work(wl, places, tries)
        else:
            for m in list(wl.incoming):
                wl.move(m, "ok", "accepted")
        self.run_hooks("on_part", wl)
        self.run_hooks("on_file", wl)
        self.post(wl, places)
        quiet = self.queue_failures(wl, tries)
        self.report(wl, quiet)
        for pub in (self.poster, self.reporter):
            if pub is not None:
                pub.flush()
        if self.retry is not None:
            self.retry.save()   # before the broker is told (ack): a crash loses nothing
        rejected = {id(m) for m in wl.rejected}
        for m in wl.all():
            oc = wl.outcome(m)
            if oc and (oc.code or oc.tally):
                self.stats[oc.code or oc.tally] += 1
            elif id(m) in rejected:
                self.stats["rejected"] += 1
            elif not self.post_all:
                self.stats["skipped"] += 1

    # -- stages ---------------------------------------------------------------
    def filter(self, wl: Worklist) -> dict[int, object]:
        places: dict[int, object] = {}
        masks = getattr(self.cfg, "masks", [])
        unmatch = bool(self.cfg.accept_unmatch)
        for m in list(wl.incoming):
            if self.cfg.source_from_exchange and m.exchange and not self._identify(wl, m):
                continue                 # (a message made here has no exchange to vouch)
            if self.cfg.msg_to_clusters and not self._routed_here(wl, m):
                continue
            ok, placement, why = choose(m, masks, unmatch, self.fallback)
            if not ok:
                wl.move(m, "rejected", why)  # filtered out: nothing to report
            elif (self.nodupe is not None and not getattr(m, "from_retry", False)
                  and not self.nodupe.is_new(m)):
                wl.move(m, "rejected", "duplicate (seen in the last nodupe_ttl)",
                        tally="duplicate")
            else:
                places[id(m)] = placement
        return places

    def _routed_here(self, wl: Worklist, m: Message) -> bool:
        """On a link between switches (PROTOCOL.md A.10): a post goes on only
        when its ``to_clusters`` (comma-separated; ALL: everywhere) names one
        of ``msg_to_clusters``, and never back into the switch it came from;
        a log message goes back toward where its data came from: its
        ``from_cluster`` must be one of ``msg_to_clusters``."""
        if m.report is not None:
            wanted = m.headers.get("from_cluster")
            if wanted is None:
                wl.move(m, "rejected", "a log message without from_cluster")
                return False
        elif self.cfg.cluster and m.headers.get("from_cluster") == self.cfg.cluster:
            wl.move(m, "rejected", f"loop: from this cluster ({self.cfg.cluster})")
            return False
        else:
            wanted = m.headers.get("to_clusters")
        if wanted is None:
            return True
        dest = {c.strip() for c in wanted.split(",") if c.strip()}
        here = {c.strip() for c in self.cfg.msg_to_clusters.split(",") if c.strip()}
        if "ALL" in dest or dest & here:
            return True
        wl.move(m, "rejected", f"to_clusters {wanted}: not through here ({', '.join(here)})")
        return False

    def _identify(self, wl: Worklist, m: Message) -> bool:
        """Anti-spoofing (PROTOCOL.md A.8): who sent ``m`` is who owns the
        ``xs_<user>`` exchange it was published to. A post gets
        ``source=<user>`` and ``from_cluster=<cluster>`` whatever it said (and
        ``to_clusters=<cluster>``, or the ``to_clusters`` option, when it
        named no destination); a log
        message must carry ``<user>`` in its user field. Messages published
        straight to the exchange read (xsarra, xreport_in: only feeders, and
        links into xreport_in, write there) are trusted as they are; any
        other exchange is refused: one bound into ours by a user (xpublic
        bound to xs_<user> would feed the switch its own announcements)."""
        user = exchange_user(m.exchange)
        if user is None:
            if m.exchange in self.read_exchanges:
                return True
            wl.move(m, "rejected", f"not from a user exchange: {m.exchange}", 403)
            return False
        if m.report is not None:
            if m.report.user != user:
                wl.move(m, "rejected", f"log message by '{m.report.user}' sent on "
                        f"{m.exchange}: dropped", tally="spoofed")
                return False
            return True
        if m.base_url.lower().startswith("file:"):
            # a user names files of its own servers, never of the switch's
            wl.move(m, "rejected", f"a post of {user} may not name a local file "
                    f"({m.base_url})", 403)
            return False
        m.headers["source"] = user
        m.headers.pop("from_cluster", None)
        if self.cfg.cluster:
            m.headers["from_cluster"] = self.cfg.cluster
        # a source that names no destination means this switch: links forward
        # only what is destined beyond it (PROTOCOL.md B 6.4: the to_clusters
        # option, else here)
        if not m.headers.get("to_clusters", "").strip():
            home = self.cfg.to_clusters or self.cfg.cluster
            if home:
                m.headers["to_clusters"] = home
        return True

    def run_hooks(self, stage: str, wl: Worklist) -> None:
        """Run ``stage``'s chain (plugins.Hooks) on each message it concerns
        (``_concerns``). A SKIP at on_message rejects the message: no work,
        nothing reported; after the work the message keeps its status (and
        its log message) but is not posted. A hook that fails: 503."""
        if not self.hooks.has(stage):
            return
        pending = wl.incoming if stage == "on_message" else wl.ok
        for m in [m for m in pending if self._concerns(stage, m, wl)]:
            try:
                skipper = self.hooks.skipped_by(stage, m)
            except PluginError as exc:   # logged by Hooks; the flow goes on
                wl.move(m, "rejected", str(exc), 503)
                continue
            if skipper is not None:
                self._skip(wl, m, f"skipped by {stage} hook '{skipper}'")

    def _concerns(self, stage: str, m: Message, wl: Worklist) -> bool:
        """on_message and on_post: every message. on_part: each block of a
        file that arrived; on_file: each whole file that arrived (a whole
        file downloaded, or the block that completed one). In a flow that
        does no work (posting, or download off), what is announced counts
        as arrived (on_file: with its last block)."""
        if stage in ("on_message", "on_post"):
            return True
        if m.operation != "file":
            return False
        oc = wl.outcome(m)
        code = oc.code if oc is not None else None
        arrived = (201, 307) if stage == "on_part" else (201,)   # 307: kept as a part file
        if code not in arrived and not (self.worker is None and code is None):
            return False
        try:
            p = m.parts
        except MessageError:
            p = None
        block = p is not None and not p.is_whole
        if stage == "on_part":
            return block
        return (not block or getattr(m, "completed", False)
                or (self.worker is None and p.bno == p.blktot - 1))

    @staticmethod
    def _skip(wl: Worklist, m: Message, why: str) -> None:
        """Out of ``ok``/``incoming`` (not posted), keeping any status to report."""
        oc = wl.outcome(m)
        if oc is not None and oc.code is not None:
            wl.move(m, "rejected", f"{oc.reason} ({why})", oc.code)
        else:
            wl.move(m, "rejected", why)

    def work(self, wl: Worklist, places: dict, tries: dict[int, int]) -> None:
        for m in list(wl.incoming):
            if self.stopping:
                break  # unacknowledged: the broker gives it to us again
            try:
                target = self.worker.target(m, places[id(m)])
                if m.operation == "delete" and m.headers.get("newname"):
                    target = target._replace(rename_to=self._placed(m, m.headers["newname"]))
            except MessageError as exc:
                wl.move(m, "rejected", f"unsafe path: {exc}", 403)
                continue
            self._apply(wl, m, target, tries)

    def _placed(self, m: Message, relpath: str) -> str | None:
        """Where ``m`` would go locally if it named ``relpath`` (None: we do
        not accept that name). The old-name post of a rename whose new name
        we accept renames the file instead of deleting it (PROTOCOL.md 1.3)."""
        probe = replace(m, relpath=relpath)
        ok, placement, _why = choose(probe, getattr(self.cfg, "masks", []),
                                     bool(self.cfg.accept_unmatch), self.fallback)
        return self.worker.target(probe, placement).path if ok else None

    def _apply(self, wl: Worklist, m: Message, target, tries: dict[int, int]) -> None:
        attempts = max(1, self.cfg.attempts)
        for attempt in range(1, attempts + 1):
            tries[id(m)] = tries.get(id(m), 0) + 1
            try:
                code, text = self.worker.apply(m, target)
            except UnsafePathError as exc:
                wl.move(m, "rejected", f"unsafe path: {exc}", 403)
                return
            except (MessageError, ValueError) as exc:   # ValueError: e.g. a NUL in a name
                wl.move(m, "rejected", str(exc), 417)
                return
            except ChecksumError as exc:
                err, code, retry = exc, 499, True
            except TransferError as exc:
                err, code, retry = exc, exc.code, exc.recoverable
            except OSError as exc:
                err, code, retry = exc, 499, True
            else:
                m.local_path, m.local_root = target.path, target.root
                wl.move(m, "ok", text, code)
                if code == 201 and m.operation == "file":
                    p = m.parts
                    self.bytes += p.length if p and not p.is_whole else (m.size or 0)
                return
            if not retry or attempt == attempts:
                wl.move(m, "failed" if retry else "rejected", f"{err}", code)
                return
            log.info("%s: attempt %d failed (%s); trying again", m.relpath, attempt, err)
            time.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))

    def post(self, wl: Worklist, places: dict) -> None:
        if self.poster is None:
            return
        for m in list(wl.ok):
            oc = wl.outcome(m)
            if self.post_all:
                if self._vetted(wl, m, m) and self._publish(self.poster.publish, m):
                    self.stats["posted"] += 1
            elif oc and (oc.code == 201 or (oc.code == 304 and self._repost_304(m))):
                if not self._whole(m):
                    continue     # a block: the file is announced once it is whole
                self._publish(lambda x: self._send_repost(wl, x), m)

    def _send_repost(self, wl: Worklist, m: Message) -> None:
        out = self.repost(m)
        if self._vetted(wl, m, out):
            self.poster.publish(out)

    def _vetted(self, wl: Worklist, m: Message, out: Message) -> bool:
        """The on_post chain on ``out``, the post about ``m``: True to publish.
        A SKIP leaves ``m``'s status as it is; a failing hook reports 503."""
        if not self.hooks.has("on_post"):
            return True
        if out is not m and hasattr(m, "local_path"):
            out.local_path, out.local_root = m.local_path, m.local_root
        try:
            skipper = self.hooks.skipped_by("on_post", out)
        except PluginError as exc:
            wl.move(m, "rejected", str(exc), 503)
            return False
        if skipper is None:
            return True
        self._skip(wl, m, f"not posted: skipped by on_post hook '{skipper}'")
        return False

    @staticmethod
    def _whole(m: Message) -> bool:
        """A whole file, or the block that completed one (its re-post then
        announces the whole file): blocks of files still being put together
        are not announced, their final name does not exist yet."""
        try:
            p = m.parts
        except MessageError:
            return True
        return p is None or p.is_whole or getattr(m, "completed", False)

    @staticmethod
    def _repost_304(m: Message) -> bool:
        """A file found already in place is announced downstream all the same
        when the broker gives its message again (the batch that got it may
        have died before its post was confirmed: posts are at least once), or
        when it is a rename's new name (the old-name post renamed it)."""
        return m.redelivered or "oldname" in m.headers

    def _publish(self, send, m: Message, *args) -> bool:
        """Publish one message; one that cannot be encoded (a header too long
        to forward...) is logged and counted, and never stops the batch."""
        try:
            send(m, *args)
            return True
        except MessageError as exc:
            log.error("cannot publish about %s: %s", m.relpath, exc)
            self.stats["unpublishable"] += 1
            return False

    def repost(self, m: Message) -> Message:
        """The post announcing our copy: our base URL, same pubtime and sums."""
        base = self.cfg.post_base_dir or m.local_root
        url = self.cfg.post_base_url
        headers = dict(m.headers)
        if getattr(m, "completed", False):   # the last block made the file whole
            method = checksum.verify_method(headers.get("sum", "")) or "s"
            headers["sum"] = checksum.sum_file(m.local_path, method, bufsize=self.cfg.bufsize)
            headers["parts"] = str(Parts.whole(os.path.getsize(m.local_path)))
        for key in ("newname", "oldname"):   # the other name of a rename, as we serve it
            if key in headers:
                local = self._placed(m, headers[key])
                if local is None:
                    del headers[key]
                else:
                    headers[key] = relpath_for(local, base, url)
        return replace(m, base_url=url, relpath=relpath_for(m.local_path, base, url),
                       headers=headers, report=None)

    def report_malformed(self, bad: list) -> None:
        """A log message (417) for each malformed message that names its file."""
        if self.reporter is None or not self.cfg.report_back:
            return
        for _tag, reason, found in bad:
            if found is not None:
                self._publish(self.reporter.report, found, 417, f"invalid message: {reason}")

    def queue_failures(self, wl: Worklist, tries: dict[int, int]) -> set[int]:
        """Failed messages go to the retry queue; those it gives up on are
        reported as such. Returns the ids of failures not worth a log message
        (a retry that failed again: the source heard of the first failure and
        will hear of the last)."""
        if self.retry is None:
            return set()
        given_up = self.retry.put(wl.failed, tries) if wl.failed else []
        for m in given_up:
            oc = wl.outcome(m)
            wl.move(m, "failed", f"given up after {tries.get(id(m), 1)} tries: {oc.reason}",
                    oc.code)
        self.retry.settle(wl.settled())
        gone = {id(m) for m in given_up}
        attempts = max(1, self.cfg.attempts)
        return {id(m) for m in wl.failed if id(m) not in gone and tries.get(id(m), 1) > attempts}

    def report(self, wl: Worklist, quiet: set[int] = frozenset()) -> None:
        if self.reporter is None or not self.cfg.report_back:
            return
        for m in wl.all():
            if id(m) in quiet:
                continue
            oc = wl.outcome(m)
            if oc is not None and oc.code is not None:
                self._publish(self.reporter.report, m, oc.code, oc.reason)


def exchange_user(exchange: str) -> str | None:
    """The user owning ``xs_<user>`` (or ``xs_<user>_<suffix>``), else None."""
    if not exchange.startswith("xs_") or len(exchange) == 3:
        return None
    return exchange[3:].split("_", 1)[0]
