"""A test certificate authority made with openssl: its certificate, and a
server certificate for 127.0.0.1 and localhost signed by it. For the
private TLS servers of the tests (vsftpd's FTPS, nginx's HTTPS).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tools.proc import tail


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {tail(res.stderr)}")


def make_test_ca(tmp: Path) -> Path:
    """A test CA (ca.crt) and a server certificate for 127.0.0.1 and
    localhost signed by it (server.crt, server.key) in ``tmp``; returns ca.crt."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=sarra test CA", "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=tmp)
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                 "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
             cwd=tmp)
    os.chmod(tmp / "server.key", 0o600)
    return tmp / "ca.crt"
