"""A hostile HTTP server for the tests: it serves the files of a directory
well, or badly, by the first component of the request path.

``/good/REL``     the file ``root/REL``, with its Content-Length;
``/trickle/REL``  its Content-Length, then one byte every ``trickle_every`` s;
``/stall/REL``    its Content-Length, then nothing at all;
``/forever/REL``  no Content-Length: the file, then zeros, without end;
``/liar/REL``     a Content-Length of 1 TB: the file, then zeros, without end.

Every request is recorded (``hits``): when it came, when it ended and how
(``complete``, ``client left``: the client closed the connection, or
``server gave up`` after ``give_up`` s), and the body bytes sent, so that a
test measures from the server's side how long a client stayed. A threaded
server on 127.0.0.1 (a port of its own), no internet. Nothing here imports
``sarra``.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

CHUNK = 64 * 1024
ZEROS = bytes(CHUNK)
ENDLESS = 10 ** 12          # what the liar announces


@dataclass
class Hit:
    kind: str               # good, trickle, stall, forever, liar
    rel: str
    start: float            # time.monotonic()
    end: float | None = None
    sent: int = 0           # body bytes
    how: str = ""           # complete, client left, server gave up

    @property
    def lasted(self) -> float | None:
        return None if self.end is None else self.end - self.start


class HostileServer:
    def __init__(self, root: Path, trickle_every: float = 2.0, give_up: float = 120.0):
        self.root = Path(root)
        self.trickle_every, self.give_up = trickle_every, give_up
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                server._serve(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hostile",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url_of(self, kind: str, rel: str) -> str:
        return f"{self.url}{kind}/{rel}"

    def hits_of(self, rel: str, kind: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.rel == rel and (kind is None or h.kind == kind)]

    # -- serving ------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        kind, _, rel = unquote(h.path.lstrip("/")).partition("/")
        path = self.root / rel
        if kind not in ("good", "trickle", "stall", "forever", "liar") or not path.is_file():
            h.send_error(404)
            return
        data = path.read_bytes()
        hit = Hit(kind, rel, time.monotonic())
        with self._lock:
            self.hits.append(hit)
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            if kind in ("forever",):
                h.send_header("Connection", "close")
                h.close_connection = True
            else:
                h.send_header("Content-Length", str(ENDLESS if kind == "liar" else len(data)))
            if kind == "liar":
                h.close_connection = True
            h.end_headers()
            h.wfile.flush()
            hit.how = self._body(h, kind, data, hit)
        except (BrokenPipeError, ConnectionResetError):
            hit.how = "client left"
            h.close_connection = True
        finally:
            hit.end = time.monotonic()

    def _body(self, h, kind: str, data: bytes, hit: Hit) -> str:
        deadline = hit.start + self.give_up
        if kind == "good":
            h.wfile.write(data)
            hit.sent = len(data)
            return "complete"
        if kind == "stall":
            h.close_connection = True
            return "client left" if self._gone(h, deadline - time.monotonic()) else \
                "server gave up"
        if kind == "trickle":
            h.close_connection = True
            for i in range(len(data)):
                if self._gone(h, self.trickle_every):
                    return "client left"
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
                hit.sent += 1
                if time.monotonic() > deadline:
                    return "server gave up"
            return "complete"
        # forever, liar: the file, then zeros, as fast as the client takes them
        h.wfile.write(data)
        hit.sent = len(data)
        while time.monotonic() < deadline:
            h.wfile.write(ZEROS)
            hit.sent += CHUNK
        return "server gave up"

    @staticmethod
    def _gone(h, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as the client closes the connection."""
        sock = h.connection
        end = time.monotonic() + max(0.0, seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([sock], [], [], min(left, 0.1))
            if readable:
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except (ConnectionResetError, OSError):
                    return True
                time.sleep(min(left, 0.1))   # a byte of a next request: not our business
