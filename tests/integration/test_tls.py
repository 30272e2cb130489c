"""TLS against real servers: the session's private RabbitMQ node over its
TLS listener (amqps, the management API over https) and nginx over https,
their certificates from the session's test CA (tests/conftest.py test_ca).
Verification is on unless the test turns it off; a certificate that does
not verify is refused at once (no retry), the error naming the server."""
from __future__ import annotations

import os
import socket
import ssl
import threading
import time

import pika
import pytest

from sarra.broker.management import QueueDepth
from sarra.errors import TransferError
from sarra.tls import TlsPolicy
from sarra.transfer.http import HttpTransfer
from tests.helpers import run_tool
from tools.testca import make_ca


pytestmark = pytest.mark.rabbit_nodes("a")       # the node fixture's


@pytest.fixture(scope="module")
def node(rabbit_node):
    return rabbit_node("a")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """Another CA, which signed nothing the servers present."""
    return make_ca(tmp_path_factory.mktemp("stranger"), "a CA nobody uses")


def _queue_on(node, exchange: str) -> str:
    """A queue bound to all of ``exchange`` (declared), over the plain port."""
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange, "topic", durable=True)
        queue = ch.queue_declare("", arguments={"x-expires": 120_000}).method.queue
        ch.queue_bind(queue, exchange, "#")
    finally:
        conn.close()
    return queue


def _take(node, queue: str) -> list[bytes]:
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    try:
        ch, bodies = conn.channel(), []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)
    finally:
        conn.close()


def _post(sarra_home, node, tree, *options, check=True):
    return run_tool("post", "--post_broker", node.amqps_url("guest", None),
                    "--post_exchange", "xs_tls_test", "--post_base_url", "https://127.0.0.1/",
                    "--post_base_dir", tree, *options, tree / "f.dat", env=sarra_home.env,
                    timeout=30, check=check)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "f.dat").write_bytes(os.urandom(5000))
    return tmp_path / "tree"


def test_post_over_amqps_with_the_ca_of_the_credentials_line(sarra_home, node, test_ca, tree):
    queue = _queue_on(node, "xs_tls_test")
    sarra_home.add_credentials(f"{node.amqps_url()} ca_file={test_ca.ca_file}")
    out = _post(sarra_home, node, tree)
    assert "posted 1 of 1 files" in out.stdout + out.stderr
    assert b"f.dat" in b"".join(_take(node, queue))
    # the option does as well, for a line without ca_file=; localhost is in the certificate
    sarra_home.credentials.write_text(node.amqps_url(host="localhost") + "\n")
    run_tool("post", "--post_broker", node.amqps_url("guest", None, host="localhost"),
             "--post_exchange", "xs_tls_test", "--post_base_url", "https://127.0.0.1/",
             "--post_base_dir", tree, "--ca_file", test_ca.ca_file, tree / "f.dat",
             env=sarra_home.env, timeout=30)
    assert len(_take(node, queue)) == 1


@pytest.mark.parametrize("trust", ["system", "stranger"])
def test_a_broker_whose_certificate_does_not_verify_is_refused_at_once(
        sarra_home, node, tree, stranger, trust):
    sarra_home.add_credentials(node.amqps_url() + (
        f" ca_file={stranger.ca_file}" if trust == "stranger" else ""))
    started = time.monotonic()
    out = _post(sarra_home, node, tree, check=False)
    assert out.returncode == 1, out.stderr
    assert time.monotonic() - started < 15          # not retried
    err = out.stderr
    assert f"amqps://127.0.0.1:{node.amqps_port}/: the server's certificate does not " \
           "verify" in err, err
    assert ("the system's trusted CAs" if trust == "system" else str(stranger.ca_file)) in err
    assert "ca_file" in err and "guest:guest" not in err and "reconnecting" not in err


def test_a_daemon_refused_by_the_certificate_stops_instead_of_spinning(sarra_home, node):
    sarra_home.add_credentials(node.amqps_url())
    sarra_home.write_config("subscribe", "tls", f"broker {node.amqps_url('guest', None)}\n"
                                                "directory /tmp\n")
    started = time.monotonic()
    out = run_tool("subscribe", "foreground", "tls", env=sarra_home.env, timeout=60,
                   check=False)
    assert out.returncode == 1 and time.monotonic() - started < 20, out.stderr[-2000:]
    assert "certificate does not verify" in out.stderr
    assert out.stderr.count("certificate does not verify") == 1      # told once


def test_tls_verify_off_posts_and_warns_at_start(sarra_home, node, tree):
    queue = _queue_on(node, "xs_tls_test")
    sarra_home.add_credentials(node.amqps_url())
    for spelling in (("--tls_verify", "off"), ("--tlsRigour", "lax")):
        out = _post(sarra_home, node, tree, *spelling)
        assert "[WARNING]" in out.stderr and "tls_verify off" in out.stderr, out.stderr
        assert f"amqps://127.0.0.1:{node.amqps_port}/" in out.stderr.split("tls_verify off")[1]
    assert len(_take(node, queue)) == 2


def _wrong_name_server(cert, key) -> tuple[int, threading.Thread]:
    """A TLS server on loopback presenting ``cert`` to one client (its
    handshake is all there is to it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def serve():
        with sock:
            conn, _ = sock.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass            # the client gave up: what the test wants
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


def test_a_certificate_for_another_host_is_refused(sarra_home, test_ca, tree):
    cert, key = test_ca.issue("elsewhere", ("elsewhere.example",))
    port, thread = _wrong_name_server(cert, key)
    sarra_home.add_credentials(f"amqps://guest:guest@127.0.0.1:{port}/ ca_file={test_ca.ca_file}")
    out = run_tool("post", "--post_broker", f"amqps://guest@127.0.0.1:{port}/",
                   "--post_base_url", "https://127.0.0.1/", "--post_base_dir", tree,
                   tree / "f.dat", env=sarra_home.env, timeout=30, check=False)
    thread.join(10)
    assert out.returncode == 1
    assert "certificate does not verify" in out.stderr and "127.0.0.1" in out.stderr, out.stderr
    assert "mismatch" in out.stderr.lower() or "not valid for" in out.stderr, out.stderr


def test_https_download_verified_against_the_ca(nginx, test_ca, stranger, tmp_path):
    data = os.urandom(70_000)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.dat").write_bytes(data)
    web = nginx(tmp_path / "www", workers=1, https=True)
    url = web.url + "f.dat"
    good = HttpTransfer(timeout=10, tls=TlsPolicy(ca_file=str(test_ca.ca_file)))
    stream = good.open(url)
    got = b""
    while chunk := stream.read(65536):
        got += chunk
    stream.close()
    good.close()
    assert got == data
    for policy in (TlsPolicy(), TlsPolicy(ca_file=str(stranger.ca_file))):
        bad = HttpTransfer(timeout=10, tls=policy)
        with pytest.raises(TransferError) as err:
            bad.open(url)
        bad.close()
        assert not err.value.recoverable
        assert f"GET {url}: {web.url}: the server's certificate does not verify" in str(err.value)
    off = HttpTransfer(timeout=10, tls=TlsPolicy(verify=False))
    assert off.open(url).read(10) == data[:10]
    off.close()


def test_management_api_over_https(node, test_ca):
    queue = _queue_on(node, "xs_tls_test")
    broker = node.amqps_url()
    depth = QueueDepth.of(broker, queue, node.management_https_url,
                          tls=TlsPolicy(ca_file=str(test_ca.ca_file)))
    assert depth.read() == 0, depth.why
    depth.close()
    untrusted = QueueDepth.of(broker, queue, node.management_https_url, tls=TlsPolicy())
    assert untrusted.read() is None and "certificate does not verify" in untrusted.why
    untrusted.close()


@pytest.mark.parametrize("scheme", ["mqtts", "wss"])
def test_mqtts_and_wss_brokers_verified(rabbit_mqtt, test_ca, stranger, scheme, unique):
    """The MQTT driver over TLS, on RabbitMQ's MQTT plugin TLS listener
    (mqtts) and its web-MQTT TLS listener (wss: websockets through an
    HTTPS port): the test CA accepted and a message goes round, tls_verify
    off accepted, another CA refused for good."""
    from sarra.broker import Outgoing, make_broker
    from sarra.errors import BrokerError
    from tests.integration.conftest import RABBIT_MQTT_USERS
    pw = RABBIT_MQTT_USERS["alice"]
    if scheme == "mqtts":
        url, port = rabbit_mqtt.mqtts_url("alice", pw), rabbit_mqtt.mqtts_port
    else:
        url, port = rabbit_mqtt.wss_url("alice", pw), rabbit_mqtt.web_mqtts_port
    queue, body = f"q_alice.tls_{scheme}_{unique}", f"over {scheme} {unique}".encode()
    broker = make_broker(url, tls=TlsPolicy(ca_file=str(test_ca.ca_file)))
    broker.connect()
    try:
        broker.declare_queue(queue, expire_s=300)
        broker.bind(queue, "xs_alice", f"v03.post.{scheme}.#")
        broker.consume(queue, 10)
        broker.publish(Outgoing("xs_alice", f"v03.post.{scheme}.x", {}, body))
        broker.flush(10)
        got, deadline = [], time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = broker.get(0.5)
        assert [d.body for d in got] == [body] and got[0].topic == f"v03.post.{scheme}.x"
        broker.ack([d.tag for d in got])
        broker.delete_queue(queue)
    finally:
        broker.close()
    broker = make_broker(url, tls=TlsPolicy(verify=False))
    broker.connect()
    broker.close()
    broker = make_broker(url, tls=TlsPolicy(ca_file=str(stranger.ca_file)))
    with pytest.raises(BrokerError) as err:
        broker.connect()
    assert not err.value.recoverable
    assert f"{scheme}://127.0.0.1:{port}/: the server's certificate does not " \
           "verify" in str(err.value) and pw not in str(err.value)


def test_ftps_honours_the_policy(ftpsd):
    """FTPS (vsftpd, its own test CA): verified against the credentials
    line's ca_file=, else the option's CA; tls_verify off takes any."""
    from sarra.config.credentials import Credentials
    from sarra.transfer.ftp import FtpTransfer
    (ftpsd.root / "tls.txt").write_bytes(b"over ftps\n")
    bare = Credentials.from_text(ftpsd.credentials.split(" ca_file=")[0])
    url = ftpsd.url + "tls.txt"
    for policy in (TlsPolicy(credentials=Credentials.from_text(ftpsd.credentials)),
                   TlsPolicy(ca_file=str(ftpsd.ca_file), credentials=bare),
                   TlsPolicy(verify=False, credentials=bare)):
        ftp = FtpTransfer(timeout=10, credentials=policy.credentials, tls=policy)
        stream = ftp.open(url)
        assert stream.read(100) == b"over ftps\n"
        stream.close()
        ftp.close()
    ftp = FtpTransfer(timeout=10, credentials=bare, tls=TlsPolicy(credentials=bare))
    with pytest.raises(TransferError) as err:
        ftp.open(url)
    ftp.close()
    assert not err.value.recoverable and "certificate does not verify" in str(err.value)
