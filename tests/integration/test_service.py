"""Daemons: start, status, stop of dd_subscribe and dd_watch instances,
command-line options reaching them without showing in any process list;
start waiting for its instances (and failing when one dies), from any
directory."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import AMQP_URL, run_tool, tool_env, wait_for
from tests.integration.flowkit import assert_logs_clean, qname, queue_consumers, taps

__all__ = ["taps"]


def cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                pass
    return out


def test_start_status_stop_with_a_password_on_the_command_line(sarra_home, unique, taps,
                                                               tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    ex, name = f"xs_{unique}", f"svc_{unique}"
    sarra_home.credentials.write_text("")          # the password comes only from argv
    sarra_home.write_config("subscribe", name, (
        f"exchange {ex}\nexpire 5m\nmirror on\ndirectory {dst}\naccept .*\n"
        "report_back off\ninstances 2\n"))
    res = run_tool("subscribe", "--broker", AMQP_URL, "start", name, timeout=30)
    assert "instance 2 started" in res.stdout, res.stdout + res.stderr
    assert "guest:guest" not in res.stdout + res.stderr
    state = sarra_home.state_dir / "subscribe" / name
    wait_for(lambda: len(list(state.glob("*.qname"))) == 1, timeout=20, what="the queue name")
    taps.queues.append(qname(sarra_home, name))
    wait_for(lambda: queue_consumers(taps.queues[-1]) == 2, timeout=30, interval=0.2,
             what="both instances consuming")
    status = run_tool("subscribe", "status", name, check=False).stdout
    assert "running (2/2 instances)" in status and " MB, CPU " in status, status
    assert not [c for c in cmdlines() if "guest:guest" in c], "password visible in ps"

    (src / "a.txt").write_bytes(b"hello")
    sarra_home.add_credentials(AMQP_URL)            # dd_post finds it the usual way
    run_tool("post", "--post_broker", "amqp://guest@127.0.0.1/", "--post_exchange", ex,
             "--post_base_url", f"file:{src}/", "--post_base_dir", src, src / "a.txt")
    wait_for(lambda: (dst / "a.txt").exists() and (dst / "a.txt").read_bytes() == b"hello",
             timeout=20, what="the daemons to download the file")

    # an instance killed: the sanity check starts it again with the same options
    # (the broker URL with its password was only on the command line)
    pid2 = int((state / f"subscribe_{name}_02.pid").read_text().split()[0])
    os.kill(pid2, signal.SIGKILL)
    wait_for(lambda: "partial" in run_tool("subscribe", "status", name, check=False).stdout,
             timeout=10, what="the instance dead")
    run_tool("sarra", "sanity", f"subscribe/{name}", timeout=30)
    wait_for(lambda: queue_consumers(taps.queues[-1]) == 2, timeout=30, interval=0.2,
             what="two consumers again")
    assert (state / "overrides.json").stat().st_mode & 0o077 == 0
    res = run_tool("subscribe", "stop", name, timeout=30)
    assert "stopped (2 instances)" in res.stdout
    status = run_tool("subscribe", "status", name, check=False)
    assert status.returncode == 1 and "stopped (0/2" in status.stdout
    logs = sorted((sarra_home.state_dir / "log").glob(f"subscribe_{name}_*.log"))
    assert [p.name for p in logs] == [f"subscribe_{name}_01.log", f"subscribe_{name}_02.log"]
    assert_logs_clean(*logs)


def test_dd_watch_runs_as_a_daemon(sarra_home, unique, taps, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ex, name = f"xw_{unique}", f"wsvc_{unique}"
    posts = taps(ex, "v02.post.#")
    sarra_home.write_config("watch", name, (
        f"post_broker amqp://guest@127.0.0.1/\npost_exchange {ex}\n"
        f"post_base_dir {src}\npost_base_url file:{src}/\npath {src}\n"))
    run_tool("watch", "start", name, timeout=30)
    log = sarra_home.state_dir / "log" / f"watch_{name}_01.log"
    wait_for(lambda: log.exists() and "to announce" in log.read_text(), timeout=20,
             what="the watcher to start")
    (src / "f").write_bytes(b"data")
    posts.wait(lambda ms: [m.relpath for m in ms] == ["f"], 20, "the post of f")
    assert run_tool("watch", "status", name, check=False).returncode == 0
    run_tool("watch", "stop", name, timeout=30)
    assert run_tool("watch", "status", name, check=False).returncode == 1
    assert_logs_clean(log)


def pid_of(sarra_home, tool: str, name: str, n: int = 1) -> int:
    """The pid in an instance's pid file ("PID START_TIME")."""
    return int((sarra_home.state_dir / tool / name / f"{tool}_{name}_{n:02d}.pid")
               .read_text().split()[0])


def dd_subscribe(*args, cwd) -> subprocess.CompletedProcess:
    """dd_subscribe as installed (the console script next to this Python:
    not shadowed by the directory it runs in), from ``cwd``."""
    script = Path(sys.executable).with_name("dd_subscribe")
    argv = [str(script)] if script.exists() else [sys.executable, "-P", "-m", "sarra.cli",
                                                  "subscribe"]
    return subprocess.run(argv + [str(a) for a in args], cwd=cwd, env=tool_env(),
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_start_from_a_directory_holding_a_sarra_folder(sarra_home, unique, taps, tmp_path):
    """`python -m sarra.cli` would import ./sarra there: the instance would
    die at once while start said it started."""
    work = tmp_path / "work"
    (work / "sarra").mkdir(parents=True)
    (work / "sarra" / "__init__.py").write_text("")
    name = f"cwd_{unique}"
    sarra_home.write_config("subscribe", name, (
        f"broker amqp://guest@127.0.0.1/\nexchange xs_{unique}\nexpire 5m\n"
        f"directory {tmp_path / 'dst'}\naccept .*\nreport_back off\n"))
    res = dd_subscribe("start", name, cwd=work)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"subscribe/{name} instance 1 started (pid " in res.stdout, out
    assert "not reported" not in out, out            # it wrote its metrics: connected
    pid = pid_of(sarra_home, "subscribe", name)
    assert f"(pid {pid}," in res.stdout
    taps.queues.append(qname(sarra_home, name))
    log = sarra_home.state_dir / "log" / f"subscribe_{name}_01.log"
    wait_for(lambda: f"bound to xs_{unique}" in log.read_text(), timeout=10,
             what="the instance to bind its queue")
    assert queue_consumers(taps.queues[-1]) == 1
    os.kill(pid, 0)                                 # alive, and not a zombie:
    assert Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    assert Path(f"/proc/{pid}/cwd").resolve() == work.resolve()   # it runs from there
    assert "Error" not in log.read_text()
    res = dd_subscribe("status", name, cwd=work)
    assert res.returncode == 0 and "running (1/1 instances)" in res.stdout, res
    res = dd_subscribe("stop", name, cwd=work)
    assert "stopped (1 instances)" in res.stdout, res
    assert_logs_clean(log)


def test_start_fails_when_an_instance_dies_at_once(sarra_home, unique, tmp_path):
    """The broker refuses the login: the instance exits at once, after
    start's own checks passed; start says so, with its log's last lines."""
    name = f"die_{unique}"
    password = f"not-{unique}"
    sarra_home.write_config("subscribe", name, (
        f"exchange xs_{unique}\nexpire 5m\ndirectory {tmp_path / 'dst'}\naccept .*\n"
        "report_back off\ninstances 2\n"))
    started = time.monotonic()
    res = run_tool("subscribe", "--broker", f"amqp://guest:{password}@127.0.0.1/", "start",
                   name, check=False, timeout=60)
    took = time.monotonic() - started
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert took < 15, f"start took {took:.1f}s to see its instances die"
    for n in (1, 2):
        log = sarra_home.state_dir / "log" / f"subscribe_{name}_{n:02d}.log"
        assert (f"subscribe/{name} instance {n} died at start (exit status 1, pid "
                f"{pid_of(sarra_home, 'subscribe', name, n)}, log {log}); its last lines:"
                ) in res.stderr, out
    assert "login refused" in res.stderr and "ACCESS_REFUSED" in res.stderr, out
    assert "started (pid" not in res.stdout, out
    assert password not in out
    status = run_tool("subscribe", "status", name, check=False)
    assert status.returncode == 1 and f"subscribe/{name}: stopped (0/2 instances)" in \
        status.stdout
