"""Helpers shared by the test suites (import with ``from tests.helpers import ...``).

Nothing here imports ``sarra``: the tools are run as subprocesses
(``python -m sarra.cli TOOL ...``) so the tests exercise the real command line.
Ports and processes (free_port, port_open, kill_process, stop_process, tail)
come from tools/proc.py, which the private servers of tools/ use too (tools/
never imports tests/).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from tools.proc import free_port, kill_process, port_open, stop_process, tail

REPO_ROOT = Path(__file__).resolve().parent.parent

AMQP_HOST = "127.0.0.1"
AMQP_PORT = 5672
AMQP_URL = f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/"

__all__ = [
    "AMQP_HOST", "AMQP_PORT", "AMQP_URL", "REPO_ROOT",
    "ToolError", "ProcessRegistry",
    "port_open", "free_port", "wait_for", "wait_port",
    "tool_command", "tool_env", "run_tool", "start_tool", "stop_process", "kill_process",
    "kill_processes_with_env", "make_tree", "compare_trees", "tail", "iter_lines",
]


# --------------------------------------------------------------------------- waiting

SETUP_HINT = "run `bash tools/setup.sh` (installs and starts RabbitMQ and nginx)"


def find_program(name: str) -> str | None:
    """A server's binary (nginx, rabbitmqctl...), also from the sbin directories."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``predicate()`` until it returns something truthy and return that value.

    Raises ``AssertionError("timed out after Ns waiting for <what>")`` on timeout.
    Exceptions raised by the predicate propagate (guard them in the predicate).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_port(host: str, port: int, timeout: float = 30, closed: bool = False) -> None:
    """Wait until host:port accepts connections (or refuses them, with closed=True)."""
    state = "closed" if closed else "open"
    wait_for(lambda: port_open(host, port, 0.5) != closed, timeout=timeout, interval=0.1,
             what=f"{host}:{port} to be {state}")


# --------------------------------------------------------------------------- processes

_STARTED: list[subprocess.Popen] = []  # every process started by start_tool / ProcessRegistry


class ToolError(AssertionError):
    """A tool run with check=True exited non-zero; the message carries its output."""

    def __init__(self, result: subprocess.CompletedProcess):
        self.result = result
        cmd = " ".join(str(a) for a in result.args)
        super().__init__(
            f"command exited {result.returncode}: {cmd}\n"
            f"--- stdout (tail) ---\n{tail(result.stdout or '')}\n"
            f"--- stderr (tail) ---\n{tail(result.stderr or '')}")


def tool_command(tool: str, *args: Any) -> list[str]:
    """The argv that runs one sarra tool: ``python -m sarra.cli TOOL ARGS...``."""
    return [sys.executable, "-m", "sarra.cli", tool, *(str(a) for a in args)]


def tool_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ (which holds SARRA_CONFIG_DIR / SARRA_STATE_DIR set by the
    ``sarra_home`` fixture) updated with ``env``, with the repo root first on
    PYTHONPATH so ``sarra`` imports even without an installed package."""
    merged = dict(os.environ)
    if env:
        merged.update(env)
    pp = merged.get("PYTHONPATH", "")
    merged["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pp if pp else "")
    merged.setdefault("PYTHONUNBUFFERED", "1")
    return merged


def run_tool(tool: str, *args: Any, env: Mapping[str, str] | None = None, timeout: float = 60,
             check: bool = True, input: str | None = None,
             cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m sarra.cli TOOL ARGS...`` to completion, capturing text output.

    ``env`` entries are added to (not substituted for) the current environment.
    With ``check=True`` a non-zero exit raises ToolError (an AssertionError
    showing the command, its exit code and the tails of stdout and stderr).
    """
    result = subprocess.run(tool_command(tool, *args), env=tool_env(env), timeout=timeout,
                            capture_output=True, text=True, input=input,
                            stdin=None if input is not None else subprocess.DEVNULL,
                            cwd=cwd)
    if check and result.returncode != 0:
        raise ToolError(result)
    return result


def _spawn(cmd: Sequence[str], log: str | os.PathLike, env: Mapping[str, str] | None,
           cwd: str | os.PathLike | None) -> subprocess.Popen:
    log_path = Path(log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=tool_env(env), cwd=cwd,
                                start_new_session=True)
    proc.log = log_path  # type: ignore[attr-defined]
    _STARTED.append(proc)
    return proc


def start_tool(tool: str, *args: Any, log: str | os.PathLike, env: Mapping[str, str] | None = None,
               cwd: str | os.PathLike | None = None,
               procs: "ProcessRegistry | None" = None) -> subprocess.Popen:
    """Start ``python -m sarra.cli TOOL ARGS...`` in the background (e.g. ARGS =
    ``foreground CONFIG``), stdout+stderr appended to ``log``, in its own session.

    The returned Popen has a ``.log`` attribute (Path). Every process started
    here is killed (SIGKILL to its process group) at the end of the test, by
    the ``procs`` fixture or the suite's autouse cleanup.
    """
    proc = _spawn(tool_command(tool, *args), log, env, cwd)
    if procs is not None:
        procs.append(proc)
    return proc


class ProcessRegistry(list):
    """A list of Popen objects killed (SIGKILL, whole process group) by ``kill_all``.

    The ``procs`` fixture yields one and calls kill_all at teardown.
    """

    def start_tool(self, tool: str, *args: Any, log: str | os.PathLike,
                   env: Mapping[str, str] | None = None,
                   cwd: str | os.PathLike | None = None) -> subprocess.Popen:
        """``start_tool`` registered here."""
        return start_tool(tool, *args, log=log, env=env, cwd=cwd, procs=self)

    def start(self, cmd: Sequence[Any], *, log: str | os.PathLike,
              env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike | None = None) -> subprocess.Popen:
        """Start any command (argv list) the same way, registered here."""
        proc = _spawn([str(c) for c in cmd], log, env, cwd)
        self.append(proc)
        return proc

    def kill_all(self) -> list[subprocess.Popen]:
        """SIGKILL every registered process still running; returns those that were."""
        leftovers = [p for p in self if p.poll() is None]
        for proc in self:
            kill_process(proc)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        return leftovers


def _kill_started() -> list[subprocess.Popen]:
    """Kill every process started through this module (used by the autouse cleanup)."""
    reg = ProcessRegistry(_STARTED)
    _STARTED.clear()
    return reg.kill_all()


def kill_processes_with_env(name: str, value: str) -> list[int]:
    """SIGKILL every process (Linux, readable /proc) whose environment has
    ``name=value``; catches daemons that detached from their parents (``start``).
    Returns the pids killed."""
    needle = f"{name}={value}".encode()
    killed = []
    me = os.getpid()
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed


# --------------------------------------------------------------------------- trees

_DIR_NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
_SPECIAL_FILES = [
    "with space/file with space.bin",
    "hash#dir/x#1.bin",
    "unicodé/ファイル-ü ñ.bin",
    "a b#c/ünï #code.bin",
]


def make_tree(root: str | os.PathLike, n_files: int, depth: int = 3, size: int = 4096,
              seed: int = 0) -> list[str]:
    """Create ``n_files`` files of exactly ``size`` random bytes under ``root``.

    Files sit at depths 0..``depth`` directories below root; the first few
    names (up to 4, when n_files allows) contain spaces, '#' and non-ASCII
    characters. Deterministic for a given seed. Returns the sorted relative
    paths ('/'-separated).
    """
    rng = random.Random(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rels: list[str] = []
    for i in range(n_files):
        if i < len(_SPECIAL_FILES) and depth >= 1:
            rel = _SPECIAL_FILES[i]
        else:
            levels = rng.randint(0, depth)
            dirs = [f"{rng.choice(_DIR_NAMES)}{rng.randint(0, 2)}" for _ in range(levels)]
            rel = "/".join([*dirs, f"f{seed}_{i:05d}.bin"])
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        rels.append(rel)
    return sorted(rels)


def _walk(root: Path) -> dict[str, str]:
    """relpath -> kind ('dir', 'file', 'link', 'other') for everything below root."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                found[rel] = "link"
            elif full.is_dir():
                found[rel] = "dir"
            elif full.is_file():
                found[rel] = "file"
            else:
                found[rel] = "other"
    return found


def _same_bytes(a: Path, b: Path, chunk: int = 1 << 20) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(chunk), fb.read(chunk)
            if ca != cb:
                return False
            if not ca:
                return True


def compare_trees(a: str | os.PathLike, b: str | os.PathLike) -> list[str]:
    """Differences between two trees; an empty list means identical.

    Compares every name (directories included, symlinks compared by target,
    not followed) and every regular file byte for byte. Entries look like
    ``"only in a: rel"``, ``"only in b: rel"``, ``"type differs: rel (file != dir)"``,
    ``"content differs: rel (4096 != 4095 bytes)"``, ``"link differs: rel (x != y)"``.
    A missing root counts as an empty tree.
    """
    a, b = Path(a), Path(b)
    ta = _walk(a) if a.is_dir() else {}
    tb = _walk(b) if b.is_dir() else {}
    diffs: list[str] = []
    for rel in sorted(ta.keys() | tb.keys()):
        if rel not in tb:
            diffs.append(f"only in a: {rel}")
        elif rel not in ta:
            diffs.append(f"only in b: {rel}")
        elif ta[rel] != tb[rel]:
            diffs.append(f"type differs: {rel} ({ta[rel]} != {tb[rel]})")
        elif ta[rel] == "link":
            la, lb = os.readlink(a / rel), os.readlink(b / rel)
            if la != lb:
                diffs.append(f"link differs: {rel} ({la} != {lb})")
        elif ta[rel] == "file" and not _same_bytes(a / rel, b / rel):
            sa, sb = (a / rel).stat().st_size, (b / rel).stat().st_size
            diffs.append(f"content differs: {rel} ({sa} != {sb} bytes)")
    return diffs


def iter_lines(path: str | os.PathLike) -> Iterable[str]:
    """Lines of a (log) file, or nothing when it does not exist yet."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from f
    except FileNotFoundError:
        return


_WIS2_VALIDATOR: list = []


def wis2_validator():
    """A jsonschema validator of the official WNM 1.1.0 schema (the copy in
    tests/vectors/wis2, its digest checked by tests/unit/test_wis2.py)."""
    if not _WIS2_VALIDATOR:
        import json

        import jsonschema
        path = Path(__file__).resolve().parent / "vectors" / "wis2" / \
            "wis2-notification-message-bundled.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        _WIS2_VALIDATOR.append(jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER))
    return _WIS2_VALIDATOR[0]
