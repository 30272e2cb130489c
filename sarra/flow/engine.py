"""The flow: gather -> filter -> on_message -> work -> sync -> on_part/on_file -> post
(on_post) -> log -> ack.

Every tool is this loop with different collaborators (flow/contracts.py):
a Source, and optionally a Worker, a Poster, a Reporter, a retry queue and
a duplicate cache. A flow with a Worker announces what the work made (our
copies); one without passes on what it accepted, as it came (dd_post,
dd_watch, dd_shovel, dd_winnow, dd_log, a subscriber with download off).
Each message of a batch is a Job in the Worklist (worklist.py), which
carries everything known about it until the batch is acknowledged. A
message is acknowledged only after its work is done, what the work wrote
is on stable storage (once a batch: flow/durable.py), and its post and log
message are confirmed by the broker; a lost connection means the batch
comes again.
"""
import logging
import os
import time
from collections import Counter, deque
from dataclasses import replace
from typing import Callable

from .. import checksum
from ..broker import reconnecting
from ..errors import (BrokerError, ChecksumError, MessageError, PluginError, TransferError,
                      UnsafePathError)
from ..message import Message, pubtime_seconds
from ..parts import Parts
from ..plugins import Hooks
from ..throttle import Throttle
from ..worklist import Job, Worklist
from .announce import relpath_for
from .contracts import Malformed, Poster, Reporter, Source, Target, Worker
from .filter import choose, default_placement
from .housekeeping import Housekeeper
from .nodupe import DuplicateCache
from .private import Private, Refused
from .publish import MAX_TEXT, shorten
from .quarantine import Quarantine, record_of, wire_record
from .retry import RetryQueue

log = logging.getLogger(__name__)

LAGS_KEPT = 1024     # lags of the recent batches kept (for the p95 of the metrics)
BEHIND = 4           # batches a pipelined flow may have unconfirmed behind the one it makes
RECENT_KEPT = 20     # the last outcomes of each kind kept (the web console's lists)


class Flow:
    """One tool's loop, complete when constructed.

    ``metrics``: the file a daemon instance writes its figures to (``sarra
    status``), with a periodic log line and the sweep of stale files (None:
    no housekeeping, as dd_post). ``connect_attempts`` 0 means reaching the
    broker is retried for ever (daemons). ``on_batch(flow)`` runs after each
    batch (dd_post's progress bar).

    The figures (sarra/metrics.py): ``stats`` counts the outcome of each
    message handled (a status code, or a tally: 'rejected', 'duplicate',
    'posted'...), ``bytes`` what was transferred; ``events`` counts, a batch
    at a time, what is not an outcome ('received' from the source,
    'accepted' by the filter, 'failed', 'retry_queued', 'given_up',
    'reposted'), ``reported`` the log messages sent by status code; ``lag``
    is the time the last batch was handled minus the pubtime of its last
    message from the source (``lags``: the recent ones, with their time),
    ``last_activity`` when a batch was last handled, ``connected`` whether
    the broker is; ``recent`` the last RECENT_KEPT jobs that ended ``ok``
    and ``failed``, each (time, relpath, code, reason); ``by_source`` the
    messages that ended ``ok`` by their ``source`` header and kind (``post``,
    and for log messages passed on ``log_ok`` or ``log_failed`` by their
    code: a switch's sources, what they post and what is reported back)."""

    def __init__(self, cfg, source: Source, worker: Worker | None = None,
                 poster: Poster | None = None, reporter: Reporter | None = None,
                 retry: RetryQueue | None = None, hooks: Hooks | None = None,
                 nodupe: DuplicateCache | None = None, throttle: Throttle | None = None,
                 quarantine: Quarantine | None = None,
                 metrics: str | None = None, connect_attempts: int = 0,
                 on_batch: "Callable[[Flow], None] | None" = None,
                 private: Private | None = None):
        self.cfg = cfg
        self.source = source
        self.worker = worker
        self.poster = poster
        self.reporter = reporter
        self.retry = retry
        self.hooks = hooks if hooks is not None else Hooks()
        self.nodupe = nodupe
        self.throttle = throttle      # messages/s, shared by the instances
        self.quarantine = quarantine  # where messages that raised are kept aside
        self.connect_attempts = connect_attempts
        self.on_batch = on_batch
        self.private = private        # a switch's restricted posts (dd_sara: flow/private.py)
        self.fallback = default_placement(cfg) if worker is not None else None
        self.stats: Counter = Counter()
        self.bytes = 0
        self.events: Counter = Counter()
        self.reported: Counter = Counter()
        self.lag: float | None = None
        self.lags: deque = deque(maxlen=LAGS_KEPT)   # (time, lag) of the recent batches
        self.last_activity: float | None = None
        self.recent: dict[str, deque] = {"ok": deque(maxlen=RECENT_KEPT),
                                         "failed": deque(maxlen=RECENT_KEPT)}
        self.by_source: Counter = Counter()     # (kind, source) -> messages ended ok
        self.connected = False
        self.stopping = False
        # what source_from_exchange trusts as published by feeders
        self.read_exchanges = frozenset(source.exchanges())
        self.housekeeper = Housekeeper(self, metrics, cfg.heartbeat) if metrics else None
        # A source that gives the batches it was not told of again (dd_post's
        # files: nothing to acknowledge to a broker) lets a batch's confirms
        # come while the next ones are made and published: up to BEHIND
        # batches are "behind", each concluded (counted, acknowledged) once
        # its confirms have come.
        self.pipelined = (getattr(source, "pipelined", False) and worker is None
                          and retry is None and nodupe is None and quarantine is None)
        self._behind: deque = deque()   # (worklist, messages, malformed, publishers' marks)

    # -- the loop ----------------------------------------------------------
    def run(self) -> None:
        self.connect()
        if self.housekeeper is not None:
            self.housekeeper.write_metrics()   # up: connected and started
        try:
            while True:
                try:
                    if self.stopping or self.source.done:
                        self.catch_up()
                        break
                    self.step(timeout=1.0)
                except BrokerError as exc:
                    if not exc.recoverable:
                        raise
                    log.warning("broker connection lost (%s); the batch will come again", exc)
                    self.connected = False
                    self._reconnect()
                if self.housekeeper is not None:
                    self.housekeeper.tick()
        finally:
            if self.housekeeper is not None:
                self.housekeeper.tick(final=True)
            self.close()

    def connect(self) -> None:
        """``open``, retried with backoff (``connect_attempts`` times; 0: for ever)."""
        reconnecting(self.open, self._still_connecting, "connect",
                     attempts=self.connect_attempts, stop=lambda: self.stopping)

    def _still_connecting(self) -> None:
        """Between two attempts: the figures say so (once the flow has run)."""
        if self.housekeeper is not None:
            self.housekeeper.progress()

    def open(self) -> None:
        """Connect the source and the publishers, and declare what they use."""
        self.source.connect()
        for pub in self._publishers():
            if pub.broker is not None and pub.broker is not self.source.broker:
                pub.broker.connect()
            pub.declare()
        self.connected = True

    def _publishers(self) -> list[Poster]:
        return [p for p in (self.poster, self.reporter) if p is not None]

    def _reconnect(self) -> None:
        for b in self._brokers():
            b.close()
        time.sleep(0.5)
        self.connect()

    def _brokers(self) -> list:
        out = []
        for b in [self.source.broker] + [p.broker for p in self._publishers()]:
            if b is not None and all(b is not o for o in out):
                out.append(b)
        return out

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.hooks.close()
        if self.quarantine is not None:
            self.quarantine.close()
        for b in self._brokers():
            b.close()

    # -- one batch ----------------------------------------------------------
    def step(self, timeout: float) -> int:
        msgs, bad = self.source.get(timeout)
        if self.throttle and msgs:
            self.throttle.consume(len(msgs))
        wl = Worklist.of(msgs)
        if self.retry is not None and len(msgs) < self.cfg.prefetch:
            wl.jobs += self.retry.take_due(self.cfg.prefetch - len(msgs))
        if self.quarantine is not None:
            wl.jobs += self.quarantine.take_retries(self.cfg.prefetch - len(wl.jobs))
        if not wl.jobs and not bad:
            return 0
        self.events["received"] += len(msgs) + len(bad)
        if bad:
            self.stats["malformed"] += len(bad)
        try:
            careful = False
            if self.quarantine is not None:
                poisoned, careful = self.quarantine.in_hand(wl.jobs)
                for j in poisoned:
                    self._set_aside(wl, j, "delivery", f"in hand when {j.deaths} processes "
                                    "died: not handled again")
            self.report_malformed(bad)
            if careful:
                self._one_at_a_time(wl)
            else:
                self.process(wl)
            if self.pipelined:
                self._behind.append((wl, msgs, bad, [p.mark() for p in self._publishers()]))
                ready = self._confirmed(BEHIND)
        except BrokerError:
            self._behind.clear()    # (they come again too: the source's rewind)
            self.source.rewind()
            if self.retry is not None:
                self.retry.release()
            if self.nodupe is not None:
                self.nodupe.release([j.fingerprint for j in wl if j.fingerprint])
            if self.quarantine is not None:
                self.quarantine.release(wl.jobs)
                self.quarantine.out_of_hand(wl.jobs)
            raise
        if self.pipelined:          # this batch's confirms come meanwhile
            for behind in ready:
                self._conclude(*behind)
        else:
            self._conclude(wl, msgs, bad)
        return len(wl)

    def _confirmed(self, keep: int) -> list[tuple]:
        """The batches behind but the last ``keep``, once their confirms have
        come: (worklist, messages, malformed) of each, oldest first."""
        out = []
        while len(self._behind) > keep:
            marks = self._behind[0][3]
            for pub, mark in zip(self._publishers(), marks):
                pub.flush(since=mark)
            out.append(self._behind.popleft()[:3])
        return out

    def catch_up(self) -> None:
        """A pipelined flow's last batches: their confirms, then their
        conclusion (BrokerError: they come again from the source)."""
        try:
            ready = self._confirmed(0)
        except BrokerError:
            self._behind.clear()
            self.source.rewind()
            raise
        for behind in ready:
            self._conclude(*behind)

    def _conclude(self, wl: Worklist, msgs: list[Message], bad: list[Malformed]) -> None:
        """A batch whose posts and log messages are confirmed: counted, and
        acknowledged to its source."""
        if self.pipelined:
            self._account(wl)
        done = wl.settled() + wl.failed
        self.source.ack([j.msg.delivery_tag for j in done if j.msg.delivery_tag is not None]
                        + [b.tag for b in bad])
        if self.retry is not None:
            self.retry.release()   # what was not tried (stopping) stays queued
        if self.nodupe is not None:   # what a stop left undone comes again: not a duplicate
            self.nodupe.settle([j.fingerprint for j in done if j.fingerprint],
                               [j.fingerprint for j in wl.incoming if j.fingerprint])
        if self.quarantine is not None:
            self.quarantine.settle(done)
            self.quarantine.release(wl.incoming)
            self.quarantine.out_of_hand(wl.jobs)
        self._figures(msgs)
        if self.on_batch is not None:
            self.on_batch(self)

    def _figures(self, msgs: list[Message]) -> None:
        """Once a batch: its time and its lag (from the pubtime of the last
        message that came from the source; retries are old by nature)."""
        now = self.last_activity = time.time()
        if msgs:
            published = pubtime_seconds(msgs[-1].pubtime)
            if published is not None:
                self.lag = max(0.0, now - published)
                self.lags.append((now, self.lag))

    def _one_at_a_time(self, wl: Worklist) -> None:
        """A batch that came again after a process died with it in hand: each
        message handled alone, so that a death is charged to its cause."""
        log.warning("%d messages come again after a process died with them: "
                    "handling them one at a time", len(wl.incoming))
        for j in wl.incoming:
            if self.stopping:
                break
            self.quarantine.hold(j)
            self.process(Worklist([j]))
            self.quarantine.let_go(j)

    # -- containment: what one message does stays with that message -------------
    def _guarded(self, wl: Worklist, j: Job, stage: str, fn, *args) -> None:
        """``fn(*args)`` for job ``j``: whatever it raises (but a broker
        error, which is the batch's) sets ``j`` aside, and the flow goes on."""
        try:
            fn(*args)
        except BrokerError:
            raise
        except Exception as exc:   # a message must never stop the process
            log.debug("traceback", exc_info=True)
            self._set_aside(wl, j, stage, f"{type(exc).__name__}: {exc}")

    def _set_aside(self, wl: Worklist, j: Job, stage: str, reason: str,
                   record: dict | None = None) -> None:
        """Log, keep in the quarantine (when the flow has one), and reject with
        417: reported, acknowledged, never handled again by itself."""
        m = j.msg
        log.error("%s of %s (exchange %s, topic %.100s): %s; kept aside", stage,
                  m.relpath, m.exchange, m.topic, reason)
        self.stats["quarantined"] += 1
        kept = None
        if self.quarantine is not None:
            try:
                kept = self.quarantine.keep(record or record_of(m), stage, reason, m.relpath)
            except OSError as exc:
                log.error("cannot keep %s in the quarantine: %s", m.relpath, exc)
        where = f" as {kept}" if kept else ""
        wl.move(j, "rejected", shorten(f"kept aside{where} ({stage}): {reason}", MAX_TEXT), 417)

    def process(self, wl: Worklist) -> None:
        self.filter(wl)
        self.events["accepted"] += sum(1 for j in wl.incoming if not j.from_retry and not j.claim)
        self.run_hooks("on_message", wl)
        if self.worker is not None:
            self.work(wl)
            self.sync(wl)
        else:
            for j in wl.incoming:
                wl.move(j, "ok", "accepted")
        self.run_hooks("on_part", wl)
        self.run_hooks("on_file", wl)
        self.post(wl)
        quiet = self.queue_failures(wl)
        self.events["failed"] += len(wl.failed)
        self.report(wl, quiet)
        if self.pipelined:          # confirmed later (step)
            return
        for pub in self._publishers():
            pub.flush()
        self._account(wl)

    def _account(self, wl: Worklist) -> None:
        """The figures of a confirmed batch (and its retries saved)."""
        if self.retry is not None:
            self.retry.save()   # before the broker is told (ack): a crash loses nothing
        now = time.time()
        for j in wl:
            if j.posted:        # now confirmed (flush above)
                if self.worker is not None:
                    self.events["reposted"] += j.posted
                else:
                    self.stats["posted"] += j.posted
            oc = j.outcome
            if j.state in self.recent and oc is not None:
                self.recent[j.state].append((now, j.msg.relpath, oc.code, oc.reason))
                if j.state == "ok" and "source" in j.msg.headers:
                    self.by_source[(source_kind(j.msg), j.msg.headers["source"])] += 1
            if oc and (oc.code or oc.tally):
                self.stats[oc.code or oc.tally] += 1
            elif j.state == "rejected":
                self.stats["rejected"] += 1
            elif self.worker is not None:
                self.stats["skipped"] += 1

    # -- stages ---------------------------------------------------------------
    def filter(self, wl: Worklist) -> None:
        """accept/reject (each accepted job gets its placement), anti-spoofing
        and routing between switches, the duplicate cache."""
        unseen: list[tuple[Job, object]] = []     # (job, placement): for the duplicate cache
        for j in wl.incoming:
            self._guarded(wl, j, "filter", self._filter_one, wl, j, unseen)
        if unseen:
            self._admit(wl, unseen)

    def _admit(self, wl: Worklist, unseen: list) -> None:
        """The duplicate cache on the jobs the filter accepted, in one
        transaction (nodupe.py:DuplicateCache.admit_many); if that fails,
        each job on its own, so that one that cannot be admitted is set
        aside alone."""
        try:
            keys = self.nodupe.admit_many([j.msg for j, _p in unseen])
        except BrokerError:
            raise
        except Exception:
            for j, placement in unseen:
                self._guarded(wl, j, "filter", lambda j=j, p=placement: self._admitted(
                    wl, j, p, self.nodupe.admit(j.msg)))
            return
        for (j, placement), key in zip(unseen, keys):
            self._admitted(wl, j, placement, key)

    def _admitted(self, wl: Worklist, j: Job, placement, key: str | None) -> None:
        j.fingerprint = key
        if key is None:
            wl.move(j, "rejected", "duplicate (seen in the last nodupe_ttl)", tally="duplicate")
        else:
            j.placement = placement

    def _filter_one(self, wl: Worklist, j: Job, unseen: list | None = None) -> None:
        m = j.msg
        if self.cfg.source_from_exchange and m.exchange and not self._identify(wl, j):
            return                   # (a message made here has no exchange to vouch)
        if self.cfg.msg_to_clusters and not self._routed_here(wl, j):
            return
        ok, placement, why = choose(m, self.cfg.masks, bool(self.cfg.accept_unmatch),
                                    self.fallback)
        if not ok:
            wl.move(j, "rejected", why)  # filtered out: nothing to report
            return
        if self.private is not None and m.report is None:
            try:
                placement = self.private.admit(
                    m, placement, self.worker and (lambda p: self.worker.target(m, p).path))
            except Refused as exc:
                wl.move(j, "rejected", exc.text, exc.code)
                return
            except MessageError as exc:
                wl.move(j, "rejected", f"unsafe path: {exc}", 403)
                return
        if self.nodupe is not None and not j.from_retry and not j.claim:
            if unseen is not None:
                unseen.append((j, placement))    # admitted with the batch (filter)
            else:
                self._admitted(wl, j, placement, self.nodupe.admit(m))
            return
        j.placement = placement

    def _routed_here(self, wl: Worklist, j: Job) -> bool:
        """On a link between switches (doc/protocol.md §11): a post goes on only
        when its ``to_clusters`` (comma-separated; ALL: everywhere) names one
        of ``msg_to_clusters``, and never back into the switch it came from;
        a log message goes back toward where its data came from: its
        ``from_cluster`` must be one of ``msg_to_clusters``."""
        m = j.msg
        if m.report is not None:
            wanted = m.headers.get("from_cluster")
            if wanted is None:
                wl.move(j, "rejected", "a log message without from_cluster")
                return False
        elif self.cfg.cluster and m.headers.get("from_cluster") == self.cfg.cluster:
            wl.move(j, "rejected", f"loop: from this cluster ({self.cfg.cluster})")
            return False
        else:
            wanted = m.headers.get("to_clusters")
        if wanted is None:
            return True
        dest = {c.strip() for c in wanted.split(",") if c.strip()}
        here = {c.strip() for c in self.cfg.msg_to_clusters.split(",") if c.strip()}
        if "ALL" in dest or dest & here:
            return True
        wl.move(j, "rejected", f"to_clusters {wanted}: not through here ({', '.join(here)})")
        return False

    def _identify(self, wl: Worklist, j: Job) -> bool:
        """Anti-spoofing (doc/protocol.md §9): who sent a message is who owns the
        ``xs_<user>`` exchange it was published to. A post gets
        ``source=<user>`` and ``from_cluster=<cluster>`` whatever it said (and
        ``to_clusters=<cluster>``, or the ``to_clusters`` option, when it
        named no destination); a log
        message must carry ``<user>`` in its user field. Messages published
        straight to the exchange read (xsarra, xreport_in: only feeders, and
        links into xreport_in, write there) are trusted as they are; a message
        from any other exchange is dropped, counted and not reported: one
        bound into ours by a user (xpublic bound to xs_<user> would feed the
        switch its own announcements, and a log message about it would go,
        signed by the switch, to the source it names)."""
        m = j.msg
        user = exchange_user(m.exchange)
        if user is None:
            if m.exchange in self.read_exchanges:
                return True
            # bound into ours by someone: dropped and counted, never reported
            # (a log message would go to whichever source the message names)
            wl.move(j, "rejected", f"not from a user exchange: {m.exchange}",
                    tally="not from a user exchange")
            return False
        if m.report is not None:
            if m.report.user != user:
                wl.move(j, "rejected", f"log message by '{m.report.user}' sent on "
                        f"{m.exchange}: dropped", tally="spoofed")
                return False
            return True
        if m.base_url.lower().startswith("file:"):
            # a user names files of its own servers, never of the switch's
            wl.move(j, "rejected", f"a post of {user} may not name a local file "
                    f"({m.base_url})", 403)
            return False
        m.headers["source"] = user
        m.headers.pop("from_cluster", None)
        if self.cfg.cluster:
            m.headers["from_cluster"] = self.cfg.cluster
        # a source that names no destination means this switch: links forward
        # only what is destined beyond it (doc/protocol.md §7.3: the to_clusters
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
        for j in wl.incoming if stage == "on_message" else wl.ok:
            self._guarded(wl, j, stage, self._hook_one, stage, wl, j)

    def _hook_one(self, stage: str, wl: Worklist, j: Job) -> None:
        if not self._concerns(stage, j):
            return
        try:
            skipper = self.hooks.skipped_by(stage, j.msg)
        except PluginError as exc:   # logged by Hooks; the flow goes on
            wl.move(j, "rejected", str(exc), 503)
            return
        if skipper is not None:
            self._skip(wl, j, f"skipped by {stage} hook '{skipper}'")

    def _concerns(self, stage: str, j: Job) -> bool:
        """on_message and on_post: every message. on_part: each block of a
        file that arrived; on_file: each whole file that arrived (a whole
        file downloaded, or the block that completed one). In a flow that
        does no work (posting, or download off), what is announced counts
        as arrived (on_file: with its last block)."""
        if stage in ("on_message", "on_post"):
            return True
        m = j.msg
        if m.operation != "file":
            return False
        arrived = (201, 307) if stage == "on_part" else (201,)   # 307: kept as a part file
        if j.code not in arrived and not (self.worker is None and j.code is None):
            return False
        try:
            p = m.parts
        except MessageError:
            p = None
        block = p is not None and not p.is_whole
        if stage == "on_part":
            return block
        return (not block or j.completed
                or (self.worker is None and p.bno == p.blktot - 1))

    @staticmethod
    def _skip(wl: Worklist, j: Job, why: str) -> None:
        """Out of ``ok``/``incoming`` (not posted), keeping any status to report."""
        if j.code is not None:
            wl.move(j, "rejected", f"{j.outcome.reason} ({why})", j.code)
        else:
            wl.move(j, "rejected", why)

    def work(self, wl: Worklist) -> None:
        try:
            self.worker.ahead([j.msg for j in wl.incoming])
        except Exception:   # a hint: never the batch's failure
            log.debug("asking ahead failed", exc_info=True)
        for j in wl.incoming:
            if self.stopping:
                break  # unacknowledged: the broker gives it to us again
            self._guarded(wl, j, "work", self._work_one, wl, j)

    def _work_one(self, wl: Worklist, j: Job) -> None:
        m = j.msg
        try:
            target = self.worker.target(m, j.placement)
            if m.operation == "delete" and m.headers.get("newname"):
                target = target._replace(rename_to=self._placed(m, m.headers["newname"]))
        except MessageError as exc:
            wl.move(j, "rejected", f"unsafe path: {exc}", 403)
            return
        self._apply(wl, j, target)

    def _placed(self, m: Message, relpath: str) -> str | None:
        """Where ``m`` would go locally if it named ``relpath`` (None: we do
        not accept that name). The old-name post of a rename whose new name
        we accept renames the file instead of deleting it (doc/protocol.md §2.6)."""
        probe = replace(m, relpath=relpath, headers=dict(m.headers))
        ok, placement, _why = choose(probe, self.cfg.masks, bool(self.cfg.accept_unmatch),
                                     self.fallback)
        if ok and self.private is not None:     # a restricted file's other name: private too
            try:
                placement = self.private.admit(
                    probe, placement, lambda p: self.worker.target(probe, p).path)
            except Refused:
                return None
        return self.worker.target(probe, placement).path if ok else None

    def _apply(self, wl: Worklist, j: Job, target: Target) -> None:
        m = j.msg
        attempts = max(1, self.cfg.attempts)
        for attempt in range(1, attempts + 1):
            j.tries += 1
            try:
                done = self.worker.apply(m, target)
            except UnsafePathError as exc:
                wl.move(j, "rejected", f"unsafe path: {exc}", 403)
                return
            except (MessageError, ValueError) as exc:   # ValueError: e.g. a NUL in a name
                wl.move(j, "rejected", str(exc), 417)
                return
            except ChecksumError as exc:
                err, code, retry = exc, 499, True
            except TransferError as exc:
                err, code, retry = exc, exc.code, exc.recoverable
            except OSError as exc:
                err, code, retry = exc, 499, True
            else:
                m.local_path, m.local_root = target.path, target.root
                j.completed = done.completed
                wl.move(j, "ok", done.text, done.code)
                if done.code == 201 and m.operation == "file":
                    p = m.parts
                    self.bytes += p.length if p and not p.is_whole else (m.size or 0)
                return
            if not retry or attempt == attempts:
                wl.move(j, "failed" if retry else "rejected", f"{err}", code)
                return
            log.info("%s: attempt %d failed (%s); trying again", m.relpath, attempt, err)
            time.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))

    def sync(self, wl: Worklist) -> None:
        """What the batch's work wrote goes to stable storage before anything
        is announced or acknowledged (flow/durable.py; the ``fsync``
        option). If that fails, nothing written may be counted on: the jobs
        that changed the tree are failed (500) and tried again."""
        try:
            self.worker.sync()
        except OSError as exc:
            wrote = [j for j in wl.ok if j.code in (201, 307)]
            log.error("cannot put this batch's %d changes on stable storage (%s): "
                      "tried again", len(wrote), exc)
            for j in wrote:
                wl.move(j, "failed", f"not on stable storage: {exc}", 500)

    def post(self, wl: Worklist) -> None:
        """Without a worker: every accepted message, as it came. With one:
        the copies it made (201), and files found in place when announcing
        them again is due (``_repost_304``)."""
        if self.poster is None:
            return
        for j in wl.ok:
            self._guarded(wl, j, "post", self._post_one, wl, j)

    def _post_one(self, wl: Worklist, j: Job) -> None:
        m = j.msg
        if self.worker is None:
            if self._vetted(wl, j, m):
                self._publish(lambda _m: self._announce(j, m), m)
        elif j.code == 201 or (j.code == 304 and self._repost_304(m)):
            if self._whole(j):   # a block: the file is announced once it is whole
                self._publish(lambda _m: self._send_repost(wl, j), m)

    def _send_repost(self, wl: Worklist, j: Job) -> None:
        out = self.repost(j.msg, j.completed)
        if self._vetted(wl, j, out):
            self._announce(j, out)

    def _announce(self, j: Job, out: Message) -> None:
        """Publish ``out``, the post about ``j``: a restricted one (a switch's
        dd_sara, flow/private.py) to the switch's links and its readers,
        never to xpublic; a reader this switch does not know is reported."""
        if self.private is None or not self.private.restricted(out):
            self.poster.publish(out)
            j.posted += 1
            return
        exchanges, unknown = self.private.exchanges(out, self.poster.exists)
        for exchange in exchanges:
            self.poster.publish(out, exchange)
        j.posted += 1
        if unknown and self.reporter is not None and self.cfg.report_back \
                and self.private.destined_here(out):
            text = (f"readers: no user {', '.join(unknown)} on this switch "
                    f"({self.cfg.cluster}): kept private, announced to its links only")
            log.warning("%s: %s", out.relpath, text)
            if self._publish(self.reporter.report, j.msg, 404, text):
                self.reported[404] += 1

    def _vetted(self, wl: Worklist, j: Job, out: Message) -> bool:
        """The on_post chain on ``out``, the post about ``j``: True to publish.
        A SKIP leaves ``j``'s status as it is; a failing hook reports 503."""
        if not self.hooks.has("on_post"):
            return True
        try:
            skipper = self.hooks.skipped_by("on_post", out)
        except PluginError as exc:
            wl.move(j, "rejected", str(exc), 503)
            return False
        if skipper is None:
            return True
        self._skip(wl, j, f"not posted: skipped by on_post hook '{skipper}'")
        return False

    @staticmethod
    def _whole(j: Job) -> bool:
        """A whole file, or the block that completed one (its re-post then
        announces the whole file): blocks of files still being put together
        are not announced, their final name does not exist yet."""
        try:
            p = j.msg.parts
        except MessageError:
            return True
        return p is None or p.is_whole or j.completed

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

    def repost(self, m: Message, completed: bool = False) -> Message:
        """The post announcing our copy of ``m`` (``completed``: the block
        that made the file whole): our base URL, same pubtime and sums."""
        base = self.cfg.post_base_dir or m.local_root
        url = self.cfg.post_base_url
        if self.private is not None and self.private.restricted(m):
            base, url = self.private.where(m)       # its private tree, its private URL
        headers = dict(m.headers)
        if completed:   # announce the whole file
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

    def report_malformed(self, bad: list[Malformed]) -> None:
        """Each malformed message is kept aside (it is acknowledged next),
        and a log message (417) goes back about those that name their file."""
        for b in bad:
            if self.quarantine is not None and b.raw is not None:
                try:
                    self.quarantine.keep(wire_record(b.raw), "decode", b.reason,
                                         b.found.relpath if b.found else "")
                except OSError as exc:
                    log.error("cannot keep a malformed message in the quarantine: %s", exc)
            if b.found is not None and self.reporter is not None and self.cfg.report_back:
                if self._publish(self.reporter.report, b.found, 417,
                                 shorten(f"invalid message: {b.reason}", MAX_TEXT)):
                    self.reported[417] += 1

    def queue_failures(self, wl: Worklist) -> list[Job]:
        """Failed jobs go to the retry queue; those it gives up on are
        reported as such. Returns the failures not worth a log message (a
        retry that failed again: the source heard of the first failure and
        will hear of the last)."""
        if self.retry is None:
            return []
        given_up: list[Job] = []
        for j in wl.failed:   # one at a time: one that cannot be queued is set aside alone
            self._guarded(wl, j, "retry queue", lambda j=j: given_up.extend(self.retry.put([j])))
        for j in given_up:
            wl.move(j, "failed", f"given up after {max(j.tries, 1)} tries: "
                    f"{j.outcome.reason}", j.code)
        self.events["given_up"] += len(given_up)
        self.events["retry_queued"] += len(wl.failed) - len(given_up)
        self.retry.settle(wl.settled())
        attempts = max(1, self.cfg.attempts)
        return [j for j in wl.failed
                if j.tries > attempts and not any(j is g for g in given_up)]

    def report(self, wl: Worklist, quiet: list[Job] = ()) -> None:
        if self.reporter is None or not self.cfg.report_back:
            return
        for j in wl:
            if j.code is not None and not any(j is q for q in quiet):
                self._guarded(wl, j, "report", self._report_one, j)

    def _report_one(self, j: Job) -> None:
        if self._publish(self.reporter.report, j.msg, j.code, j.outcome.reason):
            self.reported[j.code] += 1


def source_kind(m: Message) -> str:
    """What a message is to its source: a post, a log message of success
    (a code below 400: done, or nothing needed doing) or one of failure."""
    if m.report is None:
        return "post"
    return "log_ok" if m.report.code < 400 else "log_failed"


def exchange_user(exchange: str) -> str | None:
    """The user owning ``xs_<user>`` (or ``xs_<user>_<suffix>``), else None."""
    if not exchange.startswith("xs_") or len(exchange) == 3:
        return None
    return exchange[3:].split("_", 1)[0]
