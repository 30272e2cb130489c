"""HTTP and HTTPS GETs on persistent connections, without a client
library's per-request work: the path for small files (sarra/transfer/http.py).

One connection per server, kept alive between downloads; over https, the
socket is wrapped by the ssl context the caller gives (the configuration's
TlsPolicy: certificate and host name verified, SNI set), and connections
are kept by host, port and context, so that one made for a server under
one TLS setting is never used for another (nor a plain one for https, or
the reverse). A TLS handshake that fails is a ``TlsRefused`` (its cause
the ssl error), unless the connection merely went away during it. A request is a
request line and a few headers, sent in one write; the answer's head is
parsed here (status line, and of its headers those that frame the body:
Content-Length, Transfer-Encoding, Connection), not by ``http.client``,
whose header parsing (the email package) cost more than the rest of a
small file's download. The body is framed as RFC 9112 §6.3 says: none
(1xx, 204, 304), chunked, Content-Length, or up to the end of the
connection (over TLS: up to the server's close_notify; a bare TCP end,
which anyone on the way can forge, is a cut body, an error). A
connection the server closed while idle (its keep-alive
timeout) is opened again once, for the same request (a GET may be
repeated). A body not read to its end (a failed or cut-off download), an
answer without keep-alive, or a server that sent more than it announced
closes its connection, so that the next request never reads the rest of
an earlier answer. What this does not do (redirections, credentials in
the URL) ``HttpTransfer`` hands to requests. Failures are OSError (timeouts
included) or ``http.client.HTTPException``, as ``http.client``'s.
"""
import http.client
import re
import socket
import ssl
from collections import deque

from ..errors import TransferError
from .base import host_port

# the connection went away between two requests: open it again, once
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError, ssl.SSLEOFError, ssl.SSLZeroReturnError)
# what a TLS handshake meets when the server merely went away (an outage, not a refusal)
_GONE = (ssl.SSLEOFError, ssl.SSLZeroReturnError)

HEAD_MAX = 65536          # bytes of an answer's status line and headers, at most
                          # (and of a chunked body's trailers)
INTERIM_MAX = 100         # interim (1xx) answers before the real one, at most
RECV = 65536              # bytes asked of one receive of a head
AHEAD = 8                 # requests written ahead of their turn on a connection, at most
KEPT_MAX = 32             # connections kept at most (the servers of the posts: any
                          # number), those used least recently closed first
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
_NO_BODY = (204, 304)


# the headers that frame a body, each on its line (as the loop of Answer reads them:
# a line ends at LF, one CR before it dropped; a bare CR is part of the line)
_FRAMING = re.compile(rb"^[ \t]*(content-length|transfer-encoding|connection)[ \t]*:[ \t]*"
                      rb"([^\n]*?)[ \t]*\r?$", re.M | re.I)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


class TlsRefused(OSError):
    """The TLS handshake failed: the server's certificate or host name did
    not verify, or no protocol or cipher was agreed. Its ``__cause__`` is
    the ssl error."""


def _check_host(hostport: str, url: str) -> None:
    """InvalidURL when ``hostport`` (of ``url``) holds control characters,
    or '?' or '#'."""
    if _CONTROL.search(hostport):     # (it goes in the Host header, and to the resolver)
        raise http.client.InvalidURL(f"control characters in the host of {url!r}")
    if "?" in hostport or "#" in hostport:   # (for urlsplit, credentials.conf's and
        raise http.client.InvalidURL(        # requests', the host ends there)
            f"'?' or '#' in the host of {url!r}")


def ascii_host(host: str) -> str:
    """``host`` as the resolver is asked for it (as create_connection would
    ask: IDNA); InvalidURL when it cannot be (an empty label, one of 64
    characters or more...)."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise http.client.InvalidURL(f"bad host name {host!r}: {exc}") from None


def host_field(host: str, port: int, tls: bool) -> str:
    """The Host header's value for ``host``:``port`` (IDNA, brackets)."""
    host = ascii_host(host)
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) else f"{name}:{port}"


def _request(host: str, path: str, headers: dict) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Conn:
    """One kept connection: its socket (an ssl one with ``tls``, the
    handshake done) and what was received beyond what was consumed (the
    start of a body that came with its head)."""

    def __init__(self, host: str, port: int, timeout: float,
                 tls: ssl.SSLContext | None = None):
        name = ascii_host(host)
        raw = socket.create_connection((name, port), timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.tls = tls is not None
        if tls is None:
            self.sock = raw
        else:
            # (the context checks the name, and sends it as SNI unless an address;
            # a TCP end without TLS's close_notify is an error, not an end of
            # the data: a body framed by the end of the connection is not taken
            # whole when anyone on the way merely cut it, Body._read)
            try:
                # ('host.' is the name 'host' written in full: checked and sent as
                # SNI without its dot, as urllib3 does, certificates name no dot)
                self.sock = tls.wrap_socket(raw, server_hostname=name.rstrip("."),
                                            suppress_ragged_eofs=False)
            except _GONE:
                raw.close()
                raise
            except ssl.SSLError as exc:
                raw.close()
                raise TlsRefused(f"TLS handshake with {host}:{port}: {exc}") from exc
            except BaseException:
                raw.close()
                raise
        self.buf = b""
        self.host = host_field(host, port, self.tls)
        # requests written ahead (``Connections.plan``) whose answers are not
        # read yet, oldest first: the answers come in this order
        self.sent: deque[bytes] = deque()
        self.busy = False     # a Body is open on it (never closed to make room)

    def close(self) -> None:
        self.sock.close()

    def quick_ack(self) -> None:
        """What comes next is acknowledged at once, not after the kernel's
        delay (up to 40 ms): with requests written ahead, a server that
        holds its next answers until the last one is acknowledged (Nagle's
        rule: nginx does for answers to pipelined requests) sends them on
        at once. Linux only; re-armed before each wait (the kernel drops it)."""
        if _QUICKACK is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass

    def leftover(self) -> bool:
        """Whether bytes were received that no answer consumed (kept here,
        or decrypted and waiting in the ssl socket)."""
        return bool(self.buf) or (self.tls and self.sock.pending() > 0)

    def next_answer(self) -> bool:
        """Whether what was received beyond the answer read may be the next
        one's: requests were written ahead, and it begins as an answer does
        (a server that sent more than it announced sent no status line)."""
        return bool(self.sent) and self.buf[:7] == b"HTTP/1."[:len(self.buf)]

    def recv(self, n: int) -> bytes:
        """What was kept, else one receive of at most ``n`` bytes."""
        if self.buf:
            data, self.buf = self.buf[:n], self.buf[n:]
            return data
        return self.sock.recv(n)

    def more(self, n: int) -> bytes | bytearray:
        """``recv`` of a big read: one receive waited for, then what else the
        kernel holds already, up to ``n`` bytes without waiting (a big file
        goes in big pieces: fewer trips through the copy loop and the
        hashing thread; a slow server's pieces come as they arrive)."""
        first = self.recv(n)
        if len(first) >= n or not first or type(self.sock) is not socket.socket:
            return first            # (TLS: its records are not the kernel's bytes)
        buf = bytearray(n)
        got = len(first)
        buf[:got] = first
        view = memoryview(buf)
        timeout = self.sock.gettimeout()
        self.sock.settimeout(0.0)   # (with a timeout, a receive would wait for more)
        try:
            while got < n:
                k = self.sock.recv_into(view[got:], n - got)
                if not k:
                    break           # the end of the connection: seen at the next read
                got += k
        except (BlockingIOError, InterruptedError):
            pass                    # nothing more for now
        finally:
            self.sock.settimeout(timeout)
            view.release()
        del buf[got:]
        return buf

    def line(self) -> bytes:
        """One CRLF-ended line (of a chunked body's framing), without its end."""
        while True:
            end = self.buf.find(b"\n")
            if end != -1:
                line, self.buf = self.buf[:end], self.buf[end + 1:]
                return line.rstrip(b"\r")
            if len(self.buf) > HEAD_MAX:
                raise http.client.LineTooLong("chunk size line")
            data = self.sock.recv(RECV)
            if not data:
                raise http.client.IncompleteRead(self.buf)
            self.buf += data

    def head(self) -> bytes:
        """The head of the next answer (status line and headers, without the
        empty line ending it). RemoteDisconnected when the connection ends
        before a byte of it came (a server closing an idle connection)."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end != -1:
                head, self.buf = self.buf[:end], self.buf[end + 4:]
                return head
            if len(self.buf) > HEAD_MAX:
                raise http.client.LineTooLong("answer head")
            if self.sent:
                self.quick_ack()
            data = self.sock.recv(RECV)
            if not data:
                if not self.buf:
                    raise http.client.RemoteDisconnected(
                        "Remote end closed connection without response")
                raise http.client.BadStatusLine(self.buf[:80].decode("latin-1"))
            self.buf += data


class Answer:
    """The status line and framing headers of one answer."""

    def __init__(self, head: bytes):
        status_line, _, rest = head.partition(b"\n")      # (a bare LF ends a line too)
        if status_line.endswith(b"\r"):
            status_line = status_line[:-1]
        words = status_line.decode("latin-1").split(None, 2)
        if len(words) < 2 or not words[0].startswith("HTTP/1.") or \
                not (len(words[1]) == 3 and _digits(words[1])):
            raise http.client.BadStatusLine(status_line[:80].decode("latin-1"))
        self.version = words[0]
        self.status = int(words[1])
        self.reason = words[2].strip() if len(words) > 2 else ""
        self.headers: dict[str, list[str]] = {}
        if not (rest[:1] in (b" ", b"\t") or b"\n " in rest or b"\n\t" in rest):
            for name, value in _FRAMING.findall(rest):    # no folded line: the usual
                self.headers.setdefault(name.decode("latin-1").lower(), []).append(
                    value.decode("latin-1"))
            return
        last = None
        for raw in rest.split(b"\n") if rest else ():
            line = (raw[:-1] if raw.endswith(b"\r") else raw).decode("latin-1")
            if line[:1] in (" ", "\t") and last is not None:    # an obsolete folded line
                last[-1] = last[-1] + " " + line.strip(" \t")
                continue
            name, colon, value = line.partition(":")
            name = name.strip(" \t").lower()
            if not colon or not name:
                continue                   # not a header (as http.client, ignored)
            last = self.headers.setdefault(name, [])
            last.append(value.strip(" \t"))

    def get(self, name: str) -> str | None:
        values = self.headers.get(name)
        return ",".join(values) if values else None

    def tokens(self, name: str) -> list[str]:
        return [t.strip().lower() for t in (self.get(name) or "").split(",") if t.strip()]


class Body:
    """The body of an answer on a kept connection: ``read(n)`` returns what
    one receive brings (at most ``n`` bytes); ``size`` is the Content-Length
    (None when the server sends none). A receive that waits more than the
    timeout: TransferError (stalled)."""

    def __init__(self, pool: "Connections", key, conn: _Conn, answer: Answer, url: str,
                 no_body: bool = False):
        self._pool, self._key, self._conn = pool, key, conn
        self._url = url
        self.status, self.reason = answer.status, answer.reason
        self.size = None
        self._chunked = False
        self._left: int | None = None      # bytes of the body (or chunk) still to come
        self._done = False
        self._keep = answer.version != "HTTP/1.0" and "close" not in answer.tokens("connection")
        coding = answer.tokens("transfer-encoding")
        length = answer.headers.get("content-length")
        if no_body:
            self._left, self._done = 0, True
        elif coding:
            if coding[-1] != "chunked":     # to the end of the connection
                self._keep = False
            else:
                self._chunked, self._left = True, 0
            if length is not None:          # both: chunked wins, but such an answer may be
                self._keep = False          # a smuggling attempt (RFC 9112 §6.3): not reused
        elif length is not None:
            values = {v.strip() for one in length for v in one.split(",")}
            if len(values) != 1 or not _digits(next(iter(values))):
                raise http.client.HTTPException(f"bad Content-Length {length!r}")
            self.size = self._left = int(values.pop())
            self._done = self._left == 0
        else:
            self._keep = False             # to the end of the connection

    def read(self, n: int) -> bytes:
        try:
            return self._read(n)
        except (TimeoutError, socket.timeout) as exc:
            raise TransferError(f"reading {self._url}: stalled: no data for "
                                f"{self._pool.timeout:g}s (timeout)") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransferError(f"reading {self._url}: {exc.__class__.__name__}: "
                                f"{exc}") from exc

    def _read(self, n: int) -> bytes:
        if self._done or self._conn is None or n <= 0:
            return b""
        conn = self._conn
        if self._chunked:
            if self._left == 0:
                if not self._next_chunk():
                    return b""
            data = conn.recv(min(n, self._left))
            if not data:
                raise http.client.IncompleteRead(b"", self._left)
            self._left -= len(data)
            if self._left == 0:
                if conn.line():             # the CRLF ending the chunk
                    raise http.client.HTTPException("chunk not ended by CRLF")
            return data
        if self._left is None:             # up to the end of the connection
            try:
                data = conn.recv(n)
            except ssl.SSLEOFError as exc:  # (TLS: an end without close_notify)
                raise http.client.HTTPException(
                    "the TLS connection ended without close_notify: the body, framed by "
                    "the end of the connection, may be cut short") from exc
            if not data:
                self._done = True
            return data
        want = min(n, self._left)
        data = conn.more(want) if want > RECV else conn.recv(want)
        if not data:
            raise http.client.IncompleteRead(b"", self._left)
        self._left -= len(data)
        if self._left == 0:
            self._done = True
        return data

    def _next_chunk(self) -> bool:
        """The next chunk's size read (True), or the last chunk and the
        trailers (False: the body is over)."""
        conn = self._conn
        size = conn.line().split(b";", 1)[0].strip()
        if not size or size.strip(b"0123456789abcdefABCDEF") or len(size) > 16:
            raise http.client.HTTPException(f"bad chunk size {size[:20]!r}")
        self._left = int(size, 16)
        if self._left:
            return True
        trailers = 0
        while line := conn.line():         # trailers, up to an empty line
            trailers += len(line) + 2
            if trailers > HEAD_MAX:
                raise http.client.LineTooLong("trailers")
        self._done = True
        return False

    def close(self) -> None:
        if self._conn is None:
            return
        self._conn.busy = False
        if not (self._done and self._keep) or \
                (self._conn.leftover() and not self._conn.next_answer()):
            # the rest is never read, no keep-alive, or bytes no answer asked
            # for came (with requests written ahead, the next answer's may)
            self._pool.discard(self._key, self._conn)
        self._conn = None


class Connections:
    """The kept connections, by (host, port, ssl context or None): at most
    KEPT_MAX, those idle the longest closed to make room.

    ``plan`` names the GETs about to be asked, in their order: each
    connection then has up to AHEAD of them written ahead of their turn
    (HTTP/1.1 pipelining), so that the server works on the next answers
    while this one is read. An answer is only ever read for the oldest
    request written on its connection: a GET asked out of the planned
    order closes the connection (the answers written ahead are dropped),
    and the plan goes on from that GET (those planned before it: skipped).
    The requests written ahead on a connection that goes (closed by the
    server, failed) are written again on the next one."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._conns: dict[tuple[str, int, ssl.SSLContext | None], _Conn] = {}
        self._plans: dict[tuple[str, int, ssl.SSLContext | None], deque[bytes]] = {}

    @staticmethod
    def _key(hostport: str, tls: ssl.SSLContext | None):
        if tls is None:
            host, port = host_port(hostport, 80, "http")
        else:
            host, port = host_port(hostport, 443, "https")
        return host, port, tls

    def plan(self, gets: list[tuple[str, str, dict, "ssl.SSLContext | None"]]) -> None:
        """The GETs (hostport, path, headers, tls) to be asked next, in order
        (a plan made before replaces the one before it: the connections with
        requests written ahead for it go, their answers never to be read).
        Never raises: a GET that cannot be written is left to its turn."""
        self._plans.clear()
        for key in [k for k, c in self._conns.items() if c.sent]:
            self._conns[key].sent.clear()
            self.discard(key)
        for hostport, path, headers, tls in gets:
            if _CONTROL.search(path):
                continue                     # (refused when asked)
            try:
                _check_host(hostport, path)
                key = self._key(hostport, tls)
                req = _request(host_field(key[0], key[1], tls is not None), path, headers)
            except (http.client.InvalidURL, TransferError, ValueError):
                continue                     # (refused when asked)
            self._plans.setdefault(key, deque()).append(req)

    def _ahead(self, key, conn: _Conn) -> list[bytes]:
        """The planned requests to write now on ``conn`` (up to AHEAD in all)."""
        planned = self._plans.get(key)
        out: list[bytes] = []
        while planned and len(conn.sent) < AHEAD:
            req = planned.popleft()
            conn.sent.append(req)
            out.append(req)
        return out

    def get(self, url: str, hostport: str, path: str, headers: dict,
            tls: ssl.SSLContext | None = None):
        """GET ``path`` of ``hostport`` (``url``: for messages), over TLS
        with the context ``tls`` (https), else plain: (status, reason,
        Body). TlsRefused, other OSError, HTTPException on failure."""
        if _CONTROL.search(path):
            raise http.client.InvalidURL(f"control characters in the path of {url!r}")
        _check_host(hostport, url)
        # (the context itself is in the key: kept alive by it, never mistaken for another)
        key = self._key(hostport, tls)
        host, port = key[0], key[1]
        req = _request(host_field(host, port, tls is not None), path, headers)
        written = False                      # this request written ahead already
        conn = self._conns.get(key)
        if conn is not None and conn.busy:   # an answer's body still open on it:
            self.discard(key)                # never the start of this one's
            self._plans.pop(key, None)
            conn = None
        if conn is not None and conn.sent:
            if conn.sent[0] == req:
                conn.sent.popleft()
                written = True
            else:                            # another answer comes next: not ours
                self.discard(key)            # (what it had written ahead: planned again)
        if not written:
            planned = self._plans.get(key)
            if planned and req in planned:   # those planned before it: skipped
                while planned.popleft() != req:
                    pass
        for attempt in (1, 2):
            conn = self._conns.get(key)
            fresh = conn is None
            try:
                if fresh:
                    self._make_room()
                    conn = self._conns[key] = _Conn(host, port, self.timeout, tls)
                else:                        # (the most recently used: last)
                    self._conns[key] = self._conns.pop(key)
                out = [] if written else [req]
                out += self._ahead(key, conn)
                if out:
                    conn.sock.sendall(out[0] if len(out) == 1 else b"".join(out))
                for _ in range(INTERIM_MAX + 1):
                    answer = Answer(conn.head())
                    if answer.status >= 200 or answer.status == 101:
                        break                # (1xx: an interim answer, the real one follows)
                else:
                    raise http.client.HTTPException(
                        f"more than {INTERIM_MAX} interim (1xx) answers")
                if answer.status == 101:
                    raise http.client.HTTPException("unexpected 101 Switching Protocols")
            except _STALE:
                self.discard(key)
                if fresh or attempt == 2:
                    raise
                written = False              # (what was written ahead went with it)
                continue                     # closed while idle: once more, anew
            except BaseException:
                self.discard(key)
                raise
            try:
                body = Body(self, key, conn, answer, url, answer.status in _NO_BODY)
            except BaseException:
                self.discard(key)
                raise
            conn.busy = True
            return answer.status, answer.reason, body
        raise AssertionError("unreachable")

    def _make_room(self) -> None:
        """Below KEPT_MAX connections: those idle the longest closed."""
        if len(self._conns) < KEPT_MAX:
            return
        for key in [k for k, c in self._conns.items() if not c.busy]:
            self.discard(key)
            if len(self._conns) < KEPT_MAX:
                return

    def discard(self, key, conn: _Conn | None = None) -> None:
        """The connection of ``key`` closed (only if it is ``conn``, when given)."""
        if conn is not None and self._conns.get(key) is not conn:
            conn.close()
            return
        conn = self._conns.pop(key, None)
        if conn is not None:
            conn.close()
            if conn.sent:                    # written ahead, never to be read: planned again
                self._plans[key] = conn.sent + self._plans.get(key, deque())

    def close(self) -> None:
        for key in list(self._conns):
            self.discard(key)
        self._plans.clear()
