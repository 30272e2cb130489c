"""A test certificate authority made with openssl: its certificate, and a
server certificate for 127.0.0.1 and localhost signed by it. For the
private TLS servers of the tests (RabbitMQ's amqps and management
listeners, nginx's HTTPS, vsftpd's FTPS).

    ca = make_ca(Path("/tmp/ca"))
    ca.ca_file, ca.cert, ca.key       # ca.crt, server.crt, server.key
    cert, key = ca.issue("other", ("other.example",))   # a name mismatch
    stranger = make_ca(Path("/tmp/ca2"))                # a CA nobody trusts

Keys are EC (P-256): quick to make, accepted by Erlang, nginx and Python.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.proc import tail

LOOPBACK = ("127.0.0.1", "localhost")


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {tail(res.stderr)}")


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class TestCA:
    """A CA's directory: ``ca.crt`` (what a client trusts), ``ca.key``, and
    the server certificate it signed for 127.0.0.1 and localhost."""

    __test__ = False        # not a pytest test class

    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def key(self) -> Path:
        return self.dir / "server.key"

    def issue(self, name: str, hosts: tuple[str, ...] = LOOPBACK) -> tuple[Path, Path]:
        """A server certificate and key (``name.crt``, ``name.key``) for
        ``hosts`` (IP addresses or DNS names), signed by this CA."""
        _openssl("req", *_EC, "-subj", f"/CN={hosts[0]}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=self.dir)
        alt = ",".join(("IP:" if h.replace(".", "").isdigit() or ":" in h else "DNS:") + h
                       for h in hosts)
        (self.dir / f"{name}.ext").write_text(f"subjectAltName={alt}\n"
                                              "extendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=self.dir)
        os.chmod(self.dir / f"{name}.key", 0o600)
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"


def make_ca(tmp: Path, subject: str = "sarra test CA") -> TestCA:
    """A new CA in ``tmp`` and its server certificate for 127.0.0.1 and localhost."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", *_EC, "-days", "2", "-subj", f"/CN={subject}",
             "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp)
    os.chmod(tmp / "ca.key", 0o600)
    ca = TestCA(tmp)
    ca.issue("server")
    return ca


def make_test_ca(tmp: Path) -> Path:
    """``make_ca(tmp)``; returns the path of its ca.crt (server.crt and
    server.key beside it)."""
    return make_ca(tmp).ca_file
