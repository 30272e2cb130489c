"""Housekeeping of a running instance: a metrics file that ``sarra status``
reads (every few seconds), a log line with counts and rates (every
``heartbeat``), and the removal of inflight files that no live writer holds.

The metrics file (``Housekeeper.write_metrics``) holds the flow's figures
(engine.py: ``Flow.stats``, ``bytes``, ``events``, ``reported``, the lag),
rates over the last minute, and the depth of the instance's broker queue,
which a thread reads from RabbitMQ's management API (``QueueWatch``: never
in the flow's way, unknown when the user may not read it). Written every
METRICS_EVERY seconds from the loop, from long transfers too (``progress``)
and between attempts to reach a lost broker: a file not written for long
means a loop that hangs. Its keys of earlier versions keep their meaning.

Since 0.1 it also holds the last hour of the instance's work, minute by
minute (``History``: what the web console plots; a restarted instance
takes the history its predecessor left), and its latest outcomes
(``recent``: the deliveries and failures the console lists).
"""
import json
import logging
import os
import threading
import time
from collections import deque

from ..config import remote

log = logging.getLogger(__name__)

METRICS_EVERY = 5.0      # seconds between two writes of the metrics file
WINDOW = 60.0            # seconds over which the rates and trends are measured
LAG_P95_OVER = 300.0     # seconds of batches the lag's p95 is taken over
QUEUE_EVERY = 10.0       # seconds between two reads of the broker queue's depth
QUEUE_REFUSED_EVERY = 300.0   # ... when the API refused (the user may not read it)
HISTORY_STEP = 60.0      # seconds of work in one entry of the history
HISTORY_SPAN = 3600.0    # seconds of history kept (the last hour)


class History:
    """The work of an instance minute by minute: entries ``[start, messages,
    bytes, failures, lag]`` (start: seconds since the epoch, a multiple of
    HISTORY_STEP; lag: the largest lag of its batches, None: no batch),
    the last HISTORY_SPAN seconds of them."""

    def __init__(self, kept=(), now: float | None = None):
        now = time.time() if now is None else now
        self.entries: list[list] = [list(e) for e in kept if _entry_ok(e)
                                    and now - e[0] < HISTORY_SPAN]

    def add(self, now: float, messages: int, nbytes: int, failures: int,
            lag: float | None) -> None:
        start = now - now % HISTORY_STEP
        if not self.entries or self.entries[-1][0] != start:
            self.entries.append([start, 0, 0, 0, None])
        e = self.entries[-1]
        e[1] += messages
        e[2] += nbytes
        e[3] += failures
        if lag is not None:
            e[4] = round(max(e[4] or 0.0, lag), 3)
        while self.entries and now - self.entries[0][0] >= HISTORY_SPAN:
            self.entries.pop(0)


def _entry_ok(e) -> bool:
    return isinstance(e, list) and len(e) == 5 and \
        all(isinstance(x, (int, float)) for x in e[:4]) and \
        (e[4] is None or isinstance(e[4], (int, float)))


class Housekeeper:
    def __init__(self, flow, metrics_path: str, heartbeat: float):
        self.flow = flow
        self.path = metrics_path
        self.heartbeat = max(heartbeat, METRICS_EVERY)
        now = time.monotonic()
        self._metrics_at = self._logged_at = now
        self._last = self._snapshot()      # (time, messages, bytes, failed) at the last log line
        self._window = [self._last]        # recent snapshots, for the rates in the metrics
        self.started = time.time()
        self.written = False               # once connected and at work (start waits for it)
        self.queue = QueueWatch.of(flow)
        self._included_at = now            # when the fragments included from URLs were read
        self.included = dict(flow.cfg.remote)       # URL -> the text this run loaded
        before = read_metrics(metrics_path) or {}
        self.history = History(before.get("history") or ())
        self._noted = (time.time(), self._last)   # what the history has counted
        self._sources: deque = deque(maxlen=16)     # (time, by_source) of recent writes

    def _snapshot(self) -> tuple[float, int, int, int]:
        return (time.monotonic(), sum(self.flow.stats.values()), self.flow.bytes,
                self.flow.events["failed"])

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._metrics_at >= METRICS_EVERY:
            self._metrics_at = now
            self.write_metrics(final)
        if final and self.queue is not None:
            self.queue.stop()
        if not final and now - self._logged_at >= self.heartbeat:
            self._logged_at = now
            self.log_line()
            if self.flow.worker is not None:
                self.flow.worker.clean_stale(self.heartbeat)
            if self.flow.nodupe is not None:
                self.flow.nodupe.purge()
        refresh = self.flow.cfg.include_refresh
        if not final and self.included and refresh and now - self._included_at >= refresh:
            self._included_at = now
            self.refresh_includes()

    def refresh_includes(self) -> None:
        """The fragments this run included from URLs, fetched again: one that
        changed is cached for the next start, and the log says so (once)."""
        cfg = self.flow.cfg
        for url in remote.refresh_due(self.included, cfg.timeout, bool(cfg.include_http)):
            log.warning("include %s changed since this instance started: its new text is "
                        "cached, a restart applies it (sarra restart %s/%s)", url,
                        cfg.tool, cfg.key)
            cached = remote.cached(url)
            self.included[url] = cached.text if cached else self.included[url]

    def progress(self) -> None:
        """The metrics file, when due, from within long work (a transfer's
        tick, a reconnection's wait): the loop is busy, not stuck. Not before
        the loop first wrote it (``start`` takes that as connected)."""
        now = time.monotonic()
        if self.written and now - self._metrics_at >= METRICS_EVERY:
            self._metrics_at = now
            self.write_metrics(busy=True)

    def _rates(self, since: tuple) -> tuple[float, float]:
        t, msgs, nbytes, _failed = self._snapshot()
        span = max(t - since[0], 1e-6)
        return (msgs - since[1]) / span, (nbytes - since[2]) / span

    def write_metrics(self, final: bool = False, busy: bool = False) -> None:
        flow = self.flow
        snap = self._snapshot()
        self._window = [s for s in self._window if snap[0] - s[0] <= WINDOW][-12:] + [snap]
        first = self._window[0]
        msg_rate, byte_rate = self._rates(first)
        fail_rate = (snap[3] - first[3]) / max(snap[0] - first[0], 1e-6)
        retry = flow.retry
        now = time.time()
        events = flow.events
        data = {"pid": os.getpid(), "time": now, "started": self.started,
                "stopped": final, "messages": snap[1], "bytes": snap[2],
                "messages_per_s": round(msg_rate, 2), "bytes_per_s": round(byte_rate),
                "retry_queue": len(retry) if retry is not None else 0,
                "by_status": {str(k): v for k, v in flow.stats.items()},
                # since 0.1 (sarra/metrics.py)
                "received": events["received"], "accepted": events["accepted"],
                "posted": flow.stats["posted"] + events["reposted"],
                "failed": events["failed"], "retry_queued": events["retry_queued"],
                "given_up": events["given_up"],
                "reported": {str(k): v for k, v in flow.reported.items()},
                "failures_per_s": round(fail_rate, 3),
                "connected": flow.connected, "busy": busy,
                "last_activity": flow.last_activity, **lag_figures(flow.lags, now)}
        if self.queue is not None:
            data.update(self.queue.figures())
        self._note_history(now, snap)
        data["history"] = self.history.entries
        data["sources"] = self._source_figures(snap[0])
        data["recent"] = {state: [[round(t, 3), relpath, code, reason]
                                  for t, relpath, code, reason in jobs]
                          for state, jobs in flow.recent.items()}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
        self.written = True
        if self.queue is not None and not final:
            self.queue.start()

    def _source_figures(self, at: float) -> dict:
        """kind -> source -> [messages since the start, per minute over the
        last WINDOW seconds] (engine.py: ``Flow.by_source``)."""
        counts = dict(self.flow.by_source)
        self._sources.append((at, counts))
        while at - self._sources[0][0] > WINDOW:
            self._sources.popleft()
        then, before = self._sources[0]
        span = max(at - then, METRICS_EVERY)
        out: dict[str, dict] = {}
        for (kind, source), n in sorted(counts.items()):
            out.setdefault(kind, {})[source] = [
                n, round(60.0 * (n - before.get((kind, source), 0)) / span, 2)]
        return out

    def _note_history(self, now: float, snap: tuple) -> None:
        """What was done since the last write, in the history's current minute."""
        at, last = self._noted
        lags = [lag for t, lag in list(self.flow.lags) if t > at]
        self.history.add(now, snap[1] - last[1], snap[2] - last[2], snap[3] - last[3],
                         max(lags) if lags else None)
        self._noted = (now, snap)

    def log_line(self) -> None:
        msg_rate, byte_rate = self._rates(self._last)
        self._last = self._snapshot()
        retry = self.flow.retry
        log.info("housekeeping: %d messages (%.1f/s, %.2f MB/s since the last line), "
                 "by status %s, retry queue %d", self._last[1], msg_rate, byte_rate / 1e6,
                 dict(sorted((str(k), v) for k, v in self.flow.stats.items())),
                 len(retry) if retry is not None else 0)


def lag_figures(lags, now: float) -> dict:
    """The lag of the last batch, the p95 of the lags of the batches of the
    last LAG_P95_OVER seconds, and the lag's trend over the last WINDOW
    seconds (seconds gained per second; None with too few batches)."""
    recent = [(t, lag) for t, lag in list(lags) if now - t <= LAG_P95_OVER]
    if not recent:
        return {"lag": None, "lag_p95": None, "lag_trend": None}
    ordered = sorted(lag for _t, lag in recent)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    window = [(t, lag) for t, lag in recent if now - t <= WINDOW]
    trend = None
    if len(window) >= 3 and window[-1][0] - window[0][0] >= WINDOW / 4:
        trend = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
    return {"lag": round(recent[-1][1], 3), "lag_p95": round(p95, 3),
            "lag_trend": round(trend, 4) if trend is not None else None}


class QueueWatch:
    """A daemon thread reading the depth of the flow's broker queue from the
    management API every QUEUE_EVERY seconds (QUEUE_REFUSED_EVERY once the
    API said no), keeping the last minute of samples. Nothing it meets
    stops it or the flow: the depth is then unknown (None)."""

    def __init__(self, reader: "QueueDepth"):  # sarra.broker.management
        self.reader = reader
        self.samples: deque = deque(maxlen=64)    # (time, depth)
        self.known: tuple[float, int | None] | None = None   # (time, depth) of the last read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, flow) -> "QueueWatch | None":
        """For a flow consuming from an AMQP queue, unless management_url is off."""
        source, cfg = flow.source, flow.cfg
        url, queue = getattr(source, "url", None), getattr(source, "queue", None)
        setting = getattr(cfg, "management_url", None)
        if not url or not queue or str(setting or "").lower() in ("off", "none", "no"):
            return None
        from ..broker.management import QueueDepth   # requests: only for a queue to watch
        reader = QueueDepth.of(url, queue, setting or None, tls=cfg.tls)
        return cls(reader) if reader is not None else None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="queue-depth", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        told = False
        while not self._stop.is_set():
            try:
                depth = self.reader.read()
            except Exception as exc:    # never: read() says None; but nothing stops us
                log.debug("queue depth: %s", exc)
                depth = None
            now = time.time()
            self.known = (now, depth)
            if depth is not None:
                self.samples.append((now, depth))
            elif not told and self.reader.why:
                log.info("the depth of queue %s is unknown: %s", self.reader.queue,
                         self.reader.why)
                told = True
            self._stop.wait(QUEUE_REFUSED_EVERY if self.reader.refused else QUEUE_EVERY)

    def figures(self) -> dict:
        """broker_queue (None: unknown), when it was read, and its trend over
        the last WINDOW seconds (messages per second; None: too few reads)."""
        known = self.known
        if known is None or known[1] is None:
            return {"broker_queue": None, "broker_queue_time": known[0] if known else None,
                    "broker_queue_trend": None}
        now = time.time()
        window = [(t, d) for t, d in list(self.samples) if now - t <= WINDOW]
        trend = None
        if len(window) >= 2 and window[-1][0] - window[0][0] >= WINDOW / 3:
            trend = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        return {"broker_queue": known[1], "broker_queue_time": known[0],
                "broker_queue_trend": round(trend, 3) if trend is not None else None}


def read_metrics(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
