"""The ``exec`` hook: an external command run for each message.

``on_file exec COMMAND ARGS...`` runs COMMAND (no shell: the words are
split like a shell does, and nothing else is interpreted) with the message
in its environment (``message_env``). Exit status 0 is PASS; anything else
is SKIP at on_message and on_post, and a failure at on_part and on_file. A
command still running after the ``timeout`` option is killed (with the
processes it started) and counts as a failure. What it prints goes to the
log, a few lines of it.
"""
import logging
import os
import shutil
import signal
import subprocess

from ..errors import PluginError
from ..message import Message

log = logging.getLogger(__name__)

SHOWN_LINES = 5        # lines of a command's output copied to the log
SHOWN_WIDTH = 300      # characters of each
# variables we set: removed from the inherited environment when we have no value
OURS = ("SARRA_STAGE", "SARRA_FILE", "SARRA_RELPATH", "SARRA_BASE_URL", "SARRA_TOPIC",
        "SARRA_SUM", "SARRA_PARTS", "SARRA_SOURCE", "SARRA_SET", "SARRA_SET_FILES")


def message_env(stage: str, msg: Message) -> dict[str, str]:
    """The variables describing ``msg`` to a command run at ``stage``.

    SARRA_FILE (the local path) is there only when the message has one and
    the stage comes after the work (never at on_message); the others are
    always set, empty when the message lacks the header.
    """
    h = msg.headers
    env = {"SARRA_STAGE": stage, "SARRA_RELPATH": msg.relpath,
           "SARRA_BASE_URL": msg.base_url, "SARRA_TOPIC": msg.topic,
           "SARRA_SUM": h.get("sum", ""), "SARRA_PARTS": h.get("parts", ""),
           "SARRA_SOURCE": h.get("source", "")}
    local = msg.local_path
    if local and stage != "on_message":
        env["SARRA_FILE"] = local
    return env


def shown(output: str) -> list[str]:
    """The first lines of ``output`` as they go to the log."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    out = [ln if len(ln) <= SHOWN_WIDTH else ln[:SHOWN_WIDTH] + "..."
           for ln in lines[:SHOWN_LINES]]
    if len(lines) > SHOWN_LINES:
        out.append(f"... ({len(lines) - SHOWN_LINES} more lines)")
    return out


class Exec:
    """``exec COMMAND ARGS...``: see the module's docstring."""
    USAGE = "exec COMMAND [ARGS...]"

    def __init__(self, cfg, *argv: str):
        if not argv:
            raise ValueError("needs a command: exec COMMAND [ARGS...]")
        path = shutil.which(argv[0])
        if path is None:
            raise ValueError(f"command '{argv[0]}' not found (or not executable)")
        self.argv = [os.path.abspath(path), *argv[1:]]   # a daemon may change directory
        self.name = argv[0]
        self.timeout = float(getattr(cfg, "timeout", 0) or 0) or None

    def __repr__(self) -> str:
        return f"exec {' '.join(self.argv)}"

    def run(self, stage: str, msg: Message, extra: dict[str, str] | None = None) -> int:
        """Run the command about ``msg``; its exit status (negative: killed by
        that signal). PluginError when it cannot start or times out."""
        env = {k: v for k, v in os.environ.items() if k not in OURS}
        env.update(message_env(stage, msg))
        env.update(extra or {})
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except (OSError, ValueError) as exc:   # ValueError: a NUL byte in a name
            raise PluginError(f"cannot run {self.name}: {exc}") from exc
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:   # a descendant left the group, holding the pipe
                proc.wait()
                out = b""
            self._show(msg, out)
            raise PluginError(f"{self.name} still running after {self.timeout:g}s: killed") \
                from None
        self._show(msg, out)
        return proc.returncode

    def _show(self, msg: Message, out: bytes) -> None:
        for line in shown(out.decode("utf-8", "replace")):
            log.info("%s (%s): %s", self.name, msg.relpath, line)

    def failed(self, stage: str, msg: Message, extra: dict[str, str] | None = None) -> str | None:
        """Run; None when it exits 0, else why not."""
        rc = self.run(stage, msg, extra)
        if rc == 0:
            return None
        return f"{self.name} killed by signal {-rc}" if rc < 0 else f"{self.name} exited {rc}"

    # -- stages: a filter at on_message/on_post, a trigger after work
    def on_message(self, msg: Message) -> bool:
        return self._filter("on_message", msg)

    def on_post(self, msg: Message) -> bool:
        return self._filter("on_post", msg)

    def on_part(self, msg: Message) -> bool:
        return self._trigger("on_part", msg)

    def on_file(self, msg: Message) -> bool:
        return self._trigger("on_file", msg)

    def _filter(self, stage: str, msg: Message) -> bool:
        why = self.failed(stage, msg)
        if why is not None:
            log.debug("%s: %s: SKIP", msg.relpath, why)
        return why is None

    def _trigger(self, stage: str, msg: Message) -> bool:
        why = self.failed(stage, msg)
        if why is not None:
            raise PluginError(why)
        return True


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
