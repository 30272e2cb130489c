"""A private OpenSSH server on a free loopback port (SFTP through
internal-sftp), key login only: its host key, a client key pair and the
authorized_keys are generated into its own directory. Used by the tests
(the ``sshd`` fixture) and the benchmarks.
"""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.proc import free_port, port_open, stop_process, tail


def find_sshd() -> str | None:
    for path in (shutil.which("sshd"), "/usr/sbin/sshd", "/sbin/sshd"):
        if path and os.path.exists(path):
            return path
    return None


@dataclass
class SshdServer:
    """A private sshd (SFTP: internal-sftp) on a 127.0.0.1 port; key login only."""

    host: str
    port: int
    user: str          # the user running the tests: the only one that can log in
    keyfile: Path      # private key accepted by the server (no passphrase)
    log: Path          # sshd's own log (-e)
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        """'sftp://USER@127.0.0.1:PORT' (append an absolute path: '/tmp/x/')."""
        return f"sftp://{self.user}@{self.host}:{self.port}"

    @property
    def credentials(self) -> str:
        """The credentials.conf line for this server (the key as ssh_keyfile)."""
        return f"{self.url}/ ssh_keyfile={self.keyfile}"

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)


_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {tmp}/ssh_host_ed25519_key
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {tmp}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel INFO
"""


def keygen(path: Path) -> None:
    """An ed25519 key pair without passphrase at ``path`` (and path.pub)."""
    res = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sarra-test",
                          "-f", str(path)], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"ssh-keygen failed: {res.stderr}")


def start_sshd(tmp: Path, binary: str | None = None) -> SshdServer:
    """Start ``sshd -D -e`` with a private configuration in ``tmp``. Raises RuntimeError."""
    binary = binary or find_sshd()
    if binary is None or shutil.which("ssh-keygen") is None:
        raise RuntimeError("sshd or ssh-keygen not found: run `bash tools/setup.sh` "
                           "(openssh-server)")
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    keygen(tmp / "ssh_host_ed25519_key")
    keygen(tmp / "client_key")
    shutil.copy(tmp / "client_key.pub", tmp / "authorized_keys")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privilege separation dir
    log = tmp / "sshd.log"
    for _attempt in range(3):        # free_port may lose a race
        port = free_port()
        conf = tmp / "sshd_config"
        conf.write_text(_SSHD_CONFIG.format(port=port, tmp=tmp), encoding="utf-8")
        with open(log, "ab") as out:
            proc = subprocess.Popen([binary, "-D", "-e", "-f", str(conf)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        deadline = time.monotonic() + 15
        while proc.poll() is None and not port_open("127.0.0.1", port, 0.5):
            if time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError(f"sshd did not answer on 127.0.0.1:{port}")
            time.sleep(0.05)
        if proc.poll() is None:
            return SshdServer("127.0.0.1", port, getpass.getuser(), tmp / "client_key", log,
                              proc)
    raise RuntimeError(f"sshd did not start:\n{tail(log.read_text(errors='replace'))}")
