"""Housekeeping of a running instance: a metrics file that ``sarra status``
reads (every few seconds), a log line with counts and rates (every
``heartbeat``), and the removal of inflight files that no live writer holds.
"""
import json
import logging
import os
import time

log = logging.getLogger(__name__)

METRICS_EVERY = 5.0      # seconds between two writes of the metrics file


class Housekeeper:
    def __init__(self, flow, metrics_path: str, heartbeat: float):
        self.flow = flow
        self.path = metrics_path
        self.heartbeat = max(heartbeat, METRICS_EVERY)
        now = time.monotonic()
        self._metrics_at = self._logged_at = now
        self._last = self._snapshot()      # (time, messages, bytes) at the last log line
        self._window = [self._last]        # recent snapshots, for the rates in the metrics
        self.started = time.time()

    def _snapshot(self) -> tuple[float, int, int]:
        return time.monotonic(), sum(self.flow.stats.values()), self.flow.bytes

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._metrics_at >= METRICS_EVERY:
            self._metrics_at = now
            self.write_metrics(final)
        if not final and now - self._logged_at >= self.heartbeat:
            self._logged_at = now
            self.log_line()
            if self.flow.worker is not None:
                self.flow.worker.clean_stale(self.heartbeat)
            if self.flow.nodupe is not None:
                self.flow.nodupe.purge()

    def _rates(self, since: tuple[float, int, int]) -> tuple[float, float]:
        t, msgs, nbytes = self._snapshot()
        span = max(t - since[0], 1e-6)
        return (msgs - since[1]) / span, (nbytes - since[2]) / span

    def write_metrics(self, final: bool = False) -> None:
        snap = self._snapshot()
        self._window = [s for s in self._window if snap[0] - s[0] <= 60][-12:] + [snap]
        msg_rate, byte_rate = self._rates(self._window[0])
        retry = self.flow.retry
        data = {"pid": os.getpid(), "time": time.time(), "started": self.started,
                "stopped": final, "messages": snap[1], "bytes": snap[2],
                "messages_per_s": round(msg_rate, 2), "bytes_per_s": round(byte_rate),
                "retry_queue": len(retry) if retry is not None else 0,
                "by_status": {str(k): v for k, v in self.flow.stats.items()}}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def log_line(self) -> None:
        msg_rate, byte_rate = self._rates(self._last)
        self._last = self._snapshot()
        retry = self.flow.retry
        log.info("housekeeping: %d messages (%.1f/s, %.2f MB/s since the last line), "
                 "by status %s, retry queue %d", self._last[1], msg_rate, byte_rate / 1e6,
                 dict(sorted((str(k), v) for k, v in self.flow.stats.items())),
                 len(retry) if retry is not None else 0)


def read_metrics(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
