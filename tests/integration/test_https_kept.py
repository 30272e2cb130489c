"""HTTPS downloads on sarra's own kept connections
(sarra/transfer/httpconn.py), not requests: many files and byte ranges on
one TLS connection (nginx counts the connections it accepted: one, one
handshake), the connections kept apart by server, port and TLS setting,
and the refusals (another CA, the system's CAs, a certificate for another
host) reported word for word as requests' path reports them (its DELETE,
the same transfer); tls_verify off still takes them. Over a scripted TLS
server: what must drop a kept connection (bytes beyond the answer, a
connection closed while idle) and a handshake cut off (an outage, not a
refusal). nginx's certificates come from the session's test CA
(tests/conftest.py test_ca)."""
from __future__ import annotations

import os
import socket
import shutil
import ssl
import urllib.request

import pytest

from sarra.config.credentials import Credentials
from sarra.errors import TransferError
from sarra.tls import TlsPolicy
from sarra.transfer.http import HttpTransfer
from sarra.transfer.httpconn import Connections
from tests.unit.test_httpconn import Server, fetch, ok
from tools.testca import make_ca

STATUS = "location = /_nginx_status { stub_status; }\n"


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """Another CA, which signed nothing the servers present."""
    return make_ca(tmp_path_factory.mktemp("stranger"), "a CA nobody uses")


def accepted(web, ca) -> int:
    """The connections nginx has accepted so far (stub_status; this probe's
    own included)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(web.url + "_nginx_status", context=ctx, timeout=10) as r:
        return int(r.read().decode().splitlines()[2].split()[0])


def read(t, url, offset=0, length=None) -> bytes:
    body = t.open(url, offset, length)
    got = b""
    try:
        while chunk := body.read(65536):
            got += chunk
    finally:
        body.close()
    return got if length is None else got[:length]


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "www"
    (root / "d").mkdir(parents=True)
    data = {f"d/f{i:03d}.dat": os.urandom(4096) for i in range(60)}
    data["big.dat"] = os.urandom(300_000)
    for rel, blob in data.items():
        (root / rel).write_bytes(blob)
    return root, data


def test_many_https_files_and_ranges_go_on_one_kept_tls_connection(nginx, test_ca, files):
    root, data = files
    web = nginx(root, workers=1, https=True,
                extra=STATUS + "location = /moved { return 302 /big.dat; }")
    t = HttpTransfer(timeout=10, tls=TlsPolicy(ca_file=str(test_ca.ca_file)))
    before = accepted(web, test_ca.ca_file)
    for rel in sorted(data):
        assert read(t, web.url + rel) == data[rel]
    assert read(t, web.url + "big.dat", 1000, 5000) == data["big.dat"][1000:6000]
    assert read(t, web.url + "big.dat", 299_000) == data["big.dat"][299_000:]
    assert accepted(web, test_ca.ca_file) - before - 1 == 1       # one connection: one handshake
    (key,) = t._kept._conns
    conn = t._kept._conns[key]
    assert isinstance(conn.sock, ssl.SSLSocket) and conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert conn.sock.context.verify_mode == ssl.CERT_REQUIRED and conn.sock.context.check_hostname
    assert key[:2] == ("127.0.0.1", web.port) and key[2] is conn.sock.context
    assert not t._session.adapters["https://"].poolmanager.pools   # requests: not used
    gets = [r for r in web.requests() if r["method"] == "GET" and "_nginx" not in r["path"]]
    assert len(gets) == len(data) + 2
    assert [r["range"] for r in gets[-2:]] == ["bytes=1000-5999", "bytes=299000-"]
    assert [r["status"] for r in gets[-2:]] == [206, 206]
    # a redirection: requests follows it, verified against the same CA
    assert read(t, web.url + "moved") == data["big.dat"]
    assert t._session.adapters["https://"].poolmanager.pools
    # the kept connection dies with the server: a new one for the same request
    web.stop()
    web.start_again()
    assert read(t, web.url + "d/f000.dat") == data["d/f000.dat"]
    assert len(t._kept._conns) == 1
    t.close()
    assert not t._kept._conns


def test_connections_are_kept_apart_by_server_port_and_tls_setting(nginx, test_ca, files,
                                                                   tmp_path):
    """A connection made under one context (CA file, verification) is never
    taken for another, nor a plain one for https: each is its own, at
    nginx too. A transfer makes one context per CA file, whichever server."""
    root, data = files
    web = nginx(root, workers=1, https=True, extra=STATUS)
    other = nginx(root, workers=1, https=True, extra=STATUS)
    copy = tmp_path / "same-ca.crt"
    shutil.copy(test_ca.ca_file, copy)
    url = web.url + "d/f001.dat"
    contexts = [TlsPolicy(ca_file=str(test_ca.ca_file)).context(url),
                TlsPolicy(ca_file=str(copy)).context(url), TlsPolicy(verify=False).context(url)]
    pool = Connections(10)
    where = f"127.0.0.1:{web.port}"
    before = accepted(web, test_ca.ca_file)
    for _ in range(3):
        for ctx in contexts:
            status, _, body = pool.get(url, where, "/d/f001.dat", {}, ctx)
            assert status == 200 and body.read(65536) == data["d/f001.dat"]
            body.close()
    assert accepted(web, test_ca.ca_file) - before - 1 == 3
    assert {k[2] for k in pool._conns} == set(contexts)
    # plain http to the https port: a connection of its own (nginx's 400), not a TLS one
    status, _, body = pool.get(url, where, "/d/f001.dat", {})
    body.read(65536)
    body.close()
    assert status == 400 and len(pool._conns) <= 4
    assert {k[2] for k in pool._conns} - {None} == set(contexts)
    pool.close()
    # in a transfer: the credentials line's CA for one server, the option's for the other
    creds = Credentials.from_text(f"https://127.0.0.1:{other.port}/ ca_file={copy}\n")
    t = HttpTransfer(timeout=10, credentials=creds,
                     tls=TlsPolicy(ca_file=str(test_ca.ca_file), credentials=creds))
    for _ in range(2):
        assert read(t, web.url + "d/f002.dat") == data["d/f002.dat"]
        assert read(t, other.url + "d/f002.dat") == data["d/f002.dat"]
    assert sorted(k[1] for k in t._kept._conns) == sorted([web.port, other.port])
    by_port = {k[1]: k[2] for k in t._kept._conns}
    assert by_port[web.port] is not by_port[other.port] and len(t._contexts) == 2
    t.close()


def _refusal(policy, url) -> tuple[TransferError, TransferError]:
    """The refusals of a GET (the kept connection) and of a DELETE
    (requests: how every https refusal read before) of ``url``."""
    t = HttpTransfer(timeout=10, tls=policy)
    try:
        with pytest.raises(TransferError) as got:
            t.open(url)
        assert not t._kept._conns                  # nothing kept of a refused server
        with pytest.raises(TransferError) as deleted:
            t.remove(url)
    finally:
        t.close()
    return got.value, deleted.value


@pytest.mark.parametrize("case", ["system CAs", "another CA", "another host's certificate",
                                  "another host's certificate, by name"])
def test_refusals_read_as_requests_reported_them(nginx, test_ca, stranger, files, case):
    root, data = files
    if case.startswith("another host"):
        web = nginx(root, workers=1, https=test_ca.issue("elsewhere", ("elsewhere.example",)))
        policy = TlsPolicy(ca_file=str(test_ca.ca_file))
    else:
        web = nginx(root, workers=1, https=True)
        policy = TlsPolicy(ca_file=str(stranger.ca_file)) if case == "another CA" else TlsPolicy()
    base = web.url if not case.endswith("by name") else f"https://localhost:{web.port}/"
    url = base + "d/f003.dat"
    got, deleted = _refusal(policy, url)
    assert not got.recoverable and not deleted.recoverable
    assert str(deleted).startswith(f"DELETE {url}: ")
    assert str(got) == f"GET {url}: " + str(deleted)[len(f"DELETE {url}: "):]   # word for word
    assert f"GET {url}: {base}: the server's certificate does not verify against" in str(got)
    if case == "system CAs":
        assert "against the system's trusted CAs" in str(got)
    else:
        assert f"against the CA in {policy.ca_file}" in str(got)
    if case.startswith("another host"):
        assert "mismatch" in str(got), str(got)
        assert ("Hostname" if case.endswith("by name") else "IP address") in str(got)
    # tls_verify off takes it, on a kept connection too
    off = HttpTransfer(timeout=10, tls=TlsPolicy(verify=False))
    assert read(off, url) == data["d/f003.dat"] and read(off, url) == data["d/f003.dat"]
    (key,) = off._kept._conns
    assert key[2].verify_mode == ssl.CERT_NONE
    off.close()


# -- a scripted TLS server (tests/unit/test_httpconn.py's, its sockets wrapped) ----------

@pytest.fixture
def tls_serve(test_ca):
    made = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(test_ca.cert, test_ca.key)

    def start(*answers, wrap=None):
        s = Server(answers, wrap=wrap or (lambda c: ctx.wrap_socket(c, server_side=True)))
        made.append(s)
        return s
    yield start
    for s in made:
        s.close()


@pytest.fixture
def client(test_ca):
    return TlsPolicy(ca_file=str(test_ca.ca_file)).context("https://127.0.0.1/")


def tls_fetch(pool, server, ctx, path="/f", n=7):
    where = f"127.0.0.1:{server.port}"
    status, reason, body = pool.get(f"https://{where}{path}", where, path, {}, ctx)
    got = b""
    try:
        while chunk := body.read(n):
            got += chunk
    finally:
        body.close()
    return status, reason, body.size, got


def test_over_tls_one_connection_and_the_host_header(tls_serve, client):
    s = tls_serve(ok(b"first body"), ok(b"second"))
    pool = Connections(5)
    assert tls_fetch(pool, s, client) == (200, "OK", 10, b"first body")
    assert tls_fetch(pool, s, client, "/g") == (200, "OK", 6, b"second")
    assert s.connections == 1
    assert s.requests[1] == b"GET /g HTTP/1.1\r\nHost: 127.0.0.1:%d" % s.port
    pool.close()


def test_over_tls_bytes_beyond_the_answer_drop_the_connection(tls_serve, client):
    """More than the answer announced, in a TLS record of its own: what is
    left decrypted in the ssl socket counts as what is left in the buffer
    (the next answer is never read from it)."""
    def answer(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n")
        conn.sendall(b"closingHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforge")
    s = tls_serve(answer, ok(b"fresh"))
    pool = Connections(5)
    assert tls_fetch(pool, s, client)[3] == b"closing"
    assert not pool._conns
    assert tls_fetch(pool, s, client)[3] == b"fresh"
    assert s.connections == 2
    pool.close()


def test_over_tls_a_connection_closed_while_idle_is_opened_again_once(tls_serve, client):
    s = tls_serve(ok(b"one"), None, ok(b"two"))
    pool = Connections(5)
    assert tls_fetch(pool, s, client)[3] == b"one"
    assert tls_fetch(pool, s, client)[3] == b"two"
    assert s.connections == 2
    pool.close()


def test_a_handshake_cut_off_is_an_outage_not_a_refusal(tls_serve, test_ca):
    """A server that closes the connection during the handshake has not
    refused our certificate check: retried later, not reported as one."""
    def hang_up(conn):
        conn.close()
        raise OSError("hung up")
    s = tls_serve(ok(b"never"), ok(b"never"), wrap=hang_up)
    t = HttpTransfer(timeout=5, tls=TlsPolicy(ca_file=str(test_ca.ca_file)))
    with pytest.raises(TransferError) as err:
        t.open(f"https://127.0.0.1:{s.port}/f")
    t.close()
    assert err.value.recoverable and "does not verify" not in str(err.value), str(err.value)


@pytest.mark.parametrize("https", [False, True])
def test_files_asked_for_ahead_come_whole_and_in_order_through_the_downloader(
        nginx, test_ca, files, tmp_path, https):
    """A batch's small files asked for ahead of their turn (Downloader.ahead:
    HTTP/1.1 pipelining on the kept connection), every fifth one already in
    place (skipped: its answer written ahead is not read, so the connection
    goes and the files after it are asked anew): each file gets its own
    bytes, on few connections."""
    import hashlib
    from sarra.config import load_config
    from sarra.flow.filter import default_placement
    from sarra.flow.work import Downloader
    from sarra.message import Message
    root, data = files
    web = nginx(root, workers=1, https=https, extra=STATUS)
    dst = tmp_path / "mirror"
    cfg = load_config("subscribe", None, [("directory", str(dst)), ("mirror", "on"),
                                          ("ca_file", str(test_ca.ca_file))])
    dl = Downloader(cfg)
    names = sorted(n for n in data if n.startswith("d/"))
    msgs = []
    for i, rel in enumerate(names):
        blob = data[rel]
        if i % 5 == 4:
            (dst / "d").mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(blob)
        msgs.append(Message("20261204000000.000", web.url, rel, {
            "sum": "s," + hashlib.sha512(blob).hexdigest(),
            "parts": f"1,{len(blob)},1,0,0"}))
    before = accepted(web, test_ca.ca_file)
    dl.ahead(msgs)
    codes, ahead = [], []
    kept = dl._transfers["https" if https else "http"]._kept
    for m in msgs:
        target = dl.target(m, default_placement(cfg))
        codes.append(dl.apply(m, target).code)
        ahead.append(sum(len(c.sent) for c in kept._conns.values()))
    dl.close()
    assert ahead[0] > 1                      # the next ones were asked for already
    assert codes == [304 if i % 5 == 4 else 201 for i in range(len(names))]
    for rel in names:
        assert (dst / rel).read_bytes() == data[rel]
    # one connection, and one more after each skipped file (12 of 60)
    assert accepted(web, test_ca.ca_file) - before - 1 <= 1 + len(names) // 5


def _tcp_end(conn):
    """The TCP connection under ``conn`` ended (FIN) without TLS's
    close_notify: what anyone on the way can do to a connection."""
    raw = socket.socket(fileno=conn.detach())
    raw.shutdown(socket.SHUT_WR)
    raw.close()


def test_over_tls_a_body_to_the_end_of_the_connection_needs_close_notify(tls_serve, client):
    """No Content-Length, no chunks: the body ends with the connection. Over
    TLS, only the server's close_notify ends it; a bare TCP end (a FIN
    anyone on the way may send) is a cut, not the end of the file. A body
    with a Content-Length cut so fails as before."""
    def closed(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nthe whole body")
        try:                                       # close_notify, then the TCP end
            conn.unwrap().close()                  # (which waits for the client's end)
        except OSError:
            pass
    def cut(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nthe first part")
        _tcp_end(conn)
    def cut_short(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nthe first part")
        _tcp_end(conn)
    s = tls_serve(closed, cut, cut_short)
    pool = Connections(5)
    assert tls_fetch(pool, s, client) == (200, "OK", None, b"the whole body")
    for _ in (cut, cut_short):
        with pytest.raises(TransferError) as err:
            tls_fetch(pool, s, client)
        assert f"reading https://127.0.0.1:{s.port}/f: " in str(err.value)
        assert err.value.recoverable
        assert not pool._conns
    assert "close_notify" in str(err.value) or "EOF" in str(err.value), str(err.value)
    pool.close()


def test_a_name_with_its_final_dot_is_checked_without_it(tls_serve, test_ca, monkeypatch):
    """'localhost.' is 'localhost' written in full: requests (urllib3)
    checks the certificate, and sends SNI, without the dot; the kept
    connection refused it (Hostname mismatch, not retried)."""
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",       # (this machine's resolver: no final dot)
                        lambda host, *a, **k: real(host.rstrip("."), *a, **k))
    s = tls_serve(ok(b"dotted"), ok(b"again"))
    t = HttpTransfer(timeout=5, tls=TlsPolicy(ca_file=str(test_ca.ca_file)))
    try:
        url = f"https://localhost.:{s.port}/f"
        assert read(t, url) == b"dotted" and read(t, url) == b"again"
        assert s.connections == 1
        assert s.requests[0].startswith(b"GET /f HTTP/1.1\r\nHost: localhost.:%d" % s.port)
    finally:
        t.close()


@pytest.mark.parametrize("where", ["http://127.0.0.1:{port}/f", "HTTP://127.0.0.1:{port}/f",
                                   "//127.0.0.1:{port}/f"])
def test_a_redirection_from_https_to_plain_http_is_refused(tls_serve, test_ca, where):
    """An https URL's answer is the verified server's; its redirection to
    a plain-http URL (the kept connection hands redirections to requests,
    which follows them) would have the file come unauthenticated, for
    anyone on the way to change. Refused, not retried; nothing asked of
    the plain server. (A protocol-relative Location stays https.)"""
    from tests.unit.test_httpconn import Server
    plain = Server([ok(b"in clear"), ok(b"in clear")])
    location = where.format(port=plain.port).encode()
    moved = b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n" \
            b"Connection: close\r\n\r\n" % location
    s = tls_serve(moved, moved, ok(b"over tls"))
    t = HttpTransfer(timeout=2, tls=TlsPolicy(ca_file=str(test_ca.ca_file)))
    try:
        url = f"https://127.0.0.1:{s.port}/moved"
        if where.startswith("//"):    # (https://127.0.0.1:<plain port>/f: no TLS there)
            with pytest.raises(TransferError):
                t.open(url)
            return
        with pytest.raises(TransferError) as err:
            read(t, url)
        assert not err.value.recoverable and str(err.value).startswith(f"GET {url}: ")
        assert "plain" in str(err.value) and location.decode() in str(err.value)
        assert not plain.requests
    finally:
        t.close()
        plain.close()


def test_over_tls_a_big_read_stays_blocking_and_whole(tls_serve, client):
    """A big read (more than RECV) takes, on a plain socket, what the kernel
    holds without waiting (_Conn.more, 39fccfc); a TLS socket must never
    reach that branch: its non-blocking receive is SSLWantReadError, not
    BlockingIOError (the download failed), and its records are not the
    kernel's bytes. Each read blocking, with the pool's timeout, the body
    whole, the connection kept."""
    import time
    blob = os.urandom(3 << 20)

    def in_pieces(conn):                  # (the kernel empty now and then)
        answer = ok(blob)
        for at in range(0, len(answer), 200_000):
            conn.sendall(answer[at:at + 200_000])
            time.sleep(0.01)
    s = tls_serve(in_pieces, in_pieces)
    pool = Connections(5)
    where = f"127.0.0.1:{s.port}"
    for _ in range(2):
        status, _, body = pool.get(f"https://{where}/f", where, "/f", {}, client)
        got = bytearray()
        try:
            while chunk := body.read(1 << 20):
                got += chunk
                (conn,) = pool._conns.values()
                assert conn.sock.gettimeout() == 5
        finally:
            body.close()
        assert got == blob and len(pool._conns) == 1      # (kept: read to its end)
    pool.close()


@pytest.mark.parametrize("url", [
    "http://bob:s3cret@127.0.0.1:{port}/missing",       # 404, through requests (userinfo)
    "http://bob:s3cret@127.0.0.1:1/refused",            # no server there
    "https://bob:s3cret@127.0.0.1:{port}/not-tls",      # TLS to a plain server
])
def test_a_password_in_a_posted_url_is_in_no_failure_text(nginx, files, url, tmp_path):
    """A source may post a URL with a password in it: the failure's text,
    which the Downloader logs and sends back in log messages, shows it as
    ***, and so does what is chained to it (a traceback at debug level)."""
    import traceback
    from sarra.config import load_config
    from sarra.flow.work import Downloader
    root, _ = files
    web = nginx(root, workers=1)
    port = web.url.split(":")[2].split("/")[0]
    dl = Downloader(load_config("subscribe", None, [("directory", str(tmp_path / "d"))]))
    u = url.format(port=port)
    with pytest.raises(TransferError) as err:
        read(dl.transfer(u), u)
    assert "s3cret" not in str(err.value) and "bob:***@" in str(err.value)
    assert "s3cret" not in "".join(traceback.format_exception(err.value))
    dl.close()
