"""The kept plain-http connections (sarra/transfer/httpconn.py) against a
scripted server on loopback: each way an answer's body may be framed
(Content-Length, chunked, to the end of the connection, none), interim
answers, keep-alive or not, and the answers that must not be read as the
start of the next one (a body left unread, more bytes than announced),
a connection closed while idle, and broken answers."""
import http.client
import socket
import threading

import pytest

from sarra.errors import TransferError
from sarra.transfer.httpconn import Connections


class Server:
    """Accepts connections; for each request read, sends the next scripted
    answer (bytes, or a callable given the socket); ``None`` closes the
    connection instead of answering."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buf = b""
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    req, _, buf = buf.partition(b"\r\n\r\n")
                    self.requests.append(req)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    if callable(answer):
                        answer(conn)
                        break
                    conn.sendall(answer)

    def close(self):
        self.sock.close()


@pytest.fixture
def serve():
    made = []

    def start(*answers):
        s = Server(answers)
        made.append(s)
        return s
    yield start
    for s in made:
        s.close()


def fetch(pool, server, path="/f", n=7):
    where = f"127.0.0.1:{server.port}"
    status, reason, body = pool.get(f"http://{where}{path}", where, path,
                                    {"Accept-Encoding": "identity"})
    got = b""
    try:                            # (as the Downloader: closed whatever happens)
        while chunk := body.read(n):
            got += chunk
    finally:
        body.close()
    return status, reason, body.size, got


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_content_length_answers_share_one_connection(serve):
    s = serve(ok(b"first body"), ok(b"second"), ok(b""))
    pool = Connections(5)
    assert fetch(pool, s) == (200, "OK", 10, b"first body")
    assert fetch(pool, s, "/g") == (200, "OK", 6, b"second")
    assert fetch(pool, s) == (200, "OK", 0, b"")
    assert s.connections == 1
    assert s.requests[1].startswith(b"GET /g HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % s.port)
    assert b"Accept-Encoding: identity" in s.requests[1]
    pool.close()


def test_chunked_answers_with_extensions_and_trailers(serve):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
    s = serve(chunked, ok(b"after"))
    pool = Connections(5)
    assert fetch(pool, s, n=3) == (200, "OK", None, b"hello 0123456789")
    assert fetch(pool, s) == (200, "OK", 5, b"after")
    assert s.connections == 1
    pool.close()


def test_a_body_to_the_end_of_the_connection_then_a_new_one(serve):
    s = serve(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"), ok(b"next"))
    pool = Connections(5)
    assert fetch(pool, s) == (200, "OK", None, b"until the end")
    assert fetch(pool, s) == (200, "OK", 4, b"next")
    assert s.connections == 2
    pool.close()


@pytest.mark.parametrize("answer", [
    ok(b"closing", b"Connection: close\r\n"),
    b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nclosing",
    ok(b"closing") + b"and more than announced",
])
def test_no_keep_alive_or_too_many_bytes_closes_the_connection(serve, answer):
    s = serve(answer, ok(b"fresh"))
    pool = Connections(5)
    assert fetch(pool, s)[3] == b"closing"
    assert not pool._conns
    assert fetch(pool, s)[3] == b"fresh"
    assert s.connections == 2
    pool.close()


def test_a_body_left_unread_closes_the_connection(serve):
    s = serve(ok(b"x" * 1000), ok(b"fresh"))
    pool = Connections(5)
    _status, _reason, body = pool.get("u", f"127.0.0.1:{s.port}", "/f", {})
    assert body.read(10) == b"x" * 10
    body.close()
    assert not pool._conns
    assert fetch(pool, s)[3] == b"fresh"
    pool.close()


def test_interim_and_bodiless_answers(serve):
    s = serve(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
              b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
              b"HTTP/1.1 204 No Content\r\n\r\n", ok(b"still one"))
    pool = Connections(5)
    assert fetch(pool, s) == (200, "OK", 2, b"hi")
    assert fetch(pool, s)[:2] == (304, "Not Modified")
    assert fetch(pool, s)[:2] == (204, "No Content")
    assert fetch(pool, s)[3] == b"still one"
    assert s.connections == 1
    pool.close()


@pytest.mark.parametrize("folded", [b"X-Folded: a\r\n b\r\n", b""])
def test_headers_are_read_leniently(serve, folded):
    """(With a folded line somewhere, every line is read; without, only the
    framing headers are looked for: the same answers.)"""
    s = serve(b"HTTP/1.1 404 Not Found\r\ncontent-LENGTH : 3\r\n" + folded +
              b"not a header\r\nX-Content-Length: 9\r\nConnection:\tKeep-Alive \r\n\r\nnop",
              b"HTTP/1.1 200\r\nContent-Length: 2, 2\r\n" + folded + b"\r\nok",
              ok(b"last", b"Connection: TE, close\r\n" + folded))
    pool = Connections(5)
    assert fetch(pool, s) == (404, "Not Found", 3, b"nop")
    assert fetch(pool, s) == (200, "", 2, b"ok")
    assert fetch(pool, s) == (200, "OK", 4, b"last")
    assert not pool._conns and s.connections == 1
    pool.close()


def test_a_connection_closed_while_idle_is_opened_again_once(serve):
    s = serve(ok(b"one"), None, ok(b"two"))
    pool = Connections(5)
    assert fetch(pool, s)[3] == b"one"
    assert fetch(pool, s)[3] == b"two"          # the first try met a closed connection
    assert s.connections == 2
    pool.close()
    s2 = serve(None)
    with pytest.raises(http.client.RemoteDisconnected):   # a fresh one: not again
        fetch(Connections(5), s2)


@pytest.mark.parametrize("answer, error", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", TransferError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
     TransferError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
     TransferError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
     http.client.HTTPException),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nhello", http.client.HTTPException),
    (b"ICY 200 OK\r\n\r\n", http.client.BadStatusLine),
    (b"HTTP/1.1 2000 OK\r\n\r\n", http.client.BadStatusLine),
    (b"HTTP/1.1 200 OK\r\nContent-", http.client.BadStatusLine),
])
def test_broken_answers_fail_and_drop_the_connection(serve, answer, error):
    s = serve(lambda c: c.sendall(answer), ok(b"fresh"))
    pool = Connections(5)
    with pytest.raises(error):
        fetch(pool, s)
    assert not pool._conns
    assert fetch(pool, s)[3] == b"fresh"
    pool.close()


def test_a_stalled_body_is_a_transfer_error(serve):
    import time
    s = serve(lambda c: (c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
                         time.sleep(1.5)))
    pool = Connections(0.5)
    with pytest.raises(TransferError, match="stalled"):
        fetch(pool, s)
    pool.close()


def test_no_control_characters_reach_the_request_line():
    pool = Connections(5)
    with pytest.raises(http.client.InvalidURL):
        pool.get("u", "127.0.0.1:1", "/a\r\nX-Injected: 1", {})
