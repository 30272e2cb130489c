"""Ports and processes, for the private servers of tools/ (nginx, RabbitMQ
nodes), the demo, the benchmarks and the tests (tests/helpers.py re-exports
these). Nothing here imports ``sarra`` or ``tests``.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess

__all__ = ["free_port", "port_open", "kill_process", "stop_process", "tail"]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller may lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def kill_process(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group of ``proc`` (started in its own session)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    """Ask ``proc`` to stop with ``sig`` (to the process only), wait up to
    ``timeout`` seconds, then SIGKILL its group. Returns the exit status
    (negative signal number when killed by a signal)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_process(proc, signal.SIGKILL)
            proc.wait(10)
    # children left in the session
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode
