"""The health of a configuration, from the figures its instances write
(sarra/flow/housekeeping.py) and its processes (sarra/service.py): a pure
function of those figures and of the configuration's thresholds, and the
Nagios-compatible check line made of them. Imports nothing of the package.

States, the first that holds (``assess``):

- ``stopped``: no instance runs and none was meant to (never started, or
  stopped on purpose: no pid files);
- ``dead``: instances that were started are not running (killed, crashed);
- ``stuck``: an instance runs but wrote no figures for ``stuck_after``
  (its loop hangs), or messages wait in the broker queue and nothing was
  handled for ``stuck_after``;
- ``failing``: an instance lost its broker (or never reached it within
  ``stuck_after`` of its start), or, over the last minute, the share of
  the messages handled that failed (queued for retry, given up) is at
  least ``failing_ratio``;
- ``idle``: nothing handled for ``idle_after``, and nothing known to wait;
- ``slow``: the broker queue grows (over the last minute) beyond a batch
  per instance: messages arrive faster than they are handled; when the
  depth is unknown, the lag is above ``lag_warn`` and growing;
- ``lagging``: the lag of the last batch is above ``lag_warn``;
- ``running``: at work, keeping up.

As a check (``SEVERITY``): running and idle are OK, lagging and slow
WARNING, the others CRITICAL.
"""
from dataclasses import dataclass, field

STATES = ("running", "idle", "lagging", "slow", "stuck", "failing", "dead", "stopped")
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
CHECK_WORDS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
SEVERITY = {"running": OK, "idle": OK, "lagging": WARNING, "slow": WARNING,
            "stuck": CRITICAL, "failing": CRITICAL, "dead": CRITICAL, "stopped": CRITICAL}


@dataclass(frozen=True)
class Thresholds:
    """The options of sarra/config/options.py that judge the health."""
    lag_warn: float = 60.0        # seconds
    stuck_after: float = 300.0    # seconds
    idle_after: float = 60.0      # seconds
    failing_ratio: float = 0.5    # failures / messages handled; 0: never failing by ratio

    @classmethod
    def of(cls, cfg) -> "Thresholds":
        return cls(lag_warn=cfg.lag_warn, stuck_after=cfg.stuck_after,
                   idle_after=cfg.idle_after, failing_ratio=cfg.failing_ratio)


@dataclass
class Figures:
    """What is known of a configuration at time ``now`` (seconds since the
    epoch), summed or taken at its worst over its running instances.

    ``silent_for``: the longest time since a running instance last wrote its
    figures (None: none has written any yet); ``unreported_for``: the age of
    the oldest running instance that has written none (None: none such);
    ``idle_for``: time since the last batch handled by any instance (None:
    none ever); ``broker_queue`` and ``broker_queue_trend`` (messages, and
    messages per second over the last minute): None when unknown;
    ``lag_trend``: seconds of lag gained per second over the last minute;
    ``batch``: messages a running instance takes at once (its prefetch)."""
    instances: int
    up: int = 0
    started: bool = False
    connected: bool = True
    silent_for: float | None = None
    unreported_for: float | None = None
    idle_for: float | None = None
    messages_per_s: float = 0.0
    failures_per_s: float = 0.0
    lag: float | None = None
    lag_p95: float | None = None
    lag_trend: float | None = None
    broker_queue: int | None = None
    broker_queue_trend: float | None = None
    batch: int = 1


@dataclass(frozen=True)
class Health:
    state: str
    reason: str = ""
    severity: int = field(default=OK)


def _health(state: str, reason: str) -> Health:
    return Health(state, reason, SEVERITY[state])


def _secs(t: float) -> str:
    return f"{t:.0f}s" if t >= 10 else f"{t:.1f}s"


def assess(f: Figures, th: Thresholds) -> Health:
    """The state of a configuration (see the module), with why."""
    if f.up == 0:
        if f.started:
            return _health("dead", f"0 of {f.instances} instances running")
        return _health("stopped", "not started")
    if f.up < f.instances:
        return _health("dead", f"{f.instances - f.up} of {f.instances} instances not running")
    if f.silent_for is not None and f.silent_for > th.stuck_after:
        return _health("stuck", f"no figures written for {_secs(f.silent_for)}")
    if not f.connected:
        return _health("failing", "broker connection lost")
    if f.unreported_for is not None and f.unreported_for > th.stuck_after:
        return _health("failing", f"not connected {_secs(f.unreported_for)} after its start")
    waiting = bool(f.broker_queue)
    idle_for = f.idle_for
    if waiting and idle_for is not None and idle_for > th.stuck_after:
        return _health("stuck", f"{f.broker_queue} messages waiting, nothing handled for "
                                f"{_secs(idle_for)}")
    if th.failing_ratio > 0 and f.failures_per_s > 0 and \
            f.failures_per_s >= th.failing_ratio * max(f.messages_per_s, 1e-9):
        share = min(1.0, f.failures_per_s / max(f.messages_per_s, 1e-9))
        return _health("failing", f"{100 * share:.0f}% of the messages failed over the "
                                  "last minute")
    if not waiting and (idle_for is None or idle_for > th.idle_after):
        return _health("idle", "nothing handled" + (f" for {_secs(idle_for)}"
                                                    if idle_for is not None else " yet"))
    lagging = f.lag is not None and f.lag > th.lag_warn
    if f.broker_queue is not None and f.broker_queue_trend is not None:
        if f.broker_queue_trend > 0 and f.broker_queue > f.batch * f.up:
            return _health("slow", f"the broker queue grows by {f.broker_queue_trend:.1f}/s "
                                   f"({f.broker_queue} waiting)")
    elif lagging and f.lag_trend is not None and f.lag_trend > 0:
        return _health("slow", f"lag {_secs(f.lag)} and growing")
    if lagging:
        return _health("lagging", f"lag {_secs(f.lag)} > {_secs(th.lag_warn)}")
    return _health("running", "")


# -- the check: one line, as monitoring plugins print it ------------------------

def perf(label: str, value, unit: str = "", warn="", crit="", low="", high="") -> str:
    """One item of performance data: ``'label'=value[unit];warn;crit;min;max``
    (trailing empty fields left out; the label quoted when it holds a space,
    a quote or an equal sign)."""
    if any(c in label for c in " '="):
        label = "'" + label.replace("'", "''") + "'"
    text = f"{label}={_num(value)}{unit}"
    fields = [_num(x) if x != "" else "" for x in (warn, crit, low, high)]
    while fields and fields[-1] == "":
        fields.pop()
    return text + "".join(f";{x}" for x in fields)


def _num(x) -> str:
    if isinstance(x, float):
        text = f"{x:.3f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(x)


def check_line(results: list[dict], errors: list[str] = ()) -> tuple[int, str]:
    """(exit status, line) of ``sarra check``: the worst severity over the
    configurations (``results``: ``sarra/service.py:describe`` of each,
    with its ``health`` and ``thresholds``), UNKNOWN when nothing could be
    judged (``errors``: configurations that could not be read)."""
    if not results and not errors:
        return UNKNOWN, "SARRA UNKNOWN - no configuration"
    code = max([r["health"].severity for r in results], default=OK)
    if errors and code != CRITICAL:   # a configuration not judged: not OK, not WARNING
        code = UNKNOWN
    bad = [r for r in results if r["health"].severity != OK]
    parts = [f"{r['tool']}/{r['config']} {r['health'].state}"
             + (f" ({r['health'].reason})" if r["health"].reason else "") for r in bad]
    parts += [f"{e}: cannot be read" for e in errors]
    if not parts:
        counts: dict[str, int] = {}
        for r in results:
            counts[r["health"].state] = counts.get(r["health"].state, 0) + 1
        parts = [f"{len(results)} configuration{'s' if len(results) != 1 else ''} "
                 + ", ".join(f"{s} {n}" for s, n in counts.items())]
    data = []
    for r in results:
        name, th = f"{r['tool']}/{r['config']}", r["thresholds"]
        data.append(perf(f"{name}_up", r["up"], "", "", f"{r['instances']}:", 0,
                         r["instances"]))
        data.append(perf(f"{name}_rate", round(r["messages_per_s"], 3), "", "", "", 0))
        if r.get("lag") is not None:
            data.append(perf(f"{name}_lag", round(r["lag"], 3), "s", th.lag_warn, "", 0))
        if r.get("broker_queue") is not None:
            data.append(perf(f"{name}_queue", r["broker_queue"], "", "", "", 0))
        data.append(perf(f"{name}_retry", r["retry_queue"], "", "", "", 0))
        if th.failing_ratio > 0:
            share = r["failures_per_s"] / r["messages_per_s"] if r["messages_per_s"] else 0.0
            data.append(perf(f"{name}_failing", round(min(share, 1.0), 3), "", "",
                             th.failing_ratio, 0, 1))
    return code, (f"SARRA {CHECK_WORDS[code]} - {'; '.join(parts)}"
                  + (" | " + " ".join(data) if data else ""))
