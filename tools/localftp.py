"""A private vsftpd on a free loopback port, plain FTP or FTPS (explicit
TLS, a certificate signed by a test CA made here with openssl). Used by the
tests and the benchmarks.

vsftpd checks local users' passwords through PAM against the system's
accounts, which a test must not touch; so the server takes the anonymous
login only, and only with the passwords listed in its own file
(``secure_email_list_enable``): ``anonymous`` with a wrong password is
refused (530) as a bad password is. Anonymous sessions run as the system's
``ftp`` user, chrooted into ``root`` (which must stay unwritable by it,
vsftpd refuses a writable chroot): ``writable(path)`` makes a directory of
the tree the ftp user may upload, rename and delete in. vsftpd does not
offer MLSD (only LIST) and refuses SITE CHMOD to anonymous sessions. ASCII
mode converts line ends, as on many servers: a client that leaves a
connection in ASCII mode corrupts the binary files it then fetches.
Runs as root (vsftpd's own requirement, for the chroot).
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.proc import free_port, port_open, stop_process, tail
from tools.testca import make_test_ca

FTP_USER = "ftp"          # the system user vsftpd runs anonymous sessions as
PASV_SPAN = 40            # passive ports per server


def find_vsftpd() -> str | None:
    for path in (shutil.which("vsftpd"), "/usr/sbin/vsftpd", "/sbin/vsftpd"):
        if path and os.path.exists(path):
            return path
    return None


_CONF = """\
listen=YES
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_root={root}
ftp_username={ftp_user}
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
secure_email_list_enable=YES
email_password_file={tmp}/passwords
secure_chroot_dir={tmp}/empty
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port={pasv_min}
pasv_max_port={pasv_max}
vsftpd_log_file={tmp}/vsftpd.log
xferlog_enable=YES
log_ftp_protocol=YES
seccomp_sandbox=NO
tcp_wrappers=NO
max_clients=200
max_per_ip=200
idle_session_timeout=600
ascii_download_enable=YES
ascii_upload_enable=YES
{tls}"""

_TLS = """\
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
rsa_cert_file={tmp}/server.crt
rsa_private_key_file={tmp}/server.key
ssl_ciphers=HIGH
"""


@dataclass
class FtpServer:
    """One private vsftpd serving ``root`` (chrooted: URL paths start there)."""

    scheme: str            # 'ftp' or 'ftps'
    port: int
    root: Path
    user: str              # 'anonymous'
    password: str          # the one password accepted
    ca_file: Path | None   # the test CA's certificate (ftps)
    log: Path
    proc: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        """'ftp://anonymous@127.0.0.1:PORT/' (no password: credentials.conf has it)."""
        return f"{self.scheme}://{self.user}@127.0.0.1:{self.port}/"

    @property
    def credentials(self) -> str:
        """The credentials.conf line for this server (with ca_file for ftps)."""
        line = f"{self.scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/"
        return line + (f" ca_file={self.ca_file}" if self.ca_file else "")

    def writable(self, path: Path) -> Path:
        """Make directory ``path`` (under root) writable by the ftp user; returns it."""
        path.mkdir(parents=True, exist_ok=True)
        ftp = pwd.getpwnam(FTP_USER)
        os.chown(path, ftp.pw_uid, ftp.pw_gid)
        return path

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)


def start_vsftpd(tmp: Path, root: Path, tls: bool = False,
                 binary: str | None = None) -> FtpServer:
    """Start vsftpd serving ``root`` (made, owned by root, mode 755); its
    files live in ``tmp``. FTPS (``tls``) requires TLS for the login and
    the data. Raises RuntimeError."""
    binary = binary or find_vsftpd()
    if binary is None:
        raise RuntimeError("vsftpd not found: run `bash tools/setup.sh`")
    if os.geteuid() != 0:
        raise RuntimeError("vsftpd runs as root (its chroot): run the FTP tests as root")
    tmp, root = Path(tmp), Path(root)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "empty").mkdir(exist_ok=True)
    os.chmod(tmp / "empty", 0o755)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    password = secrets.token_hex(8)
    (tmp / "passwords").write_text(password + "\n")
    ca_file = make_test_ca(tmp) if tls else None
    last = ""
    for _attempt in range(5):           # the free ports may be taken meanwhile
        port = free_port()
        pasv_min = 20000 + (port * 7 % 40000)
        conf = tmp / "vsftpd.conf"
        conf.write_text(_CONF.format(port=port, root=root, ftp_user=FTP_USER, tmp=tmp,
                                     pasv_min=pasv_min, pasv_max=pasv_min + PASV_SPAN - 1,
                                     tls=_TLS.format(tmp=tmp) if tls else ""))
        out = open(tmp / "vsftpd.stdout", "ab")
        proc = subprocess.Popen([binary, str(conf)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        server = FtpServer("ftps" if tls else "ftp", port, root, "anonymous", password,
                           ca_file, tmp / "vsftpd.log", proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            if port_open("127.0.0.1", port, 0.2):
                return server
            time.sleep(0.02)
        server.stop()
        last = tail((tmp / "vsftpd.stdout").read_text(errors="replace"))
        if "Address already in use" not in last and "could not bind" not in last:
            break
    raise RuntimeError(f"vsftpd did not start ({conf}):\n{last}")
