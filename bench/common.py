"""What the benchmarks share: a private sarra home, the tools as
subprocesses, a subscriber, peak RSS of a process."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BROKER = "amqp://guest@127.0.0.1:5672/"


def byte_code() -> None:
    """The package's byte code written once, as an installed sarra has it
    (pip and the .deb write it). Without it, where PYTHONDONTWRITEBYTECODE
    is set (this machine), every tool process of a run compiles the
    package from source again: about 0.14 s of each start."""
    import compileall
    compileall.compile_dir(str(ROOT / "sarra"), quiet=1)


byte_code()


def env_dirs(tmp: Path) -> dict:
    cfg, state = tmp / "config", tmp / "state"
    (cfg / "subscribe").mkdir(parents=True)
    state.mkdir()
    cred = cfg / "credentials.conf"
    cred.write_text("amqp://guest:guest@127.0.0.1:5672/\n")
    cred.chmod(0o600)
    os.environ.update(SARRA_CONFIG_DIR=str(cfg), SARRA_STATE_DIR=str(state))
    return {"config": cfg, "state": state}


def make_files(top: Path, n: int, size: int) -> None:
    block = os.urandom(size + 4096)
    for i in range(n):
        d = top / f"d{i % 20:02d}" / f"e{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.dat").write_bytes(block[i % 4096:i % 4096 + size])


def cli(*args, **kw) -> subprocess.CompletedProcess:
    """A sarra command; one that fails stops the benchmark with what it said."""
    res = subprocess.run([sys.executable, "-m", "sarra.cli", *args], cwd=ROOT,
                         capture_output=True, text=True, **kw)
    if res.returncode:
        raise SystemExit(f"{' '.join(args)} exited {res.returncode}: {res.stderr[-600:]}")
    return res


def count_files(top: Path) -> int:
    return sum(len([f for f in files if not f.endswith(".tmp")]) for _, _, files in os.walk(top))


def rss_mb(pid: int, now: bool = False) -> float:
    """A process's resident memory in MB: its peak (VmHWM), or now (VmRSS)."""
    field = "VmRSS:" if now else "VmHWM:"
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    return rss_mb(pid)


def declare_subscriber(name: str, exchange: str, dst: Path, extra: str = "") -> None:
    """Write a subscriber configuration and declare its (durable) queue."""
    conf = Path(os.environ["SARRA_CONFIG_DIR"]) / "subscribe" / f"{name}.conf"
    conf.write_text(f"broker {BROKER}\nexchange {exchange}\nsubtopic #\nmirror on\n"
                    f"directory {dst}\naccept .*\nexpire 10m\nprefetch 100\n{extra}")
    cli("subscribe", "declare", name)


def subscriber(name: str, exchange: str, dst: Path, log: Path, extra: str = "",
               wrap: list[str] = ()):
    """A ``dd_subscribe foreground`` process; ``wrap``: a command it runs
    under (strace...), or ``["--profile", FILE]`` (bench/profiled.py)."""
    declare_subscriber(name, exchange, dst, extra)
    out = open(log, "wb")
    if wrap[:1] == ["--profile"]:
        cmd = [sys.executable, str(ROOT / "bench" / "profiled.py"), wrap[1], "sarra.cli"]
    else:
        cmd = [*wrap, sys.executable, "-m", "sarra.cli"]
    return subprocess.Popen([*cmd, "subscribe", "foreground", name],
                            cwd=ROOT, stdout=out, stderr=out, start_new_session=True)


def wait_until(done, procs, what: str, poll: float = 0.005) -> None:
    """Poll ``done()``; stop the benchmark if one of ``procs`` dies meanwhile."""
    while not done():
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a process died while waiting for {what}: see its log")
        time.sleep(poll)


def stop_subscriber(proc, name: str) -> None:
    """SIGTERM the subscriber (its process group: under strace, the
    subscriber itself), wait for it, delete its queue and state."""
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    cli("subscribe", "cleanup", name)
