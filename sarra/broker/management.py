"""A client of RabbitMQ's management HTTP API, the wire part: JSON over a
keep-alive HTTP(S) session with basic authentication. Schemes: http, https
(``http://<broker host>:15672/api``). Requires: requests.

What the API is asked (users, permissions, exchanges, bindings) is
sarra/switch/rabbit.py's; here only the calls: ``call`` returns (status,
decoded JSON or None) and raises BrokerError when the server cannot be
reached (recoverable) or answers a success that is not JSON (not
recoverable); the caller judges the statuses. Proxies and .netrc from the
environment are ignored (``trust_env = False``), as in the HTTP transfer.
"""
import requests

from ..errors import BrokerError


class JsonClient:
    """JSON calls to one HTTP API as one user (see the module)."""

    def __init__(self, user: str, password: str, timeout: float = 15.0):
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False     # no proxies or .netrc
        self._session.auth = (user, password)

    def call(self, method: str, url: str, body=None) -> tuple[int, object]:
        try:
            reply = self._session.request(method, url, json=body, timeout=self._timeout)
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
