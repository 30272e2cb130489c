"""Run the shell blocks of a markdown guide, in order, on sandboxed "machines".

A guide is read into an ordered list of steps:

- a fenced ```` ```sh ```` block is a command step, run with ``bash -e -o pipefail``;
- a fenced block (any language) preceded by ``<!-- guide: file PATH -->`` (on
  the line just before the fence, or with one blank line between) is the
  content of the file PATH, written when the step is reached (``~`` is the
  machine's home);
- ``<!-- guide: skip REASON -->`` before a ```` ```sh ```` block: the block is
  not run (a skip step, listed with its reason);
- ``<!-- guide: machine NAME -->`` anywhere: the steps below run on machine
  NAME (until the next such comment);
- every other block (output samples, configuration excerpts) is text.

HTML comments do not show when the markdown is rendered.

A ``Machine`` is a sandbox: its own HOME, its own root directory standing for
``/`` for the absolute paths the guide uses, a substitution list applied to
the text of its commands and files (host names and ports of the guide ->
127.0.0.1 and the test's ports; the guide's absolute paths -> under the
root), and a directory of shims first in PATH (``tests/guides/shims``:
sudo, apt-get, systemctl, rabbitmqctl, nginx, sysctl), which record each
call and do what they can of it in the sandbox (see each shim).

The shell state of a machine (exported variables, current directory) carries
from one of its steps to the next, as in one terminal.

    runner = GuideRunner(parse_guide(path, start="## Set up", stop="## Link"), machines)
    runner.run_until(runner.index("dd_log mine", after=...))
    wait_for(...)                                  # what a human would wait for
    result = runner.run_next()
    runner.run_to_end()
"""
from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from tests.helpers import REPO_ROOT, kill_processes_with_env, tail

SHIMS = Path(__file__).resolve().parent / "shims"
VENV_BIN = REPO_ROOT / ".venv" / "bin"

_FENCE = re.compile(r"^```(\S*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*guide:\s*(\w+)\s*(.*?)\s*-->\s*$")
_HEADING = re.compile(r"^#{1,6} ")


class GuideError(AssertionError):
    """A guide that cannot be parsed, or a step that failed."""


# --------------------------------------------------------------------------- parsing

@dataclass
class Step:
    index: int
    kind: str            # 'sh', 'file' or 'skip'
    text: str            # the block's text
    machine: str
    guide: Path
    line: int            # 1-based line of the opening fence
    section: str         # the heading above the block
    path: str = ""       # 'file': where to write it
    reason: str = ""     # 'skip': why it is not run

    def where(self) -> str:
        return f"{self.guide.name}:{self.line} ({self.section})"


def parse_guide(path: str | os.PathLike, start: str | None = None, stop: str | None = None,
                machine: str = "local") -> list[Step]:
    """The steps of the guide at ``path``; with ``start``/``stop``, only those
    from the heading line beginning with ``start`` up to (not including) the
    one beginning with ``stop``. ``machine`` is the machine before any
    ``machine`` comment."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    steps: list[Step] = []
    inside = start is None
    section = ""
    pending: tuple[str, str, int] | None = None    # (directive, argument, line number)
    i = 0
    while i < len(lines):
        line = lines[i]
        if _HEADING.match(line):
            if stop is not None and inside and line.startswith(stop):
                break
            if start is not None and line.startswith(start):
                inside = True
            section = line.lstrip("#").strip()
        fence = _FENCE.match(line)
        if fence:
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise GuideError(f"{path.name}:{i + 1}: block not closed")
            lang, text = fence.group(1), "\n".join(lines[i + 1:end]) + "\n"
            directive = None
            if pending is not None:
                gap = i - pending[2]          # 1: the line above; 2: one blank line between
                if gap == 1 or (gap == 2 and not lines[i - 1].strip()):
                    directive = pending
                else:
                    raise GuideError(f"{path.name}:{pending[2] + 1}: <!-- guide: {pending[0]} -->"
                                     " is not just above a block")
                pending = None
            if inside:
                where = dict(machine=machine, guide=path, line=i + 1, section=section)
                if directive and directive[0] == "file":
                    steps.append(Step(len(steps), "file", text, path=directive[1], **where))
                elif directive and directive[0] == "skip":
                    if lang != "sh":
                        raise GuideError(f"{path.name}:{i + 1}: skip before a non-sh block")
                    steps.append(Step(len(steps), "skip", text, reason=directive[1], **where))
                elif lang == "sh":
                    steps.append(Step(len(steps), "sh", text, **where))
            i = end + 1
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            name, arg = directive.group(1), directive.group(2)
            if name == "machine":
                if not arg:
                    raise GuideError(f"{path.name}:{i + 1}: machine without a name")
                machine = arg
            elif name in ("file", "skip"):
                if not arg:
                    raise GuideError(f"{path.name}:{i + 1}: {name} without an argument")
                pending = (name, arg, i)
            else:
                raise GuideError(f"{path.name}:{i + 1}: unknown guide directive '{name}'")
        i += 1
    if pending is not None:
        raise GuideError(f"{path.name}:{pending[2] + 1}: <!-- guide: {pending[0]} --> "
                         "not followed by a block")
    return steps


# --------------------------------------------------------------------------- machines

_NGINX_CONF = """\
# the private nginx of a guide's machine: Debian's layout, in the sandbox
{user}worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 128; }}
http {{
    default_type application/octet-stream;
    types {{ }}
    sendfile on;
    server_tokens off;
    access_log {state}/access.log;
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    include {root}/etc/nginx/conf.d/*.conf;
    include {root}/etc/nginx/sites-enabled/*;
}}
"""


def _find_program(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join(
        p for p in (os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/local/sbin").split(":")
        if p and Path(p).resolve() != SHIMS))


@dataclass
class Result:
    step: Step | None
    command: str          # as run (substituted)
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    interrupted: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Machine:
    """A sandboxed machine of a guide (see the module)."""

    def __init__(self, name: str, base: Path, *, paths: Sequence[str] = (),
                 subs: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                 cwd: Path | None = None, rabbit=None, nginx: bool = False,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.base = Path(base)
        self.home = self.base / "home"
        self.root = self.base / "root"
        self.state = self.base / "guide"        # shims, their records, the shell state
        self.cwd = Path(cwd) if cwd else self.home
        for d in (self.home, self.root, self.state / "bin"):
            d.mkdir(parents=True, exist_ok=True)
        subs = dict(subs)
        self.subs: dict[str, str] = {p: f"{self.root}{p}" for p in paths}
        self.subs.update(subs)
        self.used: set[str] = set()
        for shim in SHIMS.iterdir():
            target = self.state / "bin" / shim.name
            shutil.copyfile(shim, target)
            target.chmod(0o755)
        settings = {"GUIDE_ROOT": str(self.root), "GUIDE_NGINX": _find_program("nginx") or "",
                    "GUIDE_UNITS": str(REPO_ROOT / "debian")}      # the package's systemd units
        if rabbit is not None:
            node_env = rabbit.env()
            settings.update({k: v for k, v in node_env.items() if k.startswith("RABBITMQ_")
                             or k == "ERL_EPMD_ADDRESS"})
            settings["RABBITMQ_HOME_DIR"] = node_env["HOME"]
            settings["GUIDE_RABBITMQCTL"] = _rabbit_script("rabbitmqctl")
        (self.state / "shim.env").write_text(
            "".join(f"{k}={shlex.quote(v)}\n" for k, v in settings.items()), encoding="utf-8")
        if nginx:
            self._prepare_nginx()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SARRA_", "RABBITMQ_", "XDG_", "PYTEST_"))}
        system_path = os.environ.get("PATH", "/usr/bin:/bin")
        self.env.update({
            "HOME": str(self.home),
            "USER": getpass.getuser(), "LOGNAME": getpass.getuser(),
            "PATH": os.pathsep.join([str(self.state / "bin"), str(VENV_BIN), system_path,
                                     "/usr/sbin:/sbin"]),
            "GUIDE_SANDBOX": str(self.base),        # every process started here has it
            "PYTHONUNBUFFERED": "1",
        })
        self.env.update(env or {})

    def _prepare_nginx(self) -> None:
        """What installing Debian's nginx made: /etc/nginx/sites-available and
        sites-enabled (empty: no default site on port 80); the server itself is
        started by the systemctl shim."""
        for d in ("etc/nginx/sites-available", "etc/nginx/sites-enabled", "etc/nginx/conf.d"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        state = self.state / "nginx"
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (state / d).mkdir(parents=True, exist_ok=True)
        (state / "nginx.conf").write_text(_NGINX_CONF.format(
            user="user root;\n" if os.geteuid() == 0 else "", state=state, root=self.root),
            encoding="utf-8")

    # -- text ------------------------------------------------------------------

    def substitute(self, text: str) -> str:
        """The text with the machine's substitutions applied (in one pass)."""
        if not self.subs:
            return text
        keys = sorted(self.subs, key=len, reverse=True)
        # a path is replaced where it starts a word, not inside a URL or a longer path
        pattern = "|".join((r"(?<![\w.~/])" if k.startswith("/") else "") + re.escape(k)
                           for k in keys)
        def replace(m: re.Match) -> str:
            self.used.add(m.group(0))
            return self.subs[m.group(0)]
        return re.sub(pattern, replace, text)

    def unused_substitutions(self) -> list[str]:
        """The substitutions that never applied (a test out of step with its guide)."""
        return sorted(set(self.subs) - self.used)

    def unsubstitute(self, text: str) -> str:
        """The sandbox's directories written back as the guide's (for records)."""
        return text.replace(str(self.root), "").replace(str(self.home), "~")

    def path(self, guide_path: str) -> Path:
        """Where a path of the guide is on this machine."""
        if guide_path == "~" or guide_path.startswith("~/"):
            return self.home / guide_path[2:]
        if guide_path.startswith("/") and self.substitute(guide_path) != guide_path:
            return Path(self.substitute(guide_path))
        raise GuideError(f"{self.name}: {guide_path}: neither in the home nor under a mapped path")

    def write_file(self, guide_path: str, text: str) -> Path:
        target = self.path(guide_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.substitute(text), encoding="utf-8")
        return target

    def calls(self) -> list[str]:
        """What the shims recorded, one call per line, in the guide's paths."""
        log = self.state / "calls.log"
        if not log.exists():
            return []
        return [self.unsubstitute(line) for line in log.read_text(encoding="utf-8").splitlines()]

    # -- running ---------------------------------------------------------------

    def sh(self, command: str, *, timeout: float = 60,
           interrupt_when: Callable[[str], bool] | None = None, step: Step | None = None,
           substitute: bool = True) -> Result:
        """Run ``command`` (bash -e -o pipefail) on this machine, after the
        shell state its previous commands left. ``interrupt_when(output)`` is
        polled while it runs: when true, SIGINT goes to the whole process group,
        as Ctrl-C in a terminal would, once."""
        text = self.substitute(command) if substitute else command
        shell_state = self.state / "shell.env"
        script = (f"[ -f {shlex.quote(str(shell_state))} ] && . {shlex.quote(str(shell_state))}\n"
                  f"{text}\n"
                  "__guide_rc=$?\n"
                  f"{{ export -p; printf 'cd %q\\n' \"$PWD\"; }} > {shlex.quote(str(shell_state))}\n"
                  "exit $__guide_rc\n")
        out_path, err_path = self.state / "out.txt", self.state / "err.txt"
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script],
                                    cwd=self.cwd,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True)
        interrupted = False
        deadline = started + timeout
        try:
            while proc.poll() is None:
                if interrupt_when is not None and not interrupted:
                    so_far = out_path.read_text(errors="replace") + err_path.read_text(errors="replace")
                    if interrupt_when(so_far):
                        os.killpg(proc.pid, signal.SIGINT)
                        interrupted = True
                if time.monotonic() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
                    raise GuideError(f"{step.where() if step else ''} on {self.name}: still "
                                     f"running after {timeout}s:\n$ {text}\n"
                                     f"--- output\n{tail(out_path.read_text(errors='replace'))}\n"
                                     f"{tail(err_path.read_text(errors='replace'))}")
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        return Result(step, text, proc.returncode, out_path.read_text(errors="replace"),
                      err_path.read_text(errors="replace"), time.monotonic() - started,
                      interrupted)

    def stop_everything(self) -> list[int]:
        """Stop every process started on this machine: its nginx (by its pid
        file: nginx rewrites its environment), then whatever carries
        GUIDE_SANDBOX in its environment (the daemons). Returns their pids."""
        stopped = []
        pid_file = self.state / "nginx" / "nginx.pid"
        try:
            pid = int(pid_file.read_text().strip())
            if str(self.state).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
                raise ValueError("not this machine's nginx")
            os.kill(pid, signal.SIGTERM)            # fast shutdown, workers included
            stopped.append(pid)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        except (OSError, ValueError):
            pass
        return stopped + kill_processes_with_env("GUIDE_SANDBOX", str(self.base))


def _rabbit_script(name: str) -> str:
    for d in ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return _find_program(name) or name


# --------------------------------------------------------------------------- the runner

class GuideRunner:
    """Runs the steps of a guide in order on its machines (see the module)."""

    def __init__(self, steps: list[Step], machines: Mapping[str, Machine]) -> None:
        unknown = {s.machine for s in steps} - set(machines)
        if unknown:
            raise GuideError(f"steps on machines the test does not provide: {sorted(unknown)}")
        self.steps = steps
        self.machines = dict(machines)
        self.next = 0
        self.results: dict[int, Result] = {}

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(where, reason) of every block marked skip."""
        return [(s.where(), s.reason) for s in self.steps if s.kind == "skip"]

    def index(self, needle: str, kind: str = "sh", after: int = -1) -> int:
        """The index of the first step after ``after`` whose text (or file path)
        contains ``needle``."""
        for step in self.steps[after + 1:]:
            if step.kind == kind and (needle in step.text or needle == step.path):
                return step.index
        raise GuideError(f"no {kind} step containing {needle!r} after step {after}")

    def run_step(self, index: int, *, interrupt_when: Callable[[str], bool] | None = None,
                 timeout: float = 60, check: bool = True) -> Result | None:
        """Run one step (any step, even one already run); a failing command
        raises GuideError naming the guide's line, unless ``check`` is off."""
        step = self.steps[index]
        machine = self.machines[step.machine]
        if step.kind == "skip":
            return None
        if step.kind == "file":
            machine.write_file(step.path, step.text)
            return None
        result = machine.sh(step.text, timeout=timeout, interrupt_when=interrupt_when, step=step)
        self.results[index] = result
        if check and result.returncode != 0:
            raise GuideError(
                f"{step.where()} on machine {step.machine}: exited {result.returncode}"
                f"{' (interrupted)' if result.interrupted else ''}\n$ {result.command}"
                f"--- stdout\n{tail(result.stdout)}\n--- stderr\n{tail(result.stderr)}")
        return result

    def run_next(self, **kwargs) -> Result:
        """Write the files and pass the skipped blocks coming next, then run the
        next command step; its result."""
        while self.next < len(self.steps) and self.steps[self.next].kind != "sh":
            self.run_step(self.next)
            self.next += 1
        if self.next >= len(self.steps):
            raise GuideError("no command step left")
        self.next += 1
        return self.run_step(self.next - 1, **kwargs)

    def run_until(self, index: int) -> None:
        """Run, in order, every step before ``index`` not run yet."""
        while self.next < index:
            self.next += 1
            self.run_step(self.next - 1)

    def run_to_end(self) -> None:
        self.run_until(len(self.steps))

    def stop_everything(self) -> None:
        for machine in self.machines.values():
            machine.stop_everything()
