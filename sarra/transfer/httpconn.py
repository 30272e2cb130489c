"""Plain-HTTP GETs on persistent connections, without a client library's
per-request work: the path for small files (sarra/transfer/http.py).

One ``http.client`` connection per server, kept alive between downloads;
a request is a request line and a few headers. A connection the server
closed while idle (its keep-alive timeout) is opened again once, for the
same request (a GET may be repeated). A body not read to its end (a
failed or cut-off download) closes its connection, so that the next
request never reads the rest of an earlier answer. What this does not do
(redirections, https) ``HttpTransfer`` hands to requests.
"""
import http.client
import socket

from ..errors import TransferError
from .base import host_port

# the connection went away between two requests: open it again, once
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


class Body:
    """The body of an answer on a kept connection: ``read(n)`` returns what
    one receive brings (at most ``n`` bytes); ``size`` is the Content-Length
    (None when the server sends none). A receive that waits more than the
    timeout: TransferError (stalled)."""

    def __init__(self, pool: "Connections", key, conn, resp, url: str):
        self._pool, self._key, self._conn, self._resp = pool, key, conn, resp
        self._url = url
        length = resp.getheader("Content-Length")
        self.size = int(length) if length and length.isdigit() else None

    def read(self, n: int) -> bytes:
        try:
            return self._resp.read1(n)
        except (TimeoutError, socket.timeout) as exc:
            raise TransferError(f"reading {self._url}: stalled: no data for "
                                f"{self._pool.timeout:g}s (timeout)") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransferError(f"reading {self._url}: {exc.__class__.__name__}: "
                                f"{exc}") from exc

    def close(self) -> None:
        if self._conn is None:
            return
        if not (self._resp.isclosed() or self._resp.length == 0):
            self._pool.discard(self._key)    # the rest of the body is never read
        self._resp.close()
        self._conn = None


class Connections:
    """The kept connections, by (host, port)."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._conns: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def get(self, url: str, hostport: str, path: str, headers: dict):
        """GET ``path`` of ``hostport`` (``url``: for messages): (status,
        reason, Body). OSError, HTTPException on failure."""
        key = host_port(hostport, 80, "http")
        for attempt in (1, 2):
            conn = self._conns.get(key)
            fresh = conn is None
            if fresh:
                conn = self._conns[key] = http.client.HTTPConnection(
                    key[0], key[1], timeout=self.timeout)
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            except _STALE:
                self.discard(key)
                if fresh or attempt == 2:
                    raise
                continue                     # closed while idle: once more, anew
            except BaseException:
                self.discard(key)
                raise
            return resp.status, resp.reason, Body(self, key, conn, resp, url)
        raise AssertionError("unreachable")

    def discard(self, key) -> None:
        conn = self._conns.pop(key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for key in list(self._conns):
            self.discard(key)
