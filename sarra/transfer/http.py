"""HTTP(S) download. Schemes: http, https. Capabilities: byte ranges
(``Range`` requests; the server must answer 206), streamed bodies, one
keep-alive Session per flow, remove (an HTTP DELETE, for the ``delete``
option). Requires: requests.

A GET, http or https, goes on a kept connection per server
(sarra/transfer/httpconn.py: far less work per small file than requests),
over https wrapped by the ssl context of the configuration's TlsPolicy
(one context per CA file, made once); requests does the rest:
redirections (never from https to plain http: refused), URLs that hold
credentials themselves, DELETE.

Proxies from the environment are ignored (``trust_env = False``): switches
talk to each other directly, and looking the variables up costs a third of
the per-file time. Credentials for a URL come from credentials.conf. HTTPS
certificates are verified as the configuration's TlsPolicy says
(sarra/tls.py: the ``ca_file=`` detail of the server's
credentials.conf line, else the ``ca_file`` option, else the system's CAs
(requests: its own bundle, certifi's); nothing with ``tls_verify off``),
with the server's host name; one that does not verify is not worth
retrying, and is reported the same whichever path met it (``untrusted``).
Downloads (and DELETE) only: RabbitMQ's management API (dd_audit) has its own client,
sarra/broker/management.py.
"""
import http.client
import logging
import re
import ssl
from base64 import b64encode
from urllib.parse import quote, urljoin

import requests
from urllib3.exceptions import ReadTimeoutError

from ..tls import TlsPolicy, ssl_cause, untrusted
from ..errors import TransferError
from .httpconn import Connections, TlsRefused

log = logging.getLogger(__name__)

# characters left as they are in the path of a request URL: the reserved
# ones a path may hold, and '%' (an escape already in the URL stays one)
_PATH_SAFE = "/:@!$&'()*+,;=~%"


_AS_IS = re.compile(r"[A-Za-z0-9_.~/:@!$&'()*+,;=%-]*")   # what quote() leaves as it is


def wire_url(url: str) -> str:
    """The URL as sent on the wire: message URLs are decoded (a relpath may
    hold spaces, '#', '?' or non-ASCII), so the path is percent-encoded here
    (a path of characters that stay as they are, the usual, is not looked
    at again)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if _AS_IS.fullmatch(path):
        return url
    return f"{scheme}{sep}{host}{slash}{quote(path, safe=_PATH_SAFE)}"


class Downgrade(requests.exceptions.InvalidURL):
    """A redirection from an https URL to a plain-http one."""


class _Session(requests.Session):
    """requests' Session, but a redirection never leaves https for plain
    http: the file would come unauthenticated, for anyone on the way to
    change (the verified server's word ends where its TLS does)."""

    def get_redirect_target(self, resp):
        target = super().get_redirect_target(resp)
        if target and resp.url[:6].lower() == "https:" and \
                urljoin(resp.url, target)[:6].lower() != "https:":
            resp.close()
            raise Downgrade(f"redirected to {target} (plain http, not https): refused",
                            response=resp)
        return target


class _Body:
    """The body of an answer, read as it arrives: ``read(n)`` returns what
    one receive brings (at most ``n`` bytes), so that the copy loop judges
    a slow server's rate; a receive waits at most ``timeout`` s (no data
    for that long: a stalled server, TransferError). ``size`` is the
    Content-Length (None when the server sends none)."""

    def __init__(self, resp: requests.Response, timeout: float):
        self._resp = resp
        self._raw = resp.raw
        self._timeout = timeout
        try:
            self.size = int(resp.headers["Content-Length"])
        except (KeyError, ValueError):
            self.size = None

    def read(self, n: int) -> bytes:
        try:
            return self._raw.read1(n, decode_content=True)
        except ReadTimeoutError as exc:
            raise TransferError(f"reading {self._resp.url}: stalled: no data for "
                                f"{self._timeout:g}s (timeout)") from exc
        except (requests.RequestException, OSError, Exception) as exc:  # urllib3 errors
            raise TransferError(f"reading {self._resp.url}: {exc}") from exc

    def close(self) -> None:
        self._resp.close()


class HttpTransfer:
    def __init__(self, timeout: float = 30.0, credentials=None,
                 tls: TlsPolicy | None = None, user: str | None = None, **_options):
        self._timeout = timeout
        self._credentials = credentials
        # a URL naming no user is fetched as ``user`` (the consumer's broker
        # user) when credentials.conf has a line for scheme://user@host:port/
        self._user = user
        self._tls = tls or TlsPolicy(credentials=credentials)
        self._session = _Session()
        self._session.trust_env = False
        self._kept = Connections(timeout)
        self._auths: dict[str, tuple | None] = {}    # by scheme://authority (_auth)
        # https: the ssl context of each CA file (None: the system's), made once,
        # and which one a URL's scheme://authority takes (_context)
        self._contexts: dict[str | None, ssl.SSLContext] = {}
        self._context_of: dict[str, ssl.SSLContext] = {}

    @staticmethod
    def _headers(offset: int, length: int | None) -> dict:
        headers = {"Accept-Encoding": "identity"}
        if offset or length:   # (no range for nothing: 'bytes=0--1' is refused)
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        return headers

    def plan(self, gets: list[tuple[str, int, int | None]]) -> None:
        """The ``open`` calls (url, offset, length) about to come, in order:
        those of the kept connections are written ahead (httpconn's plan)."""
        planned = []
        for url, offset, length in gets:
            scheme = url[:8].lower()
            if not (scheme.startswith("http://") or scheme == "https://"):
                continue
            try:
                kept = self._kept_request(url, self._headers(offset, length))
            except Exception as exc:    # (a hint: its GET, when asked, says what is wrong)
                log.debug("not written ahead: %s: %s", url, exc)
                continue
            if kept is not None:
                planned.append(kept)
        self._kept.plan(planned)

    def _kept_request(self, url: str, headers: dict):
        """(hostport, path, headers, ssl context) of ``url`` on a kept
        connection; None: for requests (credentials in the URL itself)."""
        tls = url[4] in "sS"
        host, slash, path = wire_url(url)[8 if tls else 7:].partition("/")
        if "@" in host:
            return None
        context = self._context(url) if tls else None
        auth = self._auth(url)
        if auth is not None:
            headers = {**headers, "Authorization": _basic_header(*auth)}
        return host, "/" + path, headers, context

    def open(self, url: str, offset: int = 0, length: int | None = None):
        headers = self._headers(offset, length)
        scheme = url[:8].lower()
        if scheme.startswith("http://") or scheme == "https://":
            body = self._open_kept(url, headers, offset)
            if body is not None:
                return body
        try:
            resp = self._session.get(wire_url(url), headers=headers, stream=True,
                                     timeout=self._timeout, auth=self._auth(url),
                                     verify=self._verify(url))
        except requests.exceptions.SSLError as exc:
            raise self._untrusted("GET", url, exc) from exc
        except Downgrade as exc:
            raise TransferError(f"GET {url}: {exc}", recoverable=False) from exc
        except requests.RequestException as exc:
            raise TransferError(f"GET {url}: {exc.__class__.__name__}: {exc}") from exc
        _check_answer(url, resp.status_code, resp.reason, bool("Range" in headers and offset),
                      resp.close)
        return _Body(resp, self._timeout)

    def _open_kept(self, url: str, headers: dict, offset: int):
        """A GET (http or https) on a kept connection; None: for requests (a
        redirection, or credentials in the URL itself)."""
        kept = self._kept_request(url, headers)
        if kept is None:
            return None
        try:
            status, reason, body = self._kept.get(url, *kept)
        except TlsRefused as exc:
            raise self._untrusted("GET", url, exc) from exc
        except http.client.InvalidURL as exc:   # (never fetched as it is written)
            raise TransferError(f"GET {url}: {exc}", code=503, recoverable=False) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransferError(f"GET {url}: {exc.__class__.__name__}: {exc}") from exc
        if 300 <= status < 400:
            body.close()
            return None                      # requests follows redirections
        _check_answer(url, status, reason, bool("Range" in headers and offset), body.close)
        return body

    def remove(self, url: str) -> bool:
        """An HTTP DELETE (a server that takes them: WebDAV's, nginx's
        dav_methods DELETE); 404: it was not there."""
        try:
            resp = self._session.delete(wire_url(url), timeout=self._timeout,
                                        auth=self._auth(url), verify=self._verify(url))
        except requests.exceptions.SSLError as exc:
            raise self._untrusted("DELETE", url, exc) from exc
        except Downgrade as exc:
            raise TransferError(f"DELETE {url}: {exc}", recoverable=False) from exc
        except requests.RequestException as exc:
            raise TransferError(f"DELETE {url}: {exc.__class__.__name__}: {exc}") from exc
        resp.close()
        if resp.status_code == 404:
            return False
        if resp.status_code >= 400:
            raise TransferError(f"DELETE {url}: HTTP {resp.status_code} {resp.reason}",
                                code=499, recoverable=resp.status_code >= 500)
        return True

    def _auth(self, url: str):
        """Basic credentials for ``url``, from credentials.conf only (never
        from the post): its user's line, or for a URL naming no user, the
        line of the consumer's broker user on that server (a switch's
        restricted files: doc/protocol.md §17), if there is one. What it
        finds depends on the URL's text before its path only: kept by that
        (credentials.conf is read once, at start)."""
        if self._credentials is None:
            return None
        scheme, sep, rest = url.partition("://")
        key = scheme + sep + rest.partition("/")[0]
        try:
            return self._auths[key]
        except KeyError:
            pass
        if len(self._auths) >= 256:       # the hosts of the posts: not without bound
            self._auths.clear()
        got = self._auths[key] = self._lookup_auth(url)
        return got

    def _lookup_auth(self, url: str):
        full = self._credentials.lookup(url)
        if full == url and self._user and "@" not in url.partition("://")[2].split("/", 1)[0]:
            scheme, sep, rest = url.partition("://")
            named = f"{scheme}{sep}{quote(self._user, safe='')}@{rest}"
            full = self._credentials.lookup(named)
            return _basic_auth(full) if full != named else None
        return _basic_auth(full) if full != url else None

    def _context(self, url: str) -> ssl.SSLContext:
        """The ssl context an https ``url`` is fetched with (TlsPolicy: its
        CA file, verification, host names checked): one per CA file, for the
        life of the transfer (which CA a URL takes depends on its text
        before the path only, as for _auth). ConfigError when the CA file
        cannot be read."""
        scheme, sep, rest = url.partition("://")
        key = scheme.lower() + sep + rest.partition("/")[0]
        try:
            return self._context_of[key]
        except KeyError:
            pass
        ca = self._tls.ca_for(url) if self._tls.verify else None
        context = self._contexts.get(ca)
        if context is None:                # (CA files: a few, those of the configuration)
            context = self._contexts[ca] = self._tls.context(url)
        if len(self._context_of) >= 256:   # the hosts of the posts: not without bound
            self._context_of.clear()
        self._context_of[key] = context
        return context

    def _verify(self, url: str) -> str | bool:
        """What an HTTPS certificate is verified against (TlsPolicy)."""
        if url[:6].lower() != "https:":
            return True
        return self._tls.requests_verify(url)

    def _untrusted(self, method: str, url: str, exc: Exception) -> TransferError:
        return TransferError(f"{method} {url}: {untrusted(url, ssl_cause(exc), self._tls)}",
                             recoverable=False)

    def close(self) -> None:
        self._kept.close()
        self._session.close()


def _check_answer(url: str, status: int, reason: str, ranged: bool, close) -> None:
    """TransferError (after ``close()``) for an error status, or a byte
    range (``ranged``: asked from a non-zero offset) the server ignored."""
    if status >= 400:
        close()
        retry = status >= 500 or status in (408, 429)
        raise TransferError(f"GET {url}: HTTP {status} {reason}", code=499,
                            recoverable=retry)
    # a server without Range support answers 200 with the whole file:
    # fine from offset 0 (the copy loop stops after ``length`` bytes)
    if ranged and status != 206:
        close()
        raise TransferError(f"GET {url}: server ignored the byte range", code=499,
                            recoverable=False)


def _basic_header(user: str, password: str) -> str:
    """HTTP basic authentication, as requests sends it (latin-1; else UTF-8)."""
    raw = f"{user}:{password}"
    try:
        data = raw.encode("latin-1")
    except UnicodeEncodeError:
        data = raw.encode("utf-8")
    return "Basic " + b64encode(data).decode("ascii")


def _basic_auth(url: str):
    from urllib.parse import unquote, urlsplit
    parts = urlsplit(url)
    if parts.username and parts.password:
        return (unquote(parts.username), unquote(parts.password))
    return None
