"""The figures of every instance in the Prometheus exposition format: the
only module that imports prometheus_client.

Nothing is counted here: each instance's flow counts as it goes
(sarra/flow/engine.py), its housekeeper writes the figures to its metrics
file every 5 seconds (sarra/flow/housekeeping.py), and ``sarra/service.py:
describe`` reads those files and the processes (psutil). ``Collector``, a
custom collector of one registry, turns what ``describe`` found into metric
families at each collection (each scrape reads the files again): ``sarra
metrics`` prints it, ``sarra web`` will serve it at /metrics. Names and
labels follow Prometheus' conventions (``sarra_`` prefix, ``_total`` for
counters, seconds and bytes; labels ``tool``, ``config``, ``instance``);
man/sarra.1, METRICS, has a line for each.
"""
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .health import STATES

CONFIG = ["tool", "config"]
INSTANCE = CONFIG + ["instance"]

# the engine's tallies of rejected messages (Flow.stats) -> the reason label
REJECTED = {"rejected": "filter", "duplicate": "duplicate", "spoofed": "spoofed",
            "not from a user exchange": "foreign_exchange", "malformed": "malformed",
            "skipped": "skipped"}

# metrics file key -> (name, help), counters of each instance
COUNTERS = [
    ("received", "sarra_messages_received_total",
     "Messages taken from the source (queue, watched tree), malformed ones included."),
    ("accepted", "sarra_messages_accepted_total",
     "Messages that passed accept/reject, routing, anti-spoofing and the duplicate cache."),
    ("posted", "sarra_messages_posted_total",
     "Posts published (passed on, or announcing our copies)."),
    ("failed", "sarra_messages_failed_total",
     "Messages whose work failed (to be retried, or given up), retries included."),
    ("retry_queued", "sarra_retries_queued_total", "Failed messages put in the retry queue."),
    ("given_up", "sarra_messages_given_up_total",
     "Messages given up (retry_max, retry_ttl) and reported so."),
    ("bytes", "sarra_bytes_transferred_total", "Bytes downloaded (dd_sender: sent)."),
]
# Flow.stats tallies (by_status) -> counters of their own
TALLIES = [
    ("quarantined", "sarra_messages_quarantined_total",
     "Messages kept aside in the quarantine (reported 417)."),
    ("unpublishable", "sarra_messages_unpublishable_total",
     "Posts or log messages that could not be encoded (not published)."),
]


class Collector:
    """A prometheus_client collector over ``results()``: a list of
    ``service.describe`` of the configurations (their ``instance_figures``,
    ``health`` and ``restarts``), called at each collection."""

    def __init__(self, results: Callable[[], list[dict]]):
        self.results = results

    def describe(self) -> list:   # no families known before a collection
        return []

    def collect(self) -> Iterable:
        results = self.results()
        fam = _Families()
        for d in results:
            cfg = [d["tool"], d["config"]]
            fam.gauge("sarra_instances", "Instances configured.", CONFIG).add_metric(
                cfg, d["instances"])
            for state in STATES:
                fam.gauge("sarra_health", "1 for the configuration's health state "
                          "(running, idle, lagging, slow, stuck, failing, dead, stopped), "
                          "0 for the others.", CONFIG + ["state"]).add_metric(
                    cfg + [state], 1.0 if d["health"].state == state else 0.0)
            if d.get("broker_queue") is not None:
                fam.gauge("sarra_broker_queue_messages", "Messages in the configuration's "
                          "broker queue (ready and unacknowledged, from the management "
                          "API); absent when unknown.", CONFIG).add_metric(
                    cfg, d["broker_queue"])
            for reason, n in sorted(d.get("restarts", {}).items()):
                fam.counter("sarra_sanity_restarts_total", "Instances sarra sanity started "
                            "again, by reason (dead, stuck).", CONFIG + ["reason"]).add_metric(
                    cfg + [reason], n)
            for rec in d.get("instance_figures", []):
                self._instance(fam, cfg + [f"{rec['n']:02d}"], rec)
        return fam.all()

    @staticmethod
    def _instance(fam: "_Families", labels: list[str], rec: dict) -> None:
        up = rec["pid"] is not None
        fam.gauge("sarra_up", "1 when the instance runs, 0 when it does not.",
                  INSTANCE).add_metric(labels, 1.0 if up else 0.0)
        if not up:
            return
        fam.gauge("sarra_process_resident_memory_bytes", "Resident memory of the instance's "
                  "process.", INSTANCE).add_metric(labels, rec["rss_bytes"])
        fam.counter("sarra_process_cpu_seconds_total", "CPU time (user and system) of the "
                    "instance's process.", INSTANCE).add_metric(labels, rec["cpu_seconds"])
        if rec.get("created"):
            fam.gauge("sarra_process_start_time_seconds", "When the instance's process "
                      "started (seconds since the epoch).", INSTANCE).add_metric(
                labels, rec["created"])
        m = rec.get("metrics")
        if not m:
            return
        fam.gauge("sarra_metrics_timestamp_seconds", "When the instance last wrote its "
                  "figures (seconds since the epoch).", INSTANCE).add_metric(
            labels, m.get("time", 0))
        by_status = m.get("by_status", {})
        for key, name, doc in COUNTERS:
            value = m.get(key)
            if key == "posted" and value is None:     # a metrics file of an earlier version
                value = by_status.get("posted")
            if value is not None:
                fam.counter(name, doc, INSTANCE).add_metric(labels, value)
        fam.counter("sarra_messages_downloaded_total", "Messages whose file was downloaded "
                    "(status 201; dd_sender: sent).", INSTANCE).add_metric(
            labels, by_status.get("201", 0))
        for tally, reason in REJECTED.items():
            fam.counter("sarra_messages_rejected_total", "Messages rejected, by reason: "
                        "filter (accept/reject, routing, a hook), duplicate, spoofed, "
                        "foreign_exchange, malformed, skipped (left undone by a stop).",
                        INSTANCE + ["reason"]).add_metric(labels + [reason],
                                                          by_status.get(tally, 0))
        for tally, name, doc in TALLIES:
            fam.counter(name, doc, INSTANCE).add_metric(labels, by_status.get(tally, 0))
        for code, n in sorted(by_status.items()):
            if code.isdigit():
                fam.counter("sarra_messages_by_code_total", "Messages handled, by the "
                            "status code of their outcome.", INSTANCE + ["code"]).add_metric(
                    labels + [code], n)
        for code, n in sorted(m.get("reported", {}).items()):
            fam.counter("sarra_reports_total", "Log messages sent to the sources, by status "
                        "code.", INSTANCE + ["code"]).add_metric(labels + [code], n)
        fam.gauge("sarra_retry_queue_messages", "Messages waiting in the instance's retry "
                  "queue.", INSTANCE).add_metric(labels, m.get("retry_queue", 0))
        for key, name, doc in (
                ("lag", "sarra_lag_seconds", "When the last batch was handled minus the "
                 "pubtime of its last message; absent with no batch in 5 minutes."),
                ("lag_p95", "sarra_lag_p95_seconds", "95th percentile of the lags of the "
                 "batches of the last 5 minutes."),
                ("last_activity", "sarra_last_activity_timestamp_seconds", "When the "
                 "instance last handled a batch (seconds since the epoch).")):
            if m.get(key) is not None:
                fam.gauge(name, doc, INSTANCE).add_metric(labels, m[key])
        if "connected" in m:
            fam.gauge("sarra_broker_connected", "1 when the instance is connected to its "
                      "broker.", INSTANCE).add_metric(labels, 1.0 if m["connected"] else 0.0)


class _Families:
    """The metric families of one collection, made on first use, in order."""

    def __init__(self):
        self._made: dict[str, object] = {}

    def _get(self, kind, name: str, doc: str, labels: list[str]):
        family = self._made.get(name)
        if family is None:
            family = self._made[name] = kind(name, doc, labels=labels)
        return family

    def gauge(self, name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return self._get(GaugeMetricFamily, name, doc, labels)

    def counter(self, name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
        return self._get(CounterMetricFamily, name, doc, labels)

    def all(self) -> list:
        return list(self._made.values())


def registry(results: Callable[[], list[dict]]) -> CollectorRegistry:
    """One registry holding the one collector (nothing of the process itself:
    the figures are the instances')."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(results))
    return reg


def exposition(results: list[dict]) -> str:
    """The text exposition (format 0.0.4) of the configurations ``results``."""
    return generate_latest(registry(lambda: results)).decode("utf-8")
