"""How a configuration checks the certificates of the TLS servers it talks to:
brokers (amqps, mqtts, wss), HTTPS (downloads, listings, RabbitMQ's
management API) and FTPS.

A certificate is verified, with its host name, against one CA file:

1. the ``ca_file=`` detail of the server's line in credentials.conf (per
   server: the line that holds its password, or a line of its own);
2. else the configuration's ``ca_file PATH`` option (every server of the
   configuration);
3. else the system's trusted CAs.

``tls_verify off`` (sr3: ``tlsRigour lax``) verifies nothing, for every
server of the configuration: ``TlsPolicy.warning`` is what each instance
logs at its start. TLS 1.2 is the oldest protocol version offered.

A certificate that does not verify is a refusal, not an outage: it is
reported once, with what to do (``untrusted``), and not retried.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError
from . import lazy

ssl = lazy.module("ssl")      # (a plain amqp:// or http:// command never loads it)

TLS_SCHEMES = ("amqps", "https", "ftps", "mqtts", "wss")


@dataclass(frozen=True)
class TlsPolicy:
    """The TLS settings of one configuration (see the module)."""

    verify: bool = True
    ca_file: str | None = None              # the ca_file option
    credentials: object = None              # config.credentials.Credentials: ca_file= details

    def ca_for(self, url: str) -> str | None:
        """The CA file ``url``'s certificate is verified against (None: the
        system's CAs)."""
        if self.credentials is not None:
            found = self.credentials.details(url).get("ca_file")
            if found:
                return os.path.expanduser(found)
        return os.path.expanduser(self.ca_file) if self.ca_file else None

    def context(self, url: str) -> ssl.SSLContext:
        """A client context for the server of ``url``: its certificate and
        host name checked (unless ``verify`` is off), TLS 1.2 or later.
        ConfigError when the CA file cannot be read."""
        ca = None if not self.verify else self.ca_for(url)
        try:
            ctx = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"ca_file {ca} (for {strip_url(url)}): cannot be read as a "
                              f"CA certificate: {exc}", option="ca_file") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def requests_verify(self, url: str) -> bool | str:
        """The ``verify`` argument of requests for ``url``."""
        if not self.verify:
            return False
        ca = self.ca_for(url)
        if ca is not None and not os.access(ca, os.R_OK):
            raise ConfigError(f"ca_file {ca} (for {strip_url(url)}): cannot be read",
                              option="ca_file")
        return ca or True

    def check(self, urls) -> None:
        """Raise ConfigError now (at start) when a CA file the TLS ones of
        ``urls`` would use cannot be read."""
        for url in urls:
            if url and is_tls(url):
                self.context(url)

    def warning(self, urls=()) -> str | None:
        """What an instance logs (WARNING) at its start when nothing is
        verified; None when certificates are verified."""
        if self.verify:
            return None
        tls = sorted({strip_url(u) for u in urls if u and is_tls(u)})
        servers = ", ".join(tls) if tls else "any TLS server it reaches"
        return (f"tls_verify off: the certificates and host names of {servers} (brokers, "
                f"https and ftps downloads, the management API) are NOT verified: anyone "
                f"on the way may pose as them; trust a private CA with ca_file instead")


def is_tls(url: str) -> bool:
    return url.split(":", 1)[0].lower() in TLS_SCHEMES


def strip_url(url: str) -> str:
    """scheme://host:port/ of ``url``: no user, no password, no path."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        host = parts.hostname or ""
    except ValueError:
        return "(a URL that does not parse)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}/"


def ssl_cause(exc: BaseException) -> BaseException:
    """The ssl error under the wrappers of requests and urllib3 (their
    ``args``, ``reason``, causes), else ``exc`` itself."""
    todo, seen = [exc], set()
    while todo:
        cause = todo.pop(0)
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError):
            return cause
        todo += [a for a in getattr(cause, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(cause, "reason", None)
        todo += [reason] if isinstance(reason, BaseException) else []
        todo += [cause.__cause__, cause.__context__]
    return exc


def untrusted(url: str, exc: ssl.SSLError, policy: "TlsPolicy | None" = None) -> str:
    """Why a server's certificate was refused, and what to do."""
    reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
    ca = policy.ca_for(url) if policy is not None else None
    against = f"the CA in {ca}" if ca else "the system's trusted CAs"
    return (f"{strip_url(url)}: the server's certificate does not verify against {against}: "
            f"{reason}. If the server is the right one, trust its CA: ca_file=/path/ca.crt "
            f"on its line in credentials.conf, or the option ca_file /path/ca.crt "
            f"(tls_verify off verifies nothing)")
