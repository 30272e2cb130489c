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
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil

from .config import paths
from .flow.housekeeping import read_metrics

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
LOG_ENV = "SARRA_LOG_FILE"        # an instance logs there itself (and rotates it)

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


def _usage(proc: psutil.Process, now: float) -> tuple[int, float, float]:
    """(resident memory in bytes, CPU seconds, mean CPU % since it started)."""
    try:
        with proc.oneshot():
            rss = proc.memory_info().rss
            t = proc.cpu_times()
            cpu = t.user + t.system
            age = now - proc.create_time()
    except psutil.Error:       # gone meanwhile, or another user's
        return 0, 0.0, 0.0
    return rss, cpu, 100.0 * cpu / age if age > 0 else 0.0


def describe(tool: str, config: str, instances: int) -> dict:
    """State of a configuration: running/partial/stopped, instances up, the
    rates its instances last wrote in their metrics files, and what they
    use: resident memory (RSS) and CPU, added up over the instances (CPU
    as the mean since each started: 100 is one core all the time)."""
    up = _instances(tool, config, instances)
    state = "running" if len(up) == instances else "partial" if up else "stopped"
    msgs = nbytes = retry = 0.0
    rss, cpu_s, cpu_pct = 0, 0.0, 0.0
    now = time.time()
    for n, proc in up.items():
        m = read_metrics(paths.state_path(tool, config, f"metrics.{n:02d}.json"))
        if m and m.get("pid") == proc.pid and now - m.get("time", 0) < 60:
            msgs += m.get("messages_per_s", 0)
            nbytes += m.get("bytes_per_s", 0)
            retry += m.get("retry_queue", 0)
        r, c, p = _usage(proc, now)
        rss, cpu_s, cpu_pct = rss + r, cpu_s + c, cpu_pct + p
    return {"tool": tool, "config": config, "state": state, "up": len(up),
            "instances": instances, "pids": {n: p.pid for n, p in up.items()},
            "messages_per_s": msgs, "bytes_per_s": nbytes, "retry_queue": int(retry),
            "rss_bytes": rss, "cpu_seconds": round(cpu_s, 2), "cpu_percent": cpu_pct}


def status_line(d: dict) -> str:
    line = f"{d['tool']}/{d['config']}: {d['state']} ({d['up']}/{d['instances']} instances)"
    if d["up"]:
        line += (f", {d['messages_per_s']:.1f} msgs/s, {d['bytes_per_s'] / 1e6:.2f} MB/s, "
                 f"retry queue {d['retry_queue']}, memory {d['rss_bytes'] / 1e6:.1f} MB, "
                 f"CPU {d['cpu_percent']:.1f}%")
    return line


def status(tool: str, config: str, instances: int) -> int:
    d = describe(tool, config, instances)
    print(status_line(d))
    return 0 if d["state"] == "running" else 1


def relaunch(tool: str, config: str, config_arg: str, instances: int) -> list[Launched]:
    """Start again, without waiting, the dead instances of a configuration
    that was started (it has pid files) and not stopped, with the options
    it was started with."""
    if not pid_files(tool, config):
        return []
    up = running(tool, config, instances)
    if len(up) == instances:
        return []
    log.warning("%s/%s: %d of %d instances running: starting the others", tool, config,
                len(up), instances)
    return launch(tool, config, config_arg, instances, _saved_overrides(tool, config))


def sanity(tool: str, config: str, config_arg: str, instances: int) -> int:
    """``relaunch``, then wait for those instances. Returns how many were started."""
    started = relaunch(tool, config, config_arg, instances)
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
