"""tools/demo.py, what ``bash tools/demo.sh`` runs once the machine is set up
(README.md, "Try it on a new Debian machine"; the guide runner skips that
block), run as it is, with a small tree: the real RabbitMQ on 127.0.0.1:5672,
its own nginx, a dd_subscribe daemon, dd_post. Its exit status and its one
summary line must say that every file arrived, byte for byte, with one
201 log message each.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import kill_processes_with_env
from tests.integration.flowkit import exchanges

DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo.py"
DAYS, NODES, PER_NODE = 1, 2, 3
FILES = 2 * DAYS * NODES * PER_NODE       # results-A and results-B
SUMMARY = re.compile(r"^demo: (OK|FAILED): .*$", re.M)
OK = re.compile(rf"demo: OK: {FILES}/{FILES} files mirrored over HTTP and byte-identical, "
                rf"{FILES} log messages 201 \(other codes: none\), "
                r"\d+\.\d+s from first post to last log message")


def test_demo_mirrors_a_small_tree_and_says_so_in_one_line(amqp_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SARRA_")}
    env["TMPDIR"] = str(tmp_path)          # the demo's directory, kept when it fails
    proc = subprocess.Popen([sys.executable, str(DEMO), "--days", str(DAYS),
                             "--nodes", str(NODES), "--per-node", str(PER_NODE)],
                            env=env, cwd=tmp_path, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"tools/demo.py still running after 60 s:\n{out}")
    finally:
        # what the demo leaves behind: its exchanges (named after its pid) and,
        # when it failed, a daemon of its own state directory
        exchanges(f"xdemo_{proc.pid}", f"xdemo_log_{proc.pid}", delete=True)
        for state in tmp_path.glob("sarra-demo-*/state"):
            kill_processes_with_env("SARRA_STATE_DIR", str(state))
        for pid_file in tmp_path.glob("sarra-demo-*/**/nginx.pid"):    # its web server
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)  # and workers
            except (OSError, ValueError, IndexError):
                pass
    assert proc.returncode == 0, f"tools/demo.py exited {proc.returncode}:\n{out}"
    summaries = SUMMARY.findall(out)
    assert len(summaries) == 1, f"not one summary line:\n{out}"
    assert OK.search(out), f"the summary line says otherwise:\n{out}"
    assert not list(tmp_path.glob("sarra-demo-*")), "the demo kept its directory"
