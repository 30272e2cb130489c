"""Shared pieces of the end-to-end flow tests (dd_post -> RabbitMQ -> dd_subscribe).

Not a test module: test_mirror.py, test_resilience.py and test_bad_input.py
import it. Tools run as subprocesses (tests.helpers); only the test's own
observers (report reader, raw publisher) use sarra's broker driver in-process.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

import pika

from sarra.broker import Outgoing, open_broker
from sarra.codec import decode
from tests.helpers import AMQP_URL, compare_trees, run_tool, stop_process, wait_for

BROKER = "amqp://guest@127.0.0.1/"       # what configs and command lines name
PASSWORD_MARKERS = ("guest:guest", ":guest@")


def sub_config(sarra_home, name: str, exchange: str, directory: Path, report_exchange: str,
               extra: str = "") -> Path:
    """A subscriber configuration: mirror everything of ``exchange`` under ``directory``."""
    return sarra_home.write_config("subscribe", name, (
        f"broker {BROKER}\n"
        f"exchange {exchange}\n"
        "subtopic #\n"
        "expire 10m\n"
        f"report_exchange {report_exchange}\n"
        "mirror on\n"
        "inflight .tmp\n"
        f"directory {directory}\n"
        f"{extra}"
        "accept .*\n"))


def declare(name: str) -> None:
    """``dd_subscribe declare NAME``: the queue exists before anything is posted."""
    run_tool("subscribe", "declare", name, timeout=60)


def dd_post(exchange: str, base_url: str, base_dir: Path | str, *paths,
            check: bool = True, extra: Iterable[str] = ()) -> subprocess.CompletedProcess:
    res = run_tool("post", "--post_broker", BROKER, "--post_exchange", exchange,
                   "--post_base_url", base_url, "--post_base_dir", str(base_dir),
                   *extra, *[str(p) for p in paths], check=check, timeout=120)
    assert_no_password(res.stdout + res.stderr, "dd_post output")
    return res


def assert_no_password(text: str, where: str) -> None:
    for marker in PASSWORD_MARKERS:
        assert marker not in text, f"password ({marker!r}) found in {where}"


def assert_logs_clean(*paths: Path) -> None:
    for p in paths:
        assert_no_password(Path(p).read_text(encoding="utf-8", errors="replace"), str(p))


def files_under(root: Path) -> list[str]:
    """Relative paths of the regular files (and symlinks) under root."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return out


def tmp_files(root: Path) -> list[str]:
    return [f for f in files_under(root) if f.endswith(".tmp")]


def wait_same_tree(src: Path, dst: Path, timeout: float, proc=None) -> None:
    """Wait until dst mirrors src exactly (every name, every byte)."""
    def done():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"subscriber exited {proc.returncode}:\n"
                                 + Path(proc.log).read_text(errors="replace")[-3000:])
        return compare_trees(src, dst) == []
    try:
        wait_for(done, timeout=timeout, interval=0.2, what=f"{dst} to mirror {src}")
    except AssertionError:
        diffs = compare_trees(src, dst)
        raise AssertionError(f"{len(diffs)} differences, first: {diffs[:10]}") from None


def stop(proc) -> str:
    """SIGTERM a foreground subscriber, check it exits 0, return its log text."""
    rc = stop_process(proc, signal.SIGTERM, timeout=20)
    text = Path(proc.log).read_text(encoding="utf-8", errors="replace")
    assert rc == 0, f"subscriber exited {rc}:\n{text[-3000:]}"
    return text


class Tap:
    """A private queue bound to an exchange, to watch what flows there
    (log messages on the report exchange, posts on the post exchange)."""

    def __init__(self, exchange: str, key: str, name: str, url: str = AMQP_URL):
        self.exchange, self.queue = exchange, name
        self.broker = open_broker(url)
        self.broker.declare_exchange(exchange)
        self.broker.declare_queue(name, durable=False, expire_s=300)
        self.broker.bind(name, exchange, key)
        self.broker.consume(name, 1000)
        self.messages: list = []
        self.raw: list = []         # the deliveries, as they came

    def poll(self, timeout: float = 0.2) -> list:
        """Read what has arrived (up to ``timeout`` seconds of waiting), decoded."""
        deliveries = self.broker.get(timeout)
        for d in deliveries:
            self.raw.append(d)
            self.messages.append(decode(d.topic, d.headers, d.body, d.content_type, d.exchange))
        if deliveries:
            self.broker.ack([d.tag for d in deliveries])
        return self.messages

    def wait(self, predicate, timeout: float, what: str):
        """Poll until ``predicate(messages)`` is truthy."""
        wait_for(lambda: predicate(self.poll()), timeout=timeout, interval=0.01, what=what)
        return self.messages

    def wait_count(self, n: int, timeout: float) -> list:
        return self.wait(lambda ms: len(ms) >= n, timeout, f"{n} messages on {self.exchange}")

    def settle(self, quiet: float = 1.0) -> list:
        """Keep reading until nothing new arrives for ``quiet`` seconds."""
        last, seen = time.monotonic(), len(self.messages)
        while time.monotonic() - last < quiet:
            self.poll(0.2)
            if len(self.messages) != seen:
                seen, last = len(self.messages), time.monotonic()
        return self.messages

    def close(self) -> None:
        try:
            self.broker.delete_queue(self.queue)
        finally:
            self.broker.close()


def codes_by_relpath(reports) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for r in reports:
        out.setdefault(r.relpath, Counter())[r.report.code] += 1
    return out


def publish_raw(exchange: str, topic: str, body: str | bytes, headers: dict | None) -> None:
    """Publish one hand-made message (no codec involved), with a confirm."""
    b = open_broker(AMQP_URL)
    try:
        b.declare_exchange(exchange)
        b.publish(Outgoing(exchange, topic, headers or {}, body))
        b.flush(10)
    finally:
        b.close()


def queue_consumers(queue: str) -> int:
    """How many consumers the broker sees on ``queue`` (passive declare; 0
    while the queue does not exist yet)."""
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        conn.close()


def exchanges(*names: str, binds=(), vhost: str = "/", delete: bool = False) -> None:
    """Declare (or delete) topic exchanges, and exchange-to-exchange bindings
    ``(destination, source, key)``, as dd_audit would, in ``vhost``."""
    from urllib.parse import quote
    conn = pika.BlockingConnection(pika.URLParameters(
        f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"))
    try:
        ch = conn.channel()
        for n in names:
            if delete:
                ch.exchange_delete(n)
            else:
                ch.exchange_declare(n, "topic", durable=True)
        for dest, src, key in ([] if delete else binds):
            ch.exchange_bind(dest, src, key)
    finally:
        conn.close()


def delete_queues(*names: str) -> None:
    b = open_broker(AMQP_URL)
    try:
        for n in names:
            try:
                b.delete_queue(n)
            except Exception:
                pass
    finally:
        b.close()


def qname(sarra_home, name: str) -> str:
    """The queue name the subscriber config ``name`` saved in its state dir."""
    path = sarra_home.state_dir / "subscribe" / name / f"subscribe.{name}.guest.qname"
    return path.read_text().strip()


class SlowHTTPServer:
    """A plain HTTP server (Python's http.server: no Range support) that
    waits ``delay`` seconds before answering each GET, serving ``root``.
    nginx cannot do this per request (limit_rate lets the first second's
    worth of bytes through at once, so small files are never slowed)."""

    def __init__(self, root: Path, delay: float):
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                time.sleep(server.delay)
                server.gets += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.delay, self.gets = delay, 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                         functools.partial(Handler, directory=str(root)))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- fixtures
# (import them into a test module to use them: ``from tests.integration.flowkit import taps``)

import pytest  # noqa: E402


@pytest.fixture
def slow_http():
    """Factory ``slow_http(root, delay) -> SlowHTTPServer``; stopped at teardown."""
    servers: list[SlowHTTPServer] = []

    def make(root, delay: float) -> SlowHTTPServer:
        servers.append(SlowHTTPServer(Path(root), delay))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def taps():
    """Factory ``taps(exchange, key='v02.report.#') -> Tap``; queues deleted at teardown.
    Also collects subscriber queue names appended to ``taps.queues``."""
    made: list[Tap] = []
    queues: list[str] = []

    def make(exchange: str, key: str = "v02.report.#") -> Tap:
        tap = Tap(exchange, key, f"q_test_tap.{os.getpid()}.{len(made)}.{time.monotonic_ns()}")
        made.append(tap)
        return tap

    make.queues = queues  # type: ignore[attr-defined]
    yield make
    for tap in made:
        try:
            tap.close()
        except Exception:
            pass
    if queues:
        delete_queues(*queues)
