"""sarra.service without a broker: pid files and process identity (pid and
start time), zombies, the command instances run with, and start waiting for
the instances it launched (real processes standing in for instances)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sarra import service

REPO = Path(__file__).resolve().parents[2]
SLEEP = "import time; time.sleep(60)"


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def spawn():
    """Popen(argv) killed and reaped at teardown."""
    procs = []

    def start(argv, **kw):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def like_an_instance(spawn, tool="subscribe", config="obs"):
    """A process whose command line is that of an instance of tool/config."""
    proc = spawn([sys.executable, "-c", SLEEP, "sarra.cli", tool, "foreground", config])
    deadline = time.monotonic() + 10
    while "sarra.cli" not in psutil.Process(proc.pid).cmdline():
        assert time.monotonic() < deadline, "the child's command line never showed"
        time.sleep(0.02)
    return proc


def test_pid_file_holds_the_pid_and_the_start_time(state):
    path = service.pid_file("subscribe", "obs", 1)
    service.write_pid_file(path, 4242, 1764750000.123)
    assert Path(path).read_text() == "4242 1764750000.12\n"
    assert service.read_pid_file(path) == (4242, 1764750000.12)
    Path(path).write_text("4242\n")                          # an older version's
    assert service.read_pid_file(path) == (4242, None)
    for junk in ("", "x 1", "0 1.0", "-3"):
        Path(path).write_text(junk)
        assert service.read_pid_file(path) is None, junk
    os.unlink(path)
    assert service.read_pid_file(path) is None


def test_an_instance_is_its_pid_and_its_start_time(state, spawn):
    proc = like_an_instance(spawn)
    created = psutil.Process(proc.pid).create_time()
    path = service.pid_file("subscribe", "obs", 1)
    service.write_pid_file(path, proc.pid, created)
    assert service.alive("subscribe", "obs", 1) == proc.pid
    assert service.running("subscribe", "obs", 2) == {1: proc.pid}
    # the same pid, but a process started at another time: the pid was
    # reused (the instance died, another process got its number)
    service.write_pid_file(path, proc.pid, created - 3600)
    assert service.alive("subscribe", "obs", 1) is None
    service.write_pid_file(path, proc.pid, created + 5)
    assert service.alive("subscribe", "obs", 1) is None
    # the right start time, but not that configuration's command line
    service.write_pid_file(path, proc.pid, created)
    assert service.alive("subscribe", "other", 1) is None
    assert service.alive("watch", "obs", 1) is None


def test_a_pid_reused_by_another_program_is_not_an_instance(state, spawn):
    other = spawn([sys.executable, "-c", SLEEP])
    path = service.pid_file("subscribe", "obs", 1)
    service.write_pid_file(path, other.pid, psutil.Process(other.pid).create_time())
    assert service.alive("subscribe", "obs", 1) is None
    Path(path).write_text(f"{other.pid}\n")       # old pid file: the command line decides
    assert service.alive("subscribe", "obs", 1) is None
    mine = like_an_instance(spawn)
    Path(path).write_text(f"{mine.pid}\n")
    assert service.alive("subscribe", "obs", 1) == mine.pid


def test_a_zombie_is_not_running(state, spawn):
    proc = spawn([sys.executable, "-c", "pass", "sarra.cli", "subscribe", "foreground",
                  "obs"])
    created = psutil.Process(proc.pid).create_time()
    deadline = time.monotonic() + 10
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:   # exited, not reaped
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.02)
    service.write_pid_file(service.pid_file("subscribe", "obs", 1), proc.pid, created)
    assert service.alive("subscribe", "obs", 1) is None


def test_status_shows_memory_and_cpu_of_the_instances(state, spawn):
    busy = spawn([sys.executable, "-c", "import time\nt = time.time() + 60\n"
                  "while time.time() < t: pass", "sarra.cli", "subscribe", "foreground",
                  "obs"])
    service.write_pid_file(service.pid_file("subscribe", "obs", 1), busy.pid,
                           psutil.Process(busy.pid).create_time())
    deadline = time.monotonic() + 20
    while sum(psutil.Process(busy.pid).cpu_times()[:2]) < 0.3:
        assert time.monotonic() < deadline, "the busy child got no CPU"
        time.sleep(0.05)
    d = service.describe("subscribe", "obs", 2)
    assert (d["state"], d["up"], d["pids"]) == ("partial", 1, {1: busy.pid})
    assert d["rss_bytes"] > 1_000_000                      # a Python interpreter
    assert d["cpu_seconds"] >= 0.3 and 1 < d["cpu_percent"] <= 110   # at most one core
    line = service.status_line(d)
    assert line == ("subscribe/obs: partial (1/2 instances), health dead (1 of 2 instances "
                    "not running), 0.0 msgs/s, 0.00 MB/s, "
                    f"retry queue 0, memory {d['rss_bytes'] / 1e6:.1f} MB, "
                    f"CPU {d['cpu_percent']:.1f}%"), line
    assert service.status_line(service.describe("subscribe", "none", 1)) == \
        "subscribe/none: stopped (0/1 instances)"


# -- the command of an instance ---------------------------------------------------

@pytest.fixture
def shadowing(tmp_path):
    """A directory holding a folder named 'sarra' (an empty package)."""
    d = tmp_path / "work"
    (d / "sarra").mkdir(parents=True)
    (d / "sarra" / "__init__.py").write_text("")
    return d


def _version_from(argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_no_directory_shadows_the_package_of_an_instance(shadowing):
    head = service.instance_argv("subscribe", "obs")[:-3]          # without the arguments
    assert head[:2] == [sys.executable, "-P"]
    res = _version_from(head + ["subscribe", "--version"], shadowing)
    assert res.returncode == 0 and res.stdout.startswith("dd_subscribe (sarra) "), res
    # what -P prevents: `python -m sarra.cli` imports ./sarra from there
    plain = _version_from([sys.executable, "-m", "sarra.cli", "subscribe", "--version"],
                          shadowing)
    assert plain.returncode != 0 and str(shadowing / "sarra") in plain.stderr, plain


def test_the_command_for_python_before_3_11_is_not_shadowed_either(shadowing):
    res = _version_from([sys.executable, "-c", service._SAFE_MAIN, "subscribe", "--version"],
                        shadowing)
    assert res.returncode == 0 and res.stdout.startswith("dd_subscribe (sarra) "), res


def test_an_empty_pythonpath_entry_does_not_reach_an_instance(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{os.pathsep}/opt/x{os.pathsep}{os.pathsep}")
    env = service.instance_env(2, [("broker", "amqp://h/")], "/tmp/x.log")
    assert env["PYTHONPATH"] == "/opt/x"
    assert (env["SARRA_INSTANCE"], env[service.LOG_ENV]) == ("2", "/tmp/x.log")
    assert json.loads(env[service.OVERRIDES_ENV]) == [["broker", "amqp://h/"]]
    monkeypatch.setenv("PYTHONPATH", os.pathsep)
    assert "PYTHONPATH" not in service.instance_env(1, [], "/tmp/x.log")


# -- start: launch, then wait for every instance at once ---------------------------

# stand-ins for instances, given the metrics file they would write
REPORTS = ("import json, os, sys, time\ntime.sleep(0.3)\n"
           "json.dump({'pid': os.getpid(), 'time': time.time(), 'started': time.time()},"
           " open(sys.argv[1], 'w'))\ntime.sleep(60)")
DIES = "import sys\nprint('connecting...', flush=True)\nprint('boom: login refused')\nsys.exit(3)"


# an instance that reports: the command launch runs, instead of sarra.cli's
FAKE = ("import json, os, sys, time\ntime.sleep(0.3)\n"
        "n = int(os.environ['SARRA_INSTANCE'])\n"
        "json.dump({'pid': os.getpid(), 'time': time.time(), 'started': time.time()},"
        " open(os.path.join(sys.argv[1], f'metrics.{n:02d}.json'), 'w'))\ntime.sleep(60)")


@pytest.fixture
def launched():
    """What a test launched, killed at teardown."""
    out = []
    yield out
    for inst in out:
        if inst.proc.poll() is None:
            inst.proc.kill()
        inst.proc.wait(10)


def _launch(launched, scripts, tool="subscribe", config="obs"):
    items = []
    for n, script in scripts.items():
        log = service.paths.log_path(tool, config, n)
        metrics = service.paths.state_path(tool, config, f"metrics.{n:02d}.json")
        with open(log, "ab") as out:
            st = os.fstat(out.fileno())
            proc = subprocess.Popen([sys.executable, "-c", script, metrics], stdout=out,
                                    stderr=out, stdin=subprocess.DEVNULL)
        created = psutil.Process(proc.pid).create_time()
        items.append(service.Launched(tool, config, n, proc, created, log,
                                      (st.st_ino, st.st_size)))
    launched += items
    return items


def test_start_waits_until_each_instance_reports(state, launched, capsys):
    started = time.monotonic()
    rc = service.wait_started(_launch(launched, {1: REPORTS, 2: REPORTS}), timeout=20)
    assert rc == 0 and time.monotonic() - started < 10
    out = capsys.readouterr().out
    for inst in launched:
        assert f"subscribe/obs instance {inst.n} started (pid {inst.proc.pid}, log " \
               f"{inst.logfile})\n" in out
        assert inst.proc.poll() is None
    assert "not reported" not in out


def test_a_metrics_file_of_an_earlier_instance_is_no_report(state, launched, capsys):
    metrics = service.paths.state_path("subscribe", "obs", "metrics.01.json")
    Path(metrics).write_text(json.dumps({"pid": 1, "time": time.time(), "started": 0}))
    inst, = _launch(launched, {1: SLEEP})
    Path(metrics).write_text(json.dumps({"pid": inst.proc.pid, "time": time.time() - 3600}))
    assert not inst.reported()                 # its pid, written long before it started
    Path(metrics).write_text(json.dumps({"pid": inst.proc.pid, "time": time.time()}))
    assert inst.reported()


def test_start_fails_when_an_instance_dies_and_shows_its_log(state, launched, capsys):
    log = Path(service.paths.log_path("subscribe", "obs", 2))
    log.write_text("an earlier run's last words\n")
    started = time.monotonic()
    rc = service.wait_started(_launch(launched, {1: REPORTS, 2: DIES}), timeout=20)
    assert rc == 1 and time.monotonic() - started < 10
    out, err = capsys.readouterr()
    assert "subscribe/obs instance 1 started (pid" in out
    dead = launched[1]
    assert f"subscribe/obs instance 2 died at start (exit status 3, pid {dead.proc.pid}, " \
           f"log {log}); its last lines:\n    connecting...\n    boom: login refused\n" in err
    assert "earlier run" not in err             # only what this instance wrote


def test_an_instance_that_does_not_report_is_started_but_said_silent(state, launched, capsys):
    started = time.monotonic()
    rc = service.wait_started(_launch(launched, {1: SLEEP, 2: SLEEP, 3: SLEEP}), timeout=1.5)
    took = time.monotonic() - started
    assert rc == 0
    assert 1.5 <= took < 3, f"{took:.1f}s: the instances are waited for at once, not in turn"
    out = capsys.readouterr().out
    for n in (1, 2, 3):
        assert f"subscribe/obs instance {n} started (pid " in out
    assert out.count("but has not reported after 1.5s") == 3


def test_launch_writes_pid_files_that_identify_each_instance(state, monkeypatch, launched,
                                                             capsys):
    folder = service.paths.state_path("subscribe", "obs")
    monkeypatch.setattr(service, "instance_argv", lambda tool, config_arg: [
        sys.executable, "-c", FAKE, folder, "sarra.cli", tool, "foreground", config_arg])
    items = service.launch("subscribe", "obs", "obs", 2, [("broker", "amqp://u:pw@h/")])
    launched += items
    assert [i.n for i in items] == [1, 2]
    for inst in items:
        pid, created = service.read_pid_file(service.pid_file("subscribe", "obs", inst.n))
        assert pid == inst.proc.pid
        assert abs(created - psutil.Process(pid).create_time()) < 0.02
    assert service.wait_started(items, timeout=20) == 0
    assert service.running("subscribe", "obs", 2) == {i.n: i.proc.pid for i in items}
    assert service.launch("subscribe", "obs", "obs", 2, []) == []     # both run: none more
    overrides = state / "subscribe" / "obs" / "overrides.json"
    assert overrides.stat().st_mode & 0o077 == 0
