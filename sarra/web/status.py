"""What the console's page shows (``/api/status``), as JSON: for each
configuration ``sarra/service.py:describe`` found (its state, health,
instances, rates, lag, broker queue and retry backlog), the last hour of
its work per minute summed over its instances, and its latest deliveries
and failures, both from the instances' metrics files
(sarra/flow/housekeeping.py: ``history``, ``recent``); and the switch's
view, its sources with their posts per minute and the log messages routed
back to them (``switch``). A pure function of those dictionaries and the
time."""
from ..flow.housekeeping import HISTORY_SPAN, HISTORY_STEP

RECENT_SHOWN = 20      # deliveries and failures listed per configuration
# the switch's view: the posts its dd_sara take from the sources, and the log
# messages its log router (dd_shovel) routes back to them; not those of the
# shovels towards neighbours (logs-to-<cluster>), which the log router counts too
SWITCH_KINDS = {"sara": ("post",), "shovel": ("log_ok", "log_failed")}
NOT_COUNTED = ("shovel/logs-to-",)


def snapshot(results: list[dict], files: dict[str, list[dict]], now: float,
             errors: list[str] = ()) -> dict:
    """The page's data. ``results``: ``service.describe`` of each
    configuration; ``files``: 'tool/config' -> what each of its instances
    last wrote (running or not: a dead flow's last hour is still shown);
    ``errors``: the configurations that could not be read."""
    return {"time": now, "errors": list(errors),
            "configurations": [configuration(d, files.get(f"{d['tool']}/{d['config']}", []),
                                             now) for d in results],
            "sources": switch(files)}


def switch(files: dict[str, list[dict]]) -> list[dict]:
    """Each source seen by the switch's components, with ``post``,
    ``log_ok`` and ``log_failed``: [messages since their instances started,
    per minute over the last minute], added up over the configurations and
    instances that count them (SWITCH_KINDS)."""
    found: dict[str, dict[str, list[float]]] = {}
    for name, metrics in sorted(files.items()):
        kinds = SWITCH_KINDS.get(name.split("/", 1)[0], ())
        if not kinds or name.startswith(NOT_COUNTED):
            continue
        for m in metrics:
            for kind in kinds:
                for source, figures in ((m.get("sources") or {}).get(kind) or {}).items():
                    try:
                        total, per_minute = float(figures[0]), float(figures[1])
                    except (TypeError, ValueError, IndexError, KeyError):
                        continue
                    acc = found.setdefault(str(source), {}).setdefault(kind, [0.0, 0.0])
                    acc[0] += total
                    acc[1] += per_minute
    return [{"source": source, **{k: kinds.get(k, [0.0, 0.0])
                                  for k in ("post", "log_ok", "log_failed")}}
            for source, kinds in sorted(found.items())]


def configuration(d: dict, metrics: list[dict], now: float) -> dict:
    h = d["health"]
    return {"name": f"{d['tool']}/{d['config']}", "tool": d["tool"], "config": d["config"],
            "state": d["state"], "health": h.state, "reason": h.reason,
            "severity": h.severity, "up": d["up"], "instances": d["instances"],
            "messages_per_s": d["messages_per_s"], "bytes_per_s": d["bytes_per_s"],
            "lag": d.get("lag"), "lag_p95": d.get("lag_p95"),
            "broker_queue": d.get("broker_queue"), "retry_queue": d["retry_queue"],
            "rss_bytes": d["rss_bytes"], "cpu_percent": round(d["cpu_percent"], 1),
            "restarts": d.get("restarts", {}),
            "history": history(metrics, now), "recent": recent(metrics)}


def history(metrics: list[dict], now: float) -> list[list]:
    """``[start, messages/s, lag (None: no batch), failures/s]`` per minute of
    the last hour, the instances' entries added up (lag: the largest); the
    minute under way is divided by the part of it gone by."""
    minutes: dict[float, list] = {}
    for m in metrics:
        for e in m.get("history") or ():
            try:
                start, n, _nbytes, failed, lag = e
                start, n, failed = float(start), float(n), float(failed)
            except (TypeError, ValueError):
                continue
            if now - start >= HISTORY_SPAN:
                continue
            acc = minutes.setdefault(start, [0.0, 0.0, None])
            acc[0] += n
            acc[1] += failed
            if isinstance(lag, (int, float)):
                acc[2] = max(acc[2] or 0.0, float(lag))
    out = []
    for start in sorted(minutes):
        n, failed, lag = minutes[start]
        span = min(HISTORY_STEP, max(now - start, 1.0))
        out.append([start, round(n / span, 3), lag, round(failed / span, 3)])
    return out


def recent(metrics: list[dict]) -> dict[str, list[dict]]:
    """The latest jobs that ended ok (deliveries) and failed, newest first."""
    out = {}
    for state in ("ok", "failed"):
        rows = []
        for m in metrics:
            for item in (m.get("recent") or {}).get(state) or ():
                try:
                    t, relpath, code, reason = item
                    rows.append({"time": float(t), "relpath": str(relpath),
                                 "code": code, "reason": str(reason)})
                except (TypeError, ValueError):
                    continue
        rows.sort(key=lambda r: r["time"], reverse=True)
        out[state] = rows[:RECENT_SHOWN]
    return out
