"""A client of RabbitMQ's management HTTP API, the wire part: JSON over a
keep-alive HTTP(S) session with basic authentication. Schemes: http, https
(``http://<broker host>:15672/api``). Requires: requests.

What the API is asked (users, permissions, exchanges, bindings) is
sarra/switch/rabbit.py's, but for ``QueueDepth``, the depth of a flow's
queue for its metrics (sarra/flow/housekeeping.py). Here the calls:
``call`` returns (status, decoded JSON or None) and raises BrokerError when the server cannot be
reached (recoverable) or answers a success that is not JSON (not
recoverable), or whose https certificate does not verify (not recoverable:
sarra/tls.py says against what); the caller judges the statuses. Proxies and .netrc from the
environment are ignored (``trust_env = False``), as in the HTTP transfer.
"""
from urllib.parse import quote, unquote, urlsplit

import requests

from ..tls import TlsPolicy, ssl_cause, untrusted
from ..errors import BrokerError

# the management API's default scheme and port for a broker's scheme
MANAGEMENT_PORTS = {"amqp": ("http", 15672), "amqps": ("https", 15671)}


class JsonClient:
    """JSON calls to one HTTP API as one user (see the module)."""

    def __init__(self, user: str, password: str, timeout: float = 15.0,
                 tls: TlsPolicy | None = None):
        self._timeout = timeout
        self._tls = tls or TlsPolicy()
        self._session = requests.Session()
        self._session.trust_env = False     # no proxies or .netrc
        self._session.auth = (user, password)

    def call(self, method: str, url: str, body=None) -> tuple[int, object]:
        verify = self._tls.requests_verify(url) if url[:6].lower() == "https:" else True
        try:
            reply = self._session.request(method, url, json=body, timeout=self._timeout,
                                          verify=verify)
        except requests.exceptions.SSLError as exc:
            raise BrokerError(f"{method} {url}: {untrusted(url, ssl_cause(exc), self._tls)}",
                              recoverable=False) from exc
        except requests.RequestException as exc:
            raise BrokerError(f"{method} {url}: {exc.__class__.__name__}",
                              recoverable=True) from exc
        if not reply.content:
            return reply.status_code, None
        try:
            return reply.status_code, reply.json()
        except ValueError:
            if reply.status_code >= 400:
                return reply.status_code, {"reason": reply.text}
            raise BrokerError(f"{method} {url}: not a JSON answer",
                              recoverable=False) from None

    def close(self) -> None:
        self._session.close()


def default_api_url(broker: str) -> str:
    """http://<broker host>:15672/api (https and 15671 for amqps)."""
    parts = urlsplit(broker)
    scheme, port = MANAGEMENT_PORTS.get(parts.scheme.lower(), ("http", 15672))
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}/api"


class QueueDepth:
    """The depth of one queue (messages ready and unacknowledged), as
    ``GET <api>/queues/<vhost>/<queue>`` gives it to the broker URL's user
    (the password in that URL). ``read`` never raises: None when the depth
    cannot be had, ``why`` saying why, ``refused`` when the API said no (the
    user may not read it: no management tag, or not its vhost)."""

    def __init__(self, api: str, user: str, password: str, vhost: str, queue: str,
                 timeout: float = 5.0, tls: TlsPolicy | None = None):
        self.queue = queue
        self.url = f"{api.rstrip('/')}/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
        self.why = ""
        self.refused = False
        self._client = JsonClient(user, password, timeout=timeout, tls=tls)

    @classmethod
    def of(cls, broker: str, queue: str, api: str | None = None,
           tls: TlsPolicy | None = None) -> "QueueDepth | None":
        """For an AMQP broker URL (password included); None for any other."""
        parts = urlsplit(broker)
        if parts.scheme.lower() not in MANAGEMENT_PORTS:
            return None
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(api or default_api_url(broker), unquote(parts.username or "guest"),
                   unquote(parts.password or ""), vhost, queue, tls=tls)

    def read(self) -> int | None:
        try:
            status, body = self._client.call("GET", self.url)
        except BrokerError as exc:
            self.why, self.refused = f"management API: {exc}", False
            return None
        except Exception as exc:   # noqa: BLE001 - a figure, never an error of the flow
            self.why, self.refused = f"management API: {type(exc).__name__}", False
            return None
        if status in (401, 403):
            self.why, self.refused = f"the management API refused (HTTP {status})", True
            return None
        if status != 200 or not isinstance(body, dict) or \
                not isinstance(body.get("messages", 0), int):
            self.why, self.refused = f"the management API answered HTTP {status}", False
            return None
        self.why, self.refused = "", False
        # a queue just declared has no statistics yet: its ready and unacked
        return body.get("messages", body.get("messages_ready", 0)
                        + body.get("messages_unacknowledged", 0))

    def close(self) -> None:
        self._client.close()
