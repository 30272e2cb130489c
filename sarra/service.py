"""Running configurations as background instances: pid files, log files,
start/stop/status. Each instance is ``<tool> foreground CONFIG`` in its own
session with SARRA_INSTANCE set, its output going to its log file.

Processes are looked at through psutil. An instance's pid file holds its pid
and its process's start time ("4242 1764750000.12"): a process is that
instance only when both match (and its command line runs sarra.cli with
the tool and configuration), so a pid taken by another process after a
reboot or a crash is not mistaken for it. Pid files of older versions (the
pid alone) are judged by the command line.

``start`` launches every missing instance, then waits for all of them at
once (at most START_TIMEOUT seconds): an instance is up when it has written
its metrics file (the flow writes it once connected), has failed when it
died (its last log lines are shown, and ``start`` returns 1), and is
reported as started but silent when it is still running at the deadline
(still connecting to a broker that does not answer, say).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from . import health, lazy
from .config import paths
from .flow.housekeeping import read_metrics

psutil = lazy.module("psutil")   # the process table: only where instances are looked at

log = logging.getLogger(__name__)

START_TIMEOUT = 20.0     # seconds start waits, for all the instances it launched at once
START_LOG_LINES = 15     # lines of a dead instance's log that start shows
CREATE_TIME_SLACK = 1.0  # seconds: the start time of a process, as two readers compute it
STOP_TIMEOUT = 10.0      # seconds stop waits after SIGTERM before SIGKILL


def pid_file(tool: str, config: str, n: int) -> str:
    return paths.state_path(tool, config, f"{tool}_{config}_{n:02d}.pid")


def read_pid_file(path: str) -> tuple[int, float | None] | None:
    """(pid, start time) from a pid file; the start time is None in a pid
    file of an older version (the pid alone). None: no (readable) file."""
    try:
        with open(path) as f:
            fields = f.read().split()
        pid = int(fields[0])
        created = float(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    return (pid, created) if pid > 0 else None


def write_pid_file(path: str, pid: int, created: float | None) -> None:
    with open(path, "w") as f:
        f.write(f"{pid} {created:.2f}\n" if created is not None else f"{pid}\n")


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _runs(argv: list[str], tool: str, config: str) -> bool:
    """Does this command line run ``tool`` on configuration ``config``?"""
    names = set()
    for a in argv:
        base = os.path.basename(a)
        names.add(base[:-5] if base.endswith(".conf") else base)   # from-ca.east: as it is
    return any("sarra.cli" in a for a in argv) and tool in argv and config in names


def instance_process(pid: int, created: float | None, tool: str,
                     config: str) -> psutil.Process | None:
    """The live process ``pid`` when it is this instance: started at
    ``created`` (when known), not a zombie, running this tool and
    configuration. A command line we may not read is trusted."""
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > CREATE_TIME_SLACK:
            return None          # another process, given the pid of a dead one
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        try:
            argv = proc.cmdline()
        except psutil.AccessDenied:
            return proc
        if not argv and created is not None:
            return proc          # (empty for a moment as it starts: the start time says)
        return proc if _runs(argv, tool, config) else None
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:   # another user's: its number is all we know
        return psutil.Process(pid) if psutil.pid_exists(pid) else None


def _instance(tool: str, config: str, n: int) -> psutil.Process | None:
    found = read_pid_file(pid_file(tool, config, n))
    return instance_process(found[0], found[1], tool, config) if found else None


def alive(tool: str, config: str, n: int) -> int | None:
    """The pid of instance ``n`` when it runs."""
    proc = _instance(tool, config, n)
    return proc.pid if proc is not None else None


def _instances(tool: str, config: str, instances: int) -> dict[int, psutil.Process]:
    out = {}
    for n in range(1, max(instances, 1) + 1):
        proc = _instance(tool, config, n)
        if proc is not None:
            out[n] = proc
    return out


def running(tool: str, config: str, instances: int) -> dict[int, int]:
    return {n: p.pid for n, p in _instances(tool, config, instances).items()}


OVERRIDES_ENV = "SARRA_OVERRIDES"
LOG_ENV = paths.LOG_ENV

# Python < 3.11 has no -P: the same, by hand (sys.path[0] is '' with -c)
_SAFE_MAIN = ("import sys; del sys.path[0]; import runpy; "
              "runpy.run_module('sarra.cli', run_name='__main__', alter_sys=True)")


def instance_argv(tool: str, config_arg: str) -> list[str]:
    """The command of an instance: this interpreter, running sarra.cli with
    no directory put first on sys.path (``-m`` would put the current one
    there: a folder named 'sarra' in it would be imported instead)."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", "sarra.cli", tool, "foreground", config_arg]
    return [sys.executable, "-c", _SAFE_MAIN, tool, "foreground", config_arg]


def instance_env(n: int, overrides: list[tuple[str, str]], logfile: str) -> dict[str, str]:
    """The environment of instance ``n``. An empty entry of PYTHONPATH (a
    ':' too many, from PYTHONPATH=$PYTHONPATH:/x) would be the current
    directory: such entries are dropped."""
    env = dict(os.environ, SARRA_INSTANCE=str(n),
               **{OVERRIDES_ENV: json.dumps(overrides), LOG_ENV: logfile})
    if "PYTHONPATH" in env:
        kept = [p for p in env["PYTHONPATH"].split(os.pathsep) if p]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            del env["PYTHONPATH"]
    return env


@dataclass(eq=False)
class Launched:
    """An instance ``launch`` started, for ``wait_started``."""
    tool: str
    config: str
    n: int
    proc: subprocess.Popen
    created: float            # its start time (or the launch time, if unknown)
    logfile: str
    log_at: tuple[int, int]   # (inode, size) of its log file before it started

    @property
    def label(self) -> str:
        return f"{self.tool}/{self.config} instance {self.n}"

    def metrics_file(self) -> str:
        return paths.state_path(self.tool, self.config, f"metrics.{self.n:02d}.json")

    def reported(self) -> bool:
        """Has it written its metrics file (it is connected and at work)?"""
        m = read_metrics(self.metrics_file())
        return bool(m) and m.get("pid") == self.proc.pid and \
            m.get("time", 0) >= self.created - CREATE_TIME_SLACK

    def log_lines(self, lines: int) -> list[str]:
        """The last ``lines`` lines it wrote in its log file (the whole
        file's last lines when it was rotated meanwhile)."""
        try:
            st = os.stat(self.logfile)
            inode, size = self.log_at
            start = size if st.st_ino == inode and st.st_size >= size else 0
            with open(self.logfile, "rb") as f:
                f.seek(max(start, st.st_size - 400 * lines))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


def launch(tool: str, config: str, config_arg: str, instances: int,
           overrides: list[tuple[str, str]]) -> list[Launched]:
    """Start the instances not running, without waiting for them.
    Command-line options reach them in the environment (readable only by
    this user), never in their argv, which every local user can read: a URL
    there may hold a password. ``config`` names the pid and log files;
    ``config_arg`` is what the instances are given to find it (a name or a
    path)."""
    up = running(tool, config, instances)
    _save_overrides(tool, config, overrides)
    started = []
    for n in range(1, instances + 1):
        if n in up:
            continue
        logfile = paths.log_path(tool, config, n)
        with open(logfile, "ab") as out:
            st = os.fstat(out.fileno())
            proc = subprocess.Popen(instance_argv(tool, config_arg), stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL,
                                    env=instance_env(n, overrides, logfile),
                                    start_new_session=True)
        # not reaped until polled: the pid is still its own, even if it died
        created = _create_time(proc.pid)
        write_pid_file(pid_file(tool, config, n), proc.pid, created)
        started.append(Launched(tool, config, n, proc, created or time.time(), logfile,
                                (st.st_ino, st.st_size)))
    return started


def wait_started(launched: list[Launched], timeout: float = START_TIMEOUT) -> int:
    """Wait, for all at once and at most ``timeout`` seconds, until each
    instance has reported (metrics file) or died; print a line for each.
    Returns 1 when one died (its last log lines on standard error), else 0."""
    deadline = time.monotonic() + timeout
    pending = list(launched)
    failed = 0
    while pending:
        for inst in list(pending):
            code = inst.proc.poll()
            if code is not None:
                pending.remove(inst)
                failed += 1
                _report_death(inst, code)
            elif inst.reported():
                pending.remove(inst)
                print(f"{inst.label} started (pid {inst.proc.pid}, log {inst.logfile})",
                      flush=True)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for inst in pending:
        print(f"{inst.label} started (pid {inst.proc.pid}, log {inst.logfile}), but has not "
              f"reported after {timeout:g}s: still connecting? (see its log)", flush=True)
    return 1 if failed else 0


def _report_death(inst: Launched, code: int) -> None:
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    lines = inst.log_lines(START_LOG_LINES)
    print(f"{inst.label} died at start ({how}, pid {inst.proc.pid}, log {inst.logfile})"
          + ("; its last lines:" if lines else "; nothing in its log"), file=sys.stderr)
    for line in lines:
        print(f"    {line}", file=sys.stderr)
    sys.stderr.flush()


def start(tool: str, config: str, config_arg: str, instances: int,
          overrides: list[tuple[str, str]], timeout: float = START_TIMEOUT) -> int:
    """Start the instances not running and wait for them (``launch``, then
    ``wait_started``): 0 when none died at start, 1 otherwise."""
    return wait_started(launch(tool, config, config_arg, instances, overrides), timeout)


def _overrides_file(tool: str, config: str) -> str:
    return paths.state_path(tool, config, "overrides.json")


def _save_overrides(tool: str, config: str, overrides: list[tuple[str, str]]) -> None:
    """What ``start`` was given on the command line, for ``sanity`` to start
    the same instances again (mode 0600: a URL there may hold a password)."""
    path = _overrides_file(tool, config)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(overrides, f)


def _saved_overrides(tool: str, config: str) -> list[tuple[str, str]]:
    try:
        with open(_overrides_file(tool, config), encoding="utf-8") as f:
            return [tuple(kv) for kv in json.load(f)]
    except (OSError, ValueError):
        return []


def stop(tool: str, config: str, instances: int, timeout: float = STOP_TIMEOUT) -> int:
    up = _instances(tool, config, max(instances, 32))
    for proc in up.values():
        try:
            proc.send_signal(signal.SIGTERM)   # (psutil: only if it is still that process)
        except psutil.NoSuchProcess:
            pass
    _gone, left = psutil.wait_procs(list(up.values()), timeout=timeout)
    for n, proc in up.items():
        if proc in left:
            log.warning("%s/%s instance %d did not stop: killing it", tool, config, n)
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
    for n in range(1, max(instances, 32) + 1):
        try:
            os.unlink(pid_file(tool, config, n))
        except FileNotFoundError:
            pass
    print(f"{tool}/{config} stopped ({len(up)} instances)")
    return 0


def pid_files(tool: str, config: str) -> list[str]:
    """The pid files present: the instances started and not stopped."""
    directory = paths.state_path(tool, config)
    return [os.path.join(directory, f) for f in sorted(os.listdir(directory))
            if f.endswith(".pid")]


def _usage(proc: psutil.Process, now: float) -> tuple[int, float, float, float | None]:
    """(resident memory in bytes, CPU seconds, mean CPU % since it started,
    its start time)."""
    try:
        with proc.oneshot():
            rss = proc.memory_info().rss
            t = proc.cpu_times()
            cpu = t.user + t.system
            created = proc.create_time()
    except psutil.Error:       # gone meanwhile, or another user's
        return 0, 0.0, 0.0, None
    age = now - created
    return rss, cpu, 100.0 * cpu / age if age > 0 else 0.0, created


FRESH = 60.0    # seconds: figures older than this are not added to the rates


def metrics_file(tool: str, config: str, n: int) -> str:
    return paths.state_path(tool, config, f"metrics.{n:02d}.json")


def instance_figures(tool: str, config: str, instances: int) -> list[dict]:
    """What is known of each instance (1 to ``instances``): ``n``, ``pid``
    (None: not running), ``metrics`` (what this very process last wrote in
    its metrics file; None: nothing yet), ``created`` (its start time),
    ``rss_bytes``, ``cpu_seconds``, ``cpu_percent`` (mean since it started)."""
    now = time.time()
    out = []
    for n in range(1, max(instances, 1) + 1):
        rec = {"n": n, "pid": None, "metrics": None, "created": None, "rss_bytes": 0,
               "cpu_seconds": 0.0, "cpu_percent": 0.0}
        proc = _instance(tool, config, n)
        if proc is not None:
            m = read_metrics(metrics_file(tool, config, n))
            rss, cpu, pct, created = _usage(proc, now)
            rec.update(pid=proc.pid, metrics=m if m and m.get("pid") == proc.pid else None,
                       created=created, rss_bytes=rss, cpu_seconds=cpu, cpu_percent=pct)
        out.append(rec)
    return out


def _known(values):
    return [v for v in values if v is not None]


def health_figures(recs: list[dict], instances: int, started: bool, now: float,
                   batch: int = 1) -> health.Figures:
    """health.Figures of instances ``recs`` (``instance_figures``), out of
    ``instances`` configured; ``started``: it has pid files."""
    up = [r for r in recs if r["pid"] is not None]
    reported = [r["metrics"] for r in up if r["metrics"]]
    fresh = [m for m in reported if now - m.get("time", 0) < FRESH]
    unreported = [now - r["created"] for r in up if not r["metrics"] and r["created"]]
    active = _known(m.get("last_activity") for m in reported)
    idle_for = now - max(active) if active else \
        (now - min(m.get("started", now) for m in reported) if reported else None)
    queues = sorted(((m.get("broker_queue_time") or 0, m) for m in fresh
                     if m.get("broker_queue") is not None), key=lambda tm: tm[0])
    newest = queues[-1][1] if queues else {}
    return health.Figures(
        instances=instances, up=len(up), started=started,
        connected=all(m.get("connected", True) for m in fresh),
        silent_for=max((now - m.get("time", 0) for m in reported), default=None),
        unreported_for=max(unreported, default=None),
        idle_for=max(idle_for, 0.0) if idle_for is not None else None,
        messages_per_s=sum(m.get("messages_per_s", 0) for m in fresh),
        failures_per_s=sum(m.get("failures_per_s", 0) for m in fresh),
        lag=max(_known(m.get("lag") for m in fresh), default=None),
        lag_p95=max(_known(m.get("lag_p95") for m in fresh), default=None),
        lag_trend=max(_known(m.get("lag_trend") for m in fresh), default=None),
        broker_queue=newest.get("broker_queue"),
        broker_queue_trend=newest.get("broker_queue_trend"), batch=max(batch, 1))


def describe(tool: str, config: str, instances: int,
             thresholds: health.Thresholds | None = None, batch: int = 1) -> dict:
    """State of a configuration: running/partial/stopped, instances up, the
    rates its instances last wrote in their metrics files, and what they
    use: resident memory (RSS) and CPU, added up over the instances (CPU
    as the mean since each started: 100 is one core all the time); its
    health (sarra/health.py) judged by ``thresholds`` (default: the
    options' defaults), with the broker queue's depth and the lag.
    ``batch``: the configuration's prefetch."""
    th = thresholds or health.Thresholds()
    recs = instance_figures(tool, config, instances)
    now = time.time()
    up = {r["n"]: r for r in recs if r["pid"] is not None}
    state = "running" if len(up) == instances else "partial" if up else "stopped"
    fresh = [r["metrics"] for r in up.values()
             if r["metrics"] and now - r["metrics"].get("time", 0) < FRESH]
    fig = health_figures(recs, instances, bool(pid_files(tool, config)), now, batch)
    return {"tool": tool, "config": config, "state": state, "up": len(up),
            "instances": instances, "pids": {n: r["pid"] for n, r in up.items()},
            "messages_per_s": sum(m.get("messages_per_s", 0) for m in fresh),
            "bytes_per_s": sum(m.get("bytes_per_s", 0) for m in fresh),
            "retry_queue": int(sum(m.get("retry_queue", 0) for m in fresh)),
            "rss_bytes": sum(r["rss_bytes"] for r in up.values()),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in up.values()), 2),
            "cpu_percent": sum(r["cpu_percent"] for r in up.values()),
            "health": health.assess(fig, th), "thresholds": th,
            "broker_queue": fig.broker_queue, "lag": fig.lag, "lag_p95": fig.lag_p95,
            "failures_per_s": fig.failures_per_s, "started": fig.started,
            "instance_figures": recs, "restarts": restarts(tool, config)}


def _seconds(t: float) -> str:
    return f"{t:.1f}s" if t < 100 else f"{t:.0f}s"


def status_line(d: dict) -> str:
    line = f"{d['tool']}/{d['config']}: {d['state']} ({d['up']}/{d['instances']} instances)"
    h = d.get("health")
    if h is not None and (d["up"] or h.state != "stopped"):
        line += f", health {h.state}" + (f" ({h.reason})" if h.reason else "")
    if d["up"]:
        line += f", {d['messages_per_s']:.1f} msgs/s, {d['bytes_per_s'] / 1e6:.2f} MB/s"
        if d.get("broker_queue") is not None:
            line += f", broker queue {d['broker_queue']}"
        if d.get("lag") is not None:
            line += f", lag {_seconds(d['lag'])}"
            if d.get("lag_p95") is not None:
                line += f" (p95 {_seconds(d['lag_p95'])})"
        line += (f", retry queue {d['retry_queue']}, memory {d['rss_bytes'] / 1e6:.1f} MB, "
                 f"CPU {d['cpu_percent']:.1f}%")
    return line


def status(tool: str, config: str, instances: int,
           thresholds: health.Thresholds | None = None, batch: int = 1) -> int:
    d = describe(tool, config, instances, thresholds, batch)
    print(status_line(d))
    return 0 if d["state"] == "running" else 1


# -- sanity: dead and stuck instances started again --------------------------------

def _restarts_file(tool: str, config: str) -> str:
    return paths.state_path(tool, config, "restarts.json")


def restarts(tool: str, config: str) -> dict[str, int]:
    """How many instances ``sanity`` started again, by reason (dead, stuck)."""
    try:
        with open(_restarts_file(tool, config), encoding="utf-8") as f:
            data = json.load(f)
        return {k: int(v) for k, v in data.items() if isinstance(v, int)}
    except (OSError, ValueError, AttributeError):
        return {}


def _count_restarts(tool: str, config: str, reason: str, n: int) -> None:
    if n <= 0:
        return
    counts = restarts(tool, config)
    counts[reason] = counts.get(reason, 0) + n
    path = _restarts_file(tool, config)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(counts, f)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc)


def stuck_instances(tool: str, config: str, instances: int,
                    thresholds: health.Thresholds | None = None,
                    batch: int = 1) -> list[tuple[int, int, str]]:
    """(n, pid, why) of each running instance that is stuck on its own
    (sarra/health.py, judged on that instance's figures alone)."""
    th = thresholds or health.Thresholds()
    now = time.time()
    out = []
    for rec in instance_figures(tool, config, instances):
        if rec["pid"] is None:
            continue
        h = health.assess(health_figures([rec], 1, True, now, batch), th)
        if h.state == "stuck":
            out.append((rec["n"], rec["pid"], h.reason))
    return out


def _end_instance(tool: str, config: str, n: int, timeout: float = 5.0) -> None:
    """SIGTERM, and SIGKILL after ``timeout`` seconds (a stuck loop may not
    come back to see the signal)."""
    proc = _instance(tool, config, n)
    if proc is None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        _gone, left = psutil.wait_procs([proc], timeout=timeout)
        for p in left:
            p.kill()
        psutil.wait_procs(left, timeout=timeout)
    except psutil.NoSuchProcess:
        pass


def relaunch(tool: str, config: str, config_arg: str, instances: int,
             thresholds: health.Thresholds | None = None, batch: int = 1) -> list[Launched]:
    """Start again, without waiting, the dead instances of a configuration
    that was started (it has pid files) and not stopped, and the stuck ones
    (ended first), with the options it was started with. Each restart is
    logged and counted (``restarts``)."""
    if not pid_files(tool, config):
        return []
    stuck = stuck_instances(tool, config, instances, thresholds, batch)
    for n, pid, why in stuck:
        log.warning("%s/%s instance %d (pid %d) is stuck (%s): restarting it", tool, config,
                    n, pid, why)
        _end_instance(tool, config, n)
    up = running(tool, config, instances)
    if len(up) == instances:
        return []
    dead = instances - len(up) - len(stuck)
    if dead > 0:
        log.warning("%s/%s: %d of %d instances running: starting the others", tool, config,
                    len(up) + len(stuck), instances)
    launched = launch(tool, config, config_arg, instances, _saved_overrides(tool, config))
    stuck_ns = {n for n, _pid, _why in stuck}
    _count_restarts(tool, config, "stuck", sum(1 for i in launched if i.n in stuck_ns))
    _count_restarts(tool, config, "dead", sum(1 for i in launched if i.n not in stuck_ns))
    return launched


def sanity(tool: str, config: str, config_arg: str, instances: int,
           thresholds: health.Thresholds | None = None, batch: int = 1) -> int:
    """``relaunch``, then wait for those instances. Returns how many were started."""
    started = relaunch(tool, config, config_arg, instances, thresholds, batch)
    if started:
        wait_started(started)
    return len(started)


def tail(path: str, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (read from its end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 200 * lines))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


def last_figures(tool: str, config: str, instances: int, within: float) -> list[dict]:
    """What each instance (1 to ``instances``) last wrote in its metrics file,
    running or not, when it wrote it in the last ``within`` seconds (the
    web console: a dead flow's last hour is still shown)."""
    now = time.time()
    out = []
    for n in range(1, max(instances, 1) + 1):
        m = read_metrics(metrics_file(tool, config, n))
        if m and now - m.get("time", 0) < within:
            out.append(m)
    return out
