"""Operating sarra: the operator's command over several configurations,
the sanity check, bandwidth limits across instances, retries through a
server outage and a restart, the scientist's config-less subscriber."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import run_tool, stop_process, tool_command, wait_for
from tests.integration.flowkit import (BROKER, assert_logs_clean, codes_by_relpath, declare,
                                       dd_post, files_under, qname, stop, sub_config, taps,
                                       wait_same_tree)

__all__ = ["taps"]


def sarra(*args, check: bool = True, timeout: float = 60):
    import subprocess

    from tests.helpers import tool_env
    res = subprocess.run(tool_command("sarra", *args), capture_output=True, text=True,
                         timeout=timeout, env=tool_env(), stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise AssertionError(f"sarra {' '.join(args)} exited {res.returncode}:\n"
                             f"{res.stdout}{res.stderr}")
    return res


def pids(sarra_home, tool: str, name: str) -> dict[int, int]:
    out = {}
    for f in (sarra_home.state_dir / tool / name).glob("*.pid"):
        out[int(f.stem.rsplit("_", 1)[1])] = int(f.read_text().split()[0])   # "PID START_TIME"
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_operator_starts_watches_restarts_and_stops_every_configuration(
        sarra_home, unique, taps, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ex = f"xop_{unique}"
    names = [f"op{i}_{unique}" for i in range(2)]
    for i, name in enumerate(names):
        sub_config(sarra_home, name, ex, tmp_path / f"dst{i}", f"xopr_{unique}",
                   extra="instances 2\n" if i == 0 else "")
    wname = f"opw_{unique}"
    sarra_home.write_config("watch", wname, (
        f"post_broker {BROKER}\npost_exchange {ex}\npost_base_dir {src}\n"
        f"post_base_url file:{src}/\npath {src}\n"))

    listed = sarra("list").stdout
    for name in names:
        assert f"subscribe/{name}:" in listed
    assert f"watch/{wname}:" in listed and "(2 instances)" in listed
    sarra("declare")                 # queues bound before anything is posted
    taps.queues.extend(qname(sarra_home, n) for n in names)
    sarra("start")
    wait_for(lambda: sarra("status", check=False).returncode == 0, timeout=30,
             what="every configuration running")
    status = sarra("status").stdout
    assert f"subscribe/{names[0]}: running (2/2 instances)" in status
    assert f"watch/{wname}: running (1/1 instances)" in status

    # the flow works through the daemons: the watcher posts, both subscribers get it
    log = sarra_home.state_dir / "log" / f"watch_{wname}_01.log"
    wait_for(lambda: log.exists() and "to announce" in log.read_text(), timeout=20,
             what="the watcher ready")
    (src / "f.dat").write_bytes(b"data" * 100)
    for i in range(2):
        wait_for(lambda i=i: (tmp_path / f"dst{i}" / "f.dat").exists(), timeout=20,
                 what=f"dst{i}/f.dat")

    # kill -9 one instance: status says partial, sanity brings it back
    victim = pids(sarra_home, "subscribe", names[0])[2]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not alive(victim), timeout=10, what="the victim dead")
    res = sarra("status", check=False)
    assert res.returncode == 1 and f"subscribe/{names[0]}: partial (1/2 instances)" in res.stdout
    sarra("sanity")
    assert pids(sarra_home, "subscribe", names[0])[2] != victim
    wait_for(lambda: sarra("status", check=False).returncode == 0, timeout=20,
             what="all running again")
    # metrics reach the status line
    wait_for(lambda: "msgs/s" in sarra("status", f"subscribe/{names[1]}").stdout, timeout=20,
             what="rates in the status")
    out = sarra("log", f"watch/{wname}", "--lines", "5").stdout
    assert f"watch_{wname}_01.log" in out and len(out.splitlines()) <= 6

    every = [p for n in names for p in pids(sarra_home, "subscribe", n).values()]
    every += list(pids(sarra_home, "watch", wname).values())
    sarra("stop")
    assert not [p for p in every if alive(p)], "processes left after stop"
    assert sarra("status", check=False).returncode == 1
    # a stopped configuration is not brought back by the sanity check
    sarra("sanity")
    assert all(not pids(sarra_home, "subscribe", n) for n in names)
    assert_logs_clean(*(sarra_home.state_dir / "log").glob("*.log"))


def test_operator_reports_a_bad_configuration_with_exit_2(sarra_home, unique):
    sarra_home.write_config("subscribe", f"bad_{unique}", "broker amqp://guest@127.0.0.1/\n"
                            "prefech 10\n")
    res = sarra("start", f"subscribe/bad_{unique}", check=False)
    assert res.returncode == 2
    assert f"bad_{unique}.conf:2" in res.stderr and "prefech" in res.stderr
    assert sarra("status", "subscribe/nonesuch", check=False).returncode == 2


@pytest.mark.parametrize("instances", [1, 2])
def test_byte_rate_max_holds_across_instances(sarra_home, unique, procs, tmp_path, instances):
    """30 MB in 6 files at byte_rate_max 5M: at least 5 s, at most 9 s,
    whether one instance does it all or two share it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(6):
        (src / f"part{i}.bin").write_bytes(os.urandom(5_000_000))
    ex, name = f"xbw_{unique}", f"bw_{unique}"
    sub_config(sarra_home, name, ex, dst, f"xbwr_{unique}",
               extra=f"byte_rate_max 5M\ninstances {instances}\nprefetch 1\n")
    declare(name)
    subs = [procs.start_tool("subscribe", "foreground", name, log=tmp_path / f"s{i}.log",
                             env={"SARRA_INSTANCE": str(i)}) for i in range(1, instances + 1)]
    time.sleep(1.0)
    t0 = time.monotonic()
    dd_post(ex, f"file:{src}/", src, src)
    wait_same_tree(src, dst, timeout=30)
    took = time.monotonic() - t0
    texts = [stop(p) for p in subs]
    assert 5.0 <= took <= 9.0, f"30 MB at 5 MiB/s took {took:.1f}s"
    if instances == 2:   # both worked, so the limit was shared, not per instance
        assert all("'201'" in t for t in texts), [t[-400:] for t in texts]


def test_server_outage_retries_survive_a_restart(sarra_home, unique, procs, taps, nginx,
                                                 tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02d}.dat").write_bytes(os.urandom(3000))
    server = nginx(src, workers=1)
    ex, xr, name = f"xrt_{unique}", f"xrtr_{unique}", f"rt_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra="attempts 1\nretry_delay 0.5\n")
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    server.stop()                                   # the data server is down
    first = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "s1.log")
    dd_post(ex, server.url, src, src)
    reports.wait(lambda ms: len(codes_by_relpath(ms)) == 20, 30, "a 499 for every file")
    assert {m.report.code for m in reports.messages} == {499}
    retry_file = sarra_home.state_dir / "subscribe" / name / "retry.00.jsonl"
    wait_for(lambda: retry_file.exists() and len(retry_file.read_text().splitlines()) == 20,
             timeout=10, what="20 entries in the retry queue")
    stop(first)                                     # the subscriber restarts
    assert files_under(dst) == []
    server.start_again()                            # the server comes back
    second = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "s2.log")
    wait_same_tree(src, dst, timeout=60, proc=second)
    reports.wait(lambda ms: sum(m.report.code == 201 for m in ms) == 20, 20, "20 × 201")
    wait_for(lambda: retry_file.read_text() == "", timeout=10, what="an empty retry queue")
    stop(second)


def test_config_less_subscriber_and_ctrl_c(sarra_home, unique, procs, taps, tmp_path):
    """A scientist's one-liner: options only, no configuration file; Ctrl-C
    ends it with a summary and leaves no partial file."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(30):
        (src / f"g{i:02d}.dat").write_bytes(os.urandom(2000))
    ex = f"xcl_{unique}"
    args = ["--broker", BROKER, "--exchange", ex, "--directory", str(dst), "--accept", ".*",
            "--report_back", "off", "--expire", "5m"]
    proc = procs.start_tool("subscribe", *args, "foreground", log=tmp_path / "cl.log")
    state = sarra_home.state_dir / "subscribe"
    wait_for(lambda: list(state.glob("adhoc-*/*.qname")), timeout=20, what="the queue")
    taps.queues.append(next(state.glob("adhoc-*/*.qname")).read_text().strip())
    time.sleep(1.0)
    dd_post(ex, f"file:{src}/", src, src)
    wait_for(lambda: len(files_under(dst)) == 30, timeout=20, what="30 files")
    rc = stop_process(proc, signal.SIGINT, timeout=20)
    text = proc.log.read_text()
    assert rc == 0, text[-2000:]
    assert "dd_subscribe: 30 files transferred" in text
    assert not [f for f in files_under(dst) if f.endswith(".tmp")]
    # the same one-liner again finds the same queue; another one gets its own
    again = run_tool("subscribe", *args, "declare")
    assert taps.queues[-1] in again.stdout
    other = run_tool("subscribe", *args[:-2], "--expire", "6m", "declare")
    assert taps.queues[-1] not in other.stdout
    taps.queues.append(other.stdout.split()[-1])
