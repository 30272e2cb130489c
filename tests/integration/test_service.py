"""Daemons: start, status, stop of dd_subscribe and dd_watch instances,
command-line options reaching them without showing in any process list."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.helpers import AMQP_URL, run_tool, wait_for
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
    assert "running (2/2 instances)" in run_tool("subscribe", "status", name, check=False).stdout
    assert not [c for c in cmdlines() if "guest:guest" in c], "password visible in ps"

    (src / "a.txt").write_bytes(b"hello")
    sarra_home.add_credentials(AMQP_URL)            # dd_post finds it the usual way
    run_tool("post", "--post_broker", "amqp://guest@127.0.0.1/", "--post_exchange", ex,
             "--post_base_url", f"file:{src}/", "--post_base_dir", src, src / "a.txt")
    wait_for(lambda: (dst / "a.txt").exists() and (dst / "a.txt").read_bytes() == b"hello",
             timeout=20, what="the daemons to download the file")

    # an instance killed: the sanity check starts it again with the same options
    # (the broker URL with its password was only on the command line)
    pid2 = int((state / f"subscribe_{name}_02.pid").read_text())
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
