"""Running configurations as background instances: pid files, log files,
start/stop/status. Each instance is ``<tool> foreground CONFIG`` in its own
session with SARRA_INSTANCE set, its output going to its log file."""
import json
import logging
import os
import signal
import subprocess
import sys
import time

from .config import paths
from .flow.housekeeping import read_metrics

log = logging.getLogger(__name__)


def pid_file(tool: str, config: str, n: int) -> str:
    return paths.state_path(tool, config, f"{tool}_{config}_{n:02d}.pid")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _ours(pid: int, tool: str, config: str) -> bool:
    """Is ``pid`` an instance of this configuration (not a process that got
    the pid of one that died, e.g. after a reboot)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return True     # no /proc here: trust the pid
    names = set()
    for a in argv:
        base = os.path.basename(a.decode("utf-8", "replace"))
        names.add(base[:-5] if base.endswith(".conf") else base)   # from-ca.east: as it is
    return b"sarra.cli" in argv and tool.encode() in argv and config in names


def alive(tool: str, config: str, n: int) -> int | None:
    """The pid of instance ``n`` when it runs."""
    pid = _read_pid(pid_file(tool, config, n))
    return pid if pid and _alive(pid) and _ours(pid, tool, config) else None


def running(tool: str, config: str, instances: int) -> dict[int, int]:
    out = {}
    for n in range(1, max(instances, 1) + 1):
        pid = alive(tool, config, n)
        if pid:
            out[n] = pid
    return out


OVERRIDES_ENV = "SARRA_OVERRIDES"
LOG_ENV = "SARRA_LOG_FILE"        # an instance logs there itself (and rotates it)


def start(tool: str, config: str, config_arg: str, instances: int,
          overrides: list[tuple[str, str]]) -> int:
    """Start the instances not running. Command-line options reach them in
    the environment (readable only by this user), never in their argv,
    which every local user can read: a URL there may hold a password.
    ``config`` names the pid and log files; ``config_arg`` is what the
    instances are given to find it (a name or a path)."""
    up = running(tool, config, instances)
    _save_overrides(tool, config, overrides)
    for n in range(1, instances + 1):
        if n in up:
            continue
        logfile = paths.log_path(tool, config, n)
        env = dict(os.environ, SARRA_INSTANCE=str(n),
                   **{OVERRIDES_ENV: json.dumps(overrides), LOG_ENV: logfile})
        with open(logfile, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "sarra.cli", tool,
                                     "foreground", config_arg], stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        with open(pid_file(tool, config, n), "w") as f:
            f.write(f"{proc.pid}\n")
        print(f"{tool}/{config} instance {n} started (pid {proc.pid}, log {logfile})")
    return 0


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


def stop(tool: str, config: str, instances: int, timeout: float = 10.0) -> int:
    up = running(tool, config, max(instances, 32))
    for pid in up.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in up.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for n, pid in up.items():
        if _alive(pid):
            log.warning("%s/%s instance %d did not stop: killing it", tool, config, n)
            os.kill(pid, signal.SIGKILL)
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


def describe(tool: str, config: str, instances: int) -> dict:
    """State of a configuration: running/partial/stopped, instances up, and
    the rates its instances last wrote in their metrics files."""
    up = running(tool, config, instances)
    state = "running" if len(up) == instances else "partial" if up else "stopped"
    msgs = nbytes = retry = 0.0
    for n, pid in up.items():
        m = read_metrics(paths.state_path(tool, config, f"metrics.{n:02d}.json"))
        if m and m.get("pid") == pid and time.time() - m.get("time", 0) < 60:
            msgs += m.get("messages_per_s", 0)
            nbytes += m.get("bytes_per_s", 0)
            retry += m.get("retry_queue", 0)
    return {"tool": tool, "config": config, "state": state, "up": len(up),
            "instances": instances, "messages_per_s": msgs, "bytes_per_s": nbytes,
            "retry_queue": int(retry)}


def status_line(d: dict) -> str:
    line = f"{d['tool']}/{d['config']}: {d['state']} ({d['up']}/{d['instances']} instances)"
    if d["up"]:
        line += (f", {d['messages_per_s']:.1f} msgs/s, {d['bytes_per_s'] / 1e6:.2f} MB/s, "
                 f"retry queue {d['retry_queue']}")
    return line


def status(tool: str, config: str, instances: int) -> int:
    d = describe(tool, config, instances)
    print(status_line(d))
    return 0 if d["state"] == "running" else 1


def sanity(tool: str, config: str, config_arg: str, instances: int) -> int:
    """Restart the dead instances of a configuration that was started (it
    has pid files) and not stopped. Returns how many were started."""
    if not pid_files(tool, config):
        return 0
    up = running(tool, config, instances)
    if len(up) == instances:
        return 0
    log.warning("%s/%s: %d of %d instances running: starting the others", tool, config,
                len(up), instances)
    start(tool, config, config_arg, instances, _saved_overrides(tool, config))
    return instances - len(up)


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
