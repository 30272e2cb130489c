"""``sarra web``: the console's HTTP server (the standard library's
ThreadingHTTPServer), one thread per request.

Routes: ``/`` the page, ``/static/app.js`` and ``/static/app.css`` (package
data, sarra/web/static/), ``/metrics`` (the exposition of ``sarra
metrics``), ``/api/status`` (the page's data, sarra/web/status.py, polled
every few seconds), ``/api/ledger?file=PATTERN`` (dd_log's ledgers),
``POST /api/build`` (the builder, sarra/web/builder.py).

Who may use it: it listens on loopback unless told otherwise; another
address needs ``--remote`` and a line ``http://USER:PASSWORD@HOST:PORT/``
in credentials.conf for that address (HOST and PORT as given to
``--listen``), and then every request needs HTTP basic auth as one of
those users. (A loopback console with such a line asks for it too.) On
loopback, the Host header must name a loopback address (a page of another
site reaching it through DNS rebinding is refused). A POST must carry the
server's token (made at start, written into the page it serves) in
``X-Sarra-Token``, as JSON, from the console's own origin when the browser
says where it comes from, in at most BODY_MAX bytes: a cross-site form
cannot write a configuration. No password is ever shown or logged.
"""
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..config.credentials import Credentials
from ..errors import ConfigError
from . import builder, status

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8990"
BODY_MAX = 64 * 1024          # bytes of a POST body
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; "
                               "form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` or ``[IPv6]:PORT`` (port 0: any free one)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ConfigError(f"'{text}' is not HOST:PORT (e.g. {DEFAULT_LISTEN})",
                          option="--listen")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Sources:
    """Where the console's figures come from (given by sarra/cli.py):
    ``judged()`` -> (``service.describe`` of each configuration, the names
    of those that could not be read); ``files(results)`` -> 'tool/config' ->
    what each instance last wrote; ``exposition(results)`` the /metrics
    text; ``ledger(pattern)`` -> rows of dd_log's ledgers."""
    judged: Callable[[], tuple[list[dict], list[str]]]
    files: Callable[[list[dict]], dict[str, list[dict]]]
    exposition: Callable[[list[dict]], str]
    ledger: Callable[[str], list[dict]]


class Console:
    """What every request of one server shares: its address, who may use
    it, its token, where its figures come from."""

    def __init__(self, sources: Sources, host: str, port: int, remote: bool = False,
                 credentials: Credentials | None = None):
        self.sources = sources
        self.host, self.port = host, port
        self.loopback = is_loopback(host)
        self.credentials = credentials if credentials is not None else Credentials()
        self.users = self.credentials.users(self._url())
        if not self.loopback and not remote:
            raise ConfigError(f"{host} is not a loopback address: listening there needs "
                              "--remote (and a login in credentials.conf)", option="--listen")
        if not self.loopback and not self.users:
            raise ConfigError(f"listening on {host} needs a login: add a line "
                              f"http://USER:PASSWORD@{self.hostport()}/ to "
                              f"{self.credentials.path}", option="--listen")
        self.token = secrets.token_urlsafe(32)

    def hostport(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"

    def _url(self, user: str | None = None) -> str:
        who = f"{quote(user, safe='')}@" if user else ""
        return f"http://{who}{self.hostport()}/"

    def authorized(self, header: str | None) -> bool:
        """No login asked for, or ``Authorization: Basic`` of a user whose
        password credentials.conf holds for this address."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep or user not in self.users:
            return False
        wanted = urlsplit(self.credentials.lookup(self._url(user))).password or ""
        return bool(wanted) and hmac.compare_digest(unquote(wanted).encode(),
                                                    password.encode())

    def host_allowed(self, host_header: str | None) -> bool:
        """On loopback, the request names a loopback address (not a name a
        hostile page's DNS pointed here)."""
        if not self.loopback:
            return True
        if not host_header:
            return False
        return host_header.lower() in {f"{h}:{self.port}" for h in
                                       LOOPBACK_NAMES + (self.hostport().rsplit(":", 1)[0],)}

    def page(self) -> bytes:
        text = _resource("index.html").decode("utf-8")
        return text.replace("{{TOKEN}}", self.token).encode("utf-8")


def _resource(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    server_version = "sarra-web"
    console: Console   # set on the class made for each server (make_server)

    def log_message(self, fmt: str, *args) -> None:     # the request line only, at debug
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- answers --------------------------------------------------------------
    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, data) -> None:
        # ASCII: a file name from a hostile message may hold a lone surrogate
        self._send(code, json.dumps(data).encode("ascii"),
                   "application/json; charset=utf-8")

    def _error(self, code: int, why: str, extra: dict | None = None) -> None:
        self._send(code, json.dumps({"error": why}).encode("utf-8"),
                   "application/json; charset=utf-8", extra)

    def _admitted(self) -> bool:
        c = self.console
        if not c.host_allowed(self.headers.get("Host")):
            self._error(HTTPStatus.MISDIRECTED_REQUEST, "this console answers to its "
                        "loopback address only")
            return False
        if not c.authorized(self.headers.get("Authorization")):
            self._error(HTTPStatus.UNAUTHORIZED, "login needed",
                        {"WWW-Authenticate": 'Basic realm="sarra", charset="UTF-8"'})
            return False
        return True

    # -- GET ---------------------------------------------------------------------
    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._admitted():
            return
        url = urlsplit(self.path)
        route = url.path
        try:
            if route in ("/", "/index.html"):
                self._send(200, self.console.page(), "text/html; charset=utf-8")
            elif route.startswith("/static/") and route[8:] in STATIC:
                self._send(200, _resource(route[8:]), STATIC[route[8:]])
            elif route == "/metrics":
                results, _errors = self.console.sources.judged()
                self._send(200, self.console.sources.exposition(results).encode("utf-8"),
                           "text/plain; version=0.0.4; charset=utf-8")
            elif route == "/api/status":
                self._json(200, self._status())
            elif route == "/api/ledger":
                pattern = (parse_qs(url.query).get("file") or [""])[0]
                if not pattern.strip():
                    self._error(400, "give a file: ?file=PATH or a pattern (* ? [...])")
                else:
                    self._json(200, {"file": pattern,
                                     "rows": self.console.sources.ledger(pattern)})
            else:
                self._error(404, f"no such page: {route}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:     # a request never stops the server
            log.error("%s: %s", route, exc)
            log.debug("traceback", exc_info=True)
            self._error(500, f"internal error: {type(exc).__name__}")

    def _status(self) -> dict:
        results, errors = self.console.sources.judged()
        return status.snapshot(results, self.console.sources.files(results), time.time(),
                               errors)

    # -- POST ---------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        if not self._admitted():
            return
        why = self._forged()
        if why:
            self._error(HTTPStatus.FORBIDDEN, why)
            return
        if urlsplit(self.path).path != "/api/build":
            self._error(404, "no such action")
            return
        try:
            length = int(self.headers.get("Content-Length") or "-1")
        except ValueError:
            length = -1
        if length < 0:
            self._error(HTTPStatus.LENGTH_REQUIRED, "a body with its Content-Length")
            return
        if length > BODY_MAX:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"a body of {length} bytes: at most {BODY_MAX}")
            return
        try:
            data = json.loads(self.rfile.read(length).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self._error(400, "the body is not JSON")
            return
        if not isinstance(data, dict) or not isinstance(data.get("form"), dict):
            self._error(400, "the body is {\"form\": {...}, \"write\": true|false}")
            return
        try:
            built = builder.build(data["form"], write=data.get("write") is True)
        except Exception as exc:     # a request never stops the server
            log.error("/api/build: %s", exc)
            log.debug("traceback", exc_info=True)
            self._error(500, f"internal error: {type(exc).__name__}")
            return
        if built.written:
            log.info("the builder wrote %s", built.written)
        self._json(200, built.to_json())

    def _forged(self) -> str | None:
        """Why this POST may come from another site (None: it does not)."""
        token = self.headers.get("X-Sarra-Token") or ""
        if not hmac.compare_digest(token.encode(), self.console.token.encode()):
            return "no valid X-Sarra-Token (reload the console's page)"
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return "the body must be application/json"
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            return f"a request from another origin ({origin})"
        if (self.headers.get("Sec-Fetch-Site") or "same-origin") not in ("same-origin",
                                                                         "none"):
            return "a request from another site"
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(console: Console) -> ThreadingHTTPServer:
    """The server bound to the console's address (OSError: it cannot be);
    with port 0, ``console.port`` becomes the one the system chose."""
    handler = type("ConsoleHandler", (Handler,), {"console": console})
    kind = _Server6 if ":" in console.host else _Server
    server = kind((console.host, console.port), handler)
    console.port = server.server_address[1]
    console.users = console.credentials.users(console._url())   # the port now known
    return server
