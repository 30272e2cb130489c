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


def running(tool: str, config: str, instances: int) -> dict[int, int]:
    out = {}
    for n in range(1, max(instances, 1) + 1):
        pid = _read_pid(pid_file(tool, config, n))
        if pid and _alive(pid):
            out[n] = pid
    return out


OVERRIDES_ENV = "SARRA_OVERRIDES"


def start(tool: str, config: str, config_arg: str, instances: int,
          overrides: list[tuple[str, str]]) -> int:
    """Start the instances not running. Command-line options reach them in
    the environment (readable only by this user), never in their argv,
    which every local user can read: a URL there may hold a password.
    ``config`` names the pid and log files; ``config_arg`` is what the
    instances are given to find it (a name or a path)."""
    up = running(tool, config, instances)
    for n in range(1, instances + 1):
        if n in up:
            continue
        logfile = paths.log_path(tool, config, n)
        env = dict(os.environ, SARRA_INSTANCE=str(n),
                   **{OVERRIDES_ENV: json.dumps(overrides)})
        with open(logfile, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "sarra.cli", tool,
                                     "foreground", config_arg], stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        with open(pid_file(tool, config, n), "w") as f:
            f.write(f"{proc.pid}\n")
        print(f"{tool}/{config} instance {n} started (pid {proc.pid}, log {logfile})")
    return 0


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


def status(tool: str, config: str, instances: int) -> int:
    up = running(tool, config, instances)
    state = "running" if len(up) == instances else "partial" if up else "stopped"
    print(f"{tool}/{config}: {state} ({len(up)}/{instances} instances)")
    return 0 if state == "running" else 1
