"""The first hour against the real RabbitMQ (127.0.0.1:5672): dd_post's
posts that reach no queue come back and it warns naming the exchange; a
refused login names the user, the broker and the credentials file, never
the password; dd_log cleanup deletes its queue; a subscriber bound to an
exchange that does not exist, and that its user may not create, says what
creates exchanges."""
from __future__ import annotations

import pika

from tests.helpers import AMQP_URL, run_tool
from tests.integration.flowkit import (BROKER, dd_post, delete_queues, exchanges, taps)

__all__ = ["taps"]


def _queue_exists(name: str) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        conn.close()


def test_posts_that_reach_no_queue_are_told_naming_the_exchange(sarra_home, unique, taps,
                                                                 tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(3):
        (src / f"f{n}.txt").write_text(f"file {n}\n")
    ex = f"xt_{unique}"
    res = dd_post(ex, f"file:{src}/", src, src)          # nobody bound to it yet
    assert res.returncode == 0 and "posted 3 of 3 files" in res.stdout, res.stderr
    assert (f"3 posts to exchange {ex} reached no queue: no queue is bound to {ex} with "
            "their topic") in res.stderr, res.stderr
    assert "they are lost" in res.stderr
    posts = taps(ex, "v02.post.#")                        # now a queue takes them
    res = dd_post(ex, f"file:{src}/", src, src / "f0.txt")
    assert res.returncode == 0 and "reached no queue" not in res.stderr, res.stderr
    posts.wait_count(1, 10)


def test_a_refused_login_names_user_broker_and_credentials_file(sarra_home, unique, tmp_path):
    user, password = f"nosuch_{unique}", f"Pw{unique}x"
    sarra_home.add_credentials(f"amqp://{user}:{password}@127.0.0.1/")
    sarra_home.write_config("subscribe", "refused", (
        f"broker amqp://{user}@127.0.0.1/\nexchange xs_{unique}\ndirectory {tmp_path}\n"
        "accept .*\n"))
    res = run_tool("subscribe", "foreground", "refused", check=False, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    creds = sarra_home.config_dir / "credentials.conf"
    assert (f"login refused for user '{user}' on broker amqp://127.0.0.1:5672 (vhost /): the "
            f"password is wrong or the user is unknown there ({creds} was read; its line for "
            f"amqp://{user}@127.0.0.1/ holds the password)") in res.stderr, out
    assert "ACCESS_REFUSED" in res.stderr
    assert password not in out


def test_dd_log_cleanup_deletes_its_queue(sarra_home, unique, tmp_path):
    ex = f"xr_{unique}"
    exchanges(ex)
    name = f"mine_{unique}"
    sarra_home.write_config("log", name, f"broker {BROKER}\nexchange {ex}\n")
    res = run_tool("log", name, check=False, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    queue = (sarra_home.state_dir / "log" / name / f"log.{name}.guest.qname").read_text().strip()
    assert _queue_exists(queue)
    res = run_tool("log", "cleanup", name, check=False, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"deleted queue {queue} and the state of log/{name}" in res.stdout
    assert not _queue_exists(queue)
    assert not (sarra_home.state_dir / "log" / name).exists()
    exchanges(ex, delete=True)


def test_binding_to_an_exchange_that_does_not_exist_says_what_creates_it(
        sarra_home, unique, rabbitmq_ctl, tmp_path):
    user, password = f"bob_{unique}", f"Pw{unique}y"
    rabbitmq_ctl.run("add_user", user, password)
    try:
        # bob may create his own queues, not exchanges
        rabbitmq_ctl.run("set_permissions", "-p", "/", user, f"^q_{user}.*", ".*", ".*")
        sarra_home.add_credentials(f"amqp://{user}:{password}@127.0.0.1/")
        missing = f"xnope_{unique}"
        sarra_home.write_config("subscribe", "nope", (
            f"broker amqp://{user}@127.0.0.1/\nexchange {missing}\nexpire 1m\n"
            f"directory {tmp_path}\naccept .*\nreport_back off\n"))
        res = run_tool("subscribe", "foreground", "nope", check=False, timeout=60)
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert (f"exchange {missing} does not exist on amqp://{user}:***@127.0.0.1/, and this "
                "user may not create it: exchanges are created by 'declare'") in res.stderr, out
        assert "[WARNING]" in res.stderr and "dd_audit" in res.stderr
        assert password not in out
    finally:
        rabbitmq_ctl.run("delete_user", user, check=False)
        qfile = sarra_home.state_dir / "subscribe" / "nope" / f"subscribe.nope.{user}.qname"
        if qfile.exists():
            delete_queues(qfile.read_text().strip())
