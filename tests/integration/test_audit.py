"""dd_audit against the real RabbitMQ (management API on 127.0.0.1:15672) and nginx.

Every test describes a switch of its own: unique user names (alice, bob:
sources; carol: subscriber; a feeder), passwords in the test's
credentials.conf, guest as the administrator. At teardown the users, their
exchanges and their queues are deleted; the switch's shared exchanges
(xpublic, xreport, xsarra, xreport_in) stay, as other tests use them too.

The security tests use the project's own AMQP driver, as the tools would.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sarra.broker import Outgoing, make_broker
from sarra.codec import decode, encode
from sarra.errors import BrokerError
from sarra.switch import XREPORT_IN, XSARRA, load_switch
from sarra.switch.command import main
from sarra.switch.plan import POST_KEY, REPORT_KEY, Binding, permissions
from sarra.switch.rabbit import ManagementApi
from tests.helpers import (AMQP_HOST, AMQP_PORT, free_port, port_open, run_tool, stop_process,
                           tail, wait_for)
from tests.integration.flowkit import stop

MGMT_URL = f"http://{AMQP_HOST}:15672/api"

SWITCH = """\
# a test switch
cluster: audit{unique}
broker: amqp://guest@{host}:{port}/   # the administrator
feeder: amqp://{feeder}@{host}:{port}/
data_dir: {data_dir}
base_url: http://{host}:8090/
users:
  {alice}: source     # posts
  {bob}: source
  {carol}: subscriber
links: []
"""


@dataclass
class AuditSwitch:
    path: Path
    alice: str
    bob: str
    carol: str
    feeder: str
    passwords: dict[str, str]
    api: ManagementApi
    drivers: list = field(default_factory=list)
    extra_users: list = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [self.alice, self.bob, self.carol, self.feeder, *self.extra_users]

    def url(self, user: str) -> str:
        return f"amqp://{user}:{self.passwords[user]}@{AMQP_HOST}:{AMQP_PORT}/"

    def broker(self, user: str):
        """A connected driver logged in as ``user`` (closed at teardown)."""
        broker = make_broker(self.url(user))
        broker.connect()
        self.drivers.append(broker)
        return broker

    def run(self, capsys, *args: str) -> tuple[int, list[str]]:
        """dd_audit ARGS -> (exit code, stdout lines)."""
        capsys.readouterr()
        rc = main(list(args))
        out = capsys.readouterr().out
        return rc, [line for line in out.splitlines() if line]

    def foreign(self, lines: list[str]) -> list[str]:
        """The lines about sarra-looking users other tests left on the shared broker."""
        return [line for line in lines if line.startswith("extra ")
                and not any(name in line for name in self.names)]


@pytest.fixture
def switch(sarra_home, tmp_path) -> AuditSwitch:
    tag = secrets.token_hex(3)
    names = {"alice": f"al{tag}", "bob": f"bo{tag}", "carol": f"ca{tag}",
             "feeder": f"fe{tag}"}
    passwords = {"guest": "guest"} | {n: secrets.token_hex(8) for n in names.values()}
    sarra_home.add_credentials(*(f"amqp://{user}:{pw}@{AMQP_HOST}:{AMQP_PORT}/"
                                 for user, pw in passwords.items() if user != "guest"))
    path = tmp_path / "switch.yaml"
    path.write_text(SWITCH.format(unique=tag, host=AMQP_HOST, port=AMQP_PORT,
                                  data_dir=tmp_path / "data", **names), encoding="utf-8")
    api = ManagementApi(MGMT_URL, "guest", "guest")
    try:
        api.users()
    except BrokerError as exc:
        pytest.fail(f"{exc}: run `bash tools/setup.sh`", pytrace=False)
    sw = AuditSwitch(path, passwords=passwords, api=api, **names)
    yield sw
    for broker in sw.drivers:
        try:
            broker.close()
        except BrokerError:
            pass
    exchanges = api.exchanges()
    queues = api.queues()
    for name in sw.names:
        for exchange in exchanges:
            if exchange in (f"xs_{name}", f"xr_{name}", f"xprivate_{name}"):
                api.delete_exchange(exchange)
        for queue in queues:
            if queue.startswith(f"q_{name}."):
                api.delete_queue(queue)
        api.delete_user(name)
    api.close()


def refused(action) -> str:
    """Run ``action``; it must fail with the broker's 403; the error text."""
    with pytest.raises(BrokerError) as err:
        action()
    assert "403 ACCESS_REFUSED" in str(err.value), str(err.value)
    return str(err.value)


# --------------------------------------------------------------------------- declare, check

def test_declare_twice_then_check(switch, capsys):
    rc, lines = switch.run(capsys, "declare", str(switch.path))
    assert rc == 0
    for line in (f"created user {switch.alice} (source)",
                 f"created user {switch.carol} (subscriber)",
                 f"created user {switch.feeder} (feeder)",
                 f"set permissions of {switch.bob} (source)",
                 f"declared exchange xs_{switch.alice}", f"declared exchange xr_{switch.carol}",
                 f"bound xs_{switch.alice} -> xsarra (v02.post.#)",
                 f"bound xs_{switch.carol} -> xreport_in (v02.report.#)",
                 f"declared exchange xprivate_{switch.carol}",
                 f"password file {switch.path.parent / 'data.htpasswd'}: added {switch.carol}"):
        assert line in lines
    assert f"bound xs_{switch.carol} -> xsarra (v02.post.#)" not in lines
    assert not any("guest" in line for line in lines)       # the admin was already right

    assert switch.run(capsys, "declare", str(switch.path)) == (0, [])

    rc, lines = switch.run(capsys, "check", str(switch.path))
    foreign = switch.foreign(lines)
    assert lines == foreign and rc == (1 if foreign else 0)

    users = switch.api.users()
    assert users[switch.alice]["tags"] in ([], "")
    perms = switch.api.permissions()
    assert perms[switch.alice] == permissions("source", switch.alice)
    assert perms[switch.carol] == permissions("subscriber", switch.carol)
    assert perms[switch.feeder] == permissions("feeder", switch.feeder)
    bindings = switch.api.bindings_to(XSARRA) | switch.api.bindings_to(XREPORT_IN)
    assert {Binding(f"xs_{switch.alice}", XSARRA, POST_KEY),
            Binding(f"xs_{switch.bob}", XSARRA, POST_KEY),
            Binding(f"xs_{switch.carol}", XREPORT_IN, REPORT_KEY)} <= bindings
    assert Binding(f"xs_{switch.carol}", XSARRA, POST_KEY) not in bindings


def test_check_lists_what_was_changed_by_hand(switch, capsys):
    assert switch.run(capsys, "declare", str(switch.path))[0] == 0
    api, vhost = switch.api, "%2F"
    api.request("DELETE", f"permissions/{vhost}/{switch.carol}")
    api.unbind(Binding(f"xs_{switch.bob}", XSARRA, POST_KEY))
    api.request("PUT", f"users/{switch.alice}", {"password": "wrong", "tags": "management"})

    rc, lines = switch.run(capsys, "check", str(switch.path))
    assert rc == 1
    mine = [line for line in lines if line not in switch.foreign(lines)]
    assert mine == [
        f"user {switch.alice}: tags [management] instead of []; "
        "password differs from credentials.conf",
        f"user {switch.carol} has no permissions on vhost /",
        f"missing binding xs_{switch.bob} -> xsarra (v02.post.#)",
    ]

    rc, lines = switch.run(capsys, "declare", str(switch.path))
    assert rc == 0 and len(lines) == 3
    rc, lines = switch.run(capsys, "check", str(switch.path))
    assert lines == switch.foreign(lines)


# --------------------------------------------------------------------------- security

def test_users_keep_to_their_own_exchanges(switch, capsys):
    assert switch.run(capsys, "declare", str(switch.path))[0] == 0
    alice, bob, carol = switch.alice, switch.bob, switch.carol

    a = switch.broker(alice)
    queue = f"q_{alice}.audit.test"
    a.declare_queue(queue, expire_s=60)
    for exchange in (f"xs_{alice}", f"xr_{alice}", "xpublic"):
        a.bind(queue, exchange, "v02.#")
    a.declare_exchange(f"xs_{alice}", passive=True)     # ensure_exchange's fallback
    a.publish(Outgoing(f"xs_{alice}", "v02.post.a", {}, "ok"))
    a.flush(10)

    a.bind(queue, f"xprivate_{alice}", "#")             # the restricted posts for alice
    refused(lambda: a.bind(queue, f"xr_{bob}", "#"))
    refused(lambda: switch.broker(alice).bind(queue, f"xprivate_{bob}", "#"))
    refused(lambda: switch.broker(alice).bind(queue, "xprivate", "#"))
    refused(lambda: a.declare_queue(f"q_{bob}.stolen"))
    refused(lambda: a.declare_exchange(f"xs_{alice}"))  # only the admin declares

    def publish(broker, exchange):
        broker.publish(Outgoing(exchange, "v02.post.a", {}, "spoof"))
        broker.flush(10)

    refused(lambda: publish(switch.broker(alice), f"xs_{bob}"))
    refused(lambda: publish(switch.broker(alice), XSARRA))
    refused(lambda: publish(switch.broker(carol), "xpublic"))
    refused(lambda: publish(switch.broker(alice), "xpublic"))


def test_posts_and_logs_reach_the_switch_with_their_exchange(switch, capsys):
    """xs_<u> -> xsarra (posts of sources) and xs_<u> -> xreport_in (everybody's
    logs) are exchange-to-exchange bindings: deliveries keep the exchange the
    user published to, which is how sara and the log router know the user."""
    assert switch.run(capsys, "declare", str(switch.path))[0] == 0
    alice, carol = switch.alice, switch.carol
    feeder = switch.broker(switch.feeder)
    posts, logs = f"q_{switch.feeder}.sara.{alice}", f"q_{switch.feeder}.router.{alice}"
    for queue, exchange in ((posts, XSARRA), (logs, XREPORT_IN)):
        feeder.declare_queue(queue, expire_s=60)
        feeder.bind(queue, exchange, "#")

    a, c = switch.broker(alice), switch.broker(carol)
    a.publish(Outgoing(f"xs_{alice}", "v02.post.data.a", {"sum": "d,x"}, "post by alice"))
    a.publish(Outgoing(f"xs_{alice}", "v02.report.data.a", {}, "log by alice"))
    a.flush(10)
    c.publish(Outgoing(f"xs_{carol}", "v02.report.data.a", {}, "log by carol"))
    c.publish(Outgoing(f"xs_{carol}", "v02.post.data.c", {}, "post by a subscriber"))
    c.flush(10)

    def drain(queue: str, count: int) -> list:
        consumer = switch.broker(switch.feeder)
        consumer.consume(queue, 10)
        got: list = []
        wait_for(lambda: got.extend(consumer.get(0.2)) or len(got) >= count, timeout=10,
                 what=f"{count} messages on {queue}")
        got.extend(consumer.get(0.3))              # nothing more should come
        consumer.ack([d.tag for d in got])
        return sorted((d.exchange, d.topic, d.body) for d in got)

    assert drain(posts, 1) == [(f"xs_{alice}", "v02.post.data.a", b"post by alice")]
    assert drain(logs, 2) == [(f"xs_{alice}", "v02.report.data.a", b"log by alice"),
                              (f"xs_{carol}", "v02.report.data.a", b"log by carol")]


# --------------------------------------------------------------------------- add, remove

def test_add_user_then_remove_user(switch, capsys):
    assert switch.run(capsys, "declare", str(switch.path))[0] == 0
    dave = f"da{secrets.token_hex(3)}"
    switch.extra_users.append(dave)
    switch.passwords[dave] = "dave-pw"
    with open(os.environ["SARRA_CONFIG_DIR"] + "/credentials.conf", "a") as f:
        f.write(f"amqp://{dave}:dave-pw@{AMQP_HOST}:{AMQP_PORT}/\n")

    rc, lines = switch.run(capsys, "add-user", str(switch.path), dave, "source")
    assert rc == 0
    htpasswd = switch.path.parent / "data.htpasswd"      # data_dir + ".htpasswd"
    assert lines == [f"{switch.path}: {dave}: source", f"created user {dave} (source)",
                     f"set permissions of {dave} (source)",
                     f"declared exchange xprivate_{dave}",
                     f"declared exchange xr_{dave}", f"declared exchange xs_{dave}",
                     f"bound xs_{dave} -> xreport_in (v02.report.#)",
                     f"bound xs_{dave} -> xsarra (v02.post.#)",
                     f"password file {htpasswd}: added {dave}"]
    assert f"\n{dave}:$6$" in "\n" + htpasswd.read_text()
    text = switch.path.read_text()
    assert f"  {dave}: source\n" in text and "# posts" in text and "# a test switch" in text
    assert load_switch(str(switch.path)).users[dave] == "source"

    d = switch.broker(dave)                          # dave works at once
    d.declare_queue(f"q_{dave}.subscribe.x", expire_s=60)
    d.bind(f"q_{dave}.subscribe.x", "xpublic", "#")
    d.publish(Outgoing(f"xs_{dave}", "v02.post.a", {}, "hello"))
    d.flush(10)
    d.close()

    rc, lines = switch.run(capsys, "remove-user", str(switch.path), dave)
    assert rc == 0
    assert lines == [f"{switch.path}: removed {dave}", f"deleted exchange xprivate_{dave}",
                     f"deleted exchange xr_{dave}",
                     f"deleted exchange xs_{dave}", f"deleted queue q_{dave}.subscribe.x",
                     f"removed the permissions of {dave} on vhost /", f"deleted user {dave}",
                     f"password file {htpasswd}: removed {dave}"]
    assert dave not in htpasswd.read_text()
    assert dave not in switch.api.users()
    assert not {f"xs_{dave}", f"xr_{dave}"} & set(switch.api.exchanges())
    assert not [q for q in switch.api.queues() if q.startswith(f"q_{dave}.")]
    assert dave not in switch.path.read_text() and "# posts" in switch.path.read_text()
    rc, lines = switch.run(capsys, "check", str(switch.path))
    assert lines == switch.foreign(lines)


def test_a_switch_on_a_vhost_of_its_own(switch, capsys):
    """The vhost is the path of the broker URL: created, permissions there;
    removing a user there keeps it while another switch (vhost /) has it."""
    vhost = f"audit-{secrets.token_hex(3)}"
    assert switch.run(capsys, "declare", str(switch.path))[0] == 0      # the switch on /
    other = switch.path.with_name("vhost.yaml")
    other.write_text(switch.path.read_text().replace(f"{AMQP_PORT}/", f"{AMQP_PORT}/{vhost}"))
    try:
        rc, lines = switch.run(capsys, "declare", str(other))
        assert rc == 0 and lines[0] == f"created vhost {vhost}", lines
        assert f"set permissions of {switch.alice} (source)" in lines
        assert f"declared exchange xs_{switch.alice}" in lines
        assert switch.run(capsys, "check", str(other)) == (0, [])
        vapi = ManagementApi(MGMT_URL, "guest", "guest", vhost)
        assert vapi.permissions()[switch.alice] == permissions("source", switch.alice)
        b = make_broker(switch.url(switch.alice) + vhost)
        b.connect()
        switch.drivers.append(b)
        b.publish(Outgoing(f"xs_{switch.alice}", "v02.post.a", {}, "hello"))
        b.flush(10)
        refused(lambda: (b.publish(Outgoing("xpublic", "v02.post.a", {}, "x")), b.flush(10)))
        rc, lines = switch.run(capsys, "remove-user", str(other), switch.alice)
        assert rc == 0
        assert f"removed the permissions of {switch.alice} on vhost {vhost}" in lines
        assert lines[-2:] == [f"kept user {switch.alice}: it has permissions on vhost /",
                              f"password file {switch.path.parent / 'data.htpasswd'}: "
                              f"removed {switch.alice}"]
        assert switch.alice not in vapi.permissions() and switch.alice in vapi.users()
        assert f"xs_{switch.alice}" not in vapi.exchanges()
        assert f"xs_{switch.alice}" in switch.api.exchanges()      # the other switch's
        vapi.close()
    finally:
        switch.api.request("DELETE", f"vhosts/{vhost}", missing_ok=True)


# --------------------------------------------------------------------------- the log router

def _log_message(relpath: str, user: str, source: str, cluster: str) -> tuple:
    """(topic, headers, body, content type) of a log message by ``user``
    about ``relpath``, whose data would be ``source``'s."""
    msg = decode("v02.report.x", {"sum": "d," + "0" * 32, "source": source,
                                  "from_cluster": cluster},
                 f"20261125120000.000 http://switch.example.com/ {relpath} 201 "
                 f"{user}.example.com {user} 0.1")
    return encode(msg, "v02.report")


def test_the_log_router_publishes_to_the_sources_exchanges_only(switch, capsys, procs,
                                                                 tmp_path):
    """The router dd_audit configures (post_exchange xreport,xr_${SOURCE})
    creates no exchange for a source that is not the switch's: a log message
    about 'evil' data goes nowhere, and the router goes on; a source added by
    add-user gets its log messages at once, one removed by remove-user none,
    without a restart."""
    vhost = f"audit-{secrets.token_hex(3)}"
    desc = switch.path.with_name("router.yaml")
    desc.write_text(switch.path.read_text().replace(f"{AMQP_PORT}/", f"{AMQP_PORT}/{vhost}"))
    cluster = load_switch(str(desc)).cluster
    alice, bob, carol = switch.alice, switch.bob, switch.carol
    dave = f"da{secrets.token_hex(3)}"
    switch.extra_users.append(dave)
    switch.passwords[dave] = "dave-pw"
    with open(os.environ["SARRA_CONFIG_DIR"] + "/credentials.conf", "a") as f:
        f.write(f"amqp://{dave}:dave-pw@{AMQP_HOST}:{AMQP_PORT}/\n")
    vapi = ManagementApi(MGMT_URL, "guest", "guest", vhost)
    try:
        assert switch.run(capsys, "declare", str(desc))[0] == 0
        assert main(["configs", str(desc), "--directory", os.environ["SARRA_CONFIG_DIR"]]) == 0
        assert run_tool("shovel", "declare", "logs", timeout=60).returncode == 0
        feeder = make_broker(switch.url(switch.feeder) + vhost)
        feeder.connect()
        switch.drivers.append(feeder)
        seen: dict[str, list[str]] = {}

        def tap(exchange: str) -> None:
            queue = f"q_{switch.feeder}.tap.{exchange}"
            feeder.declare_queue(queue, expire_s=120)
            feeder.bind(queue, exchange, "#")
            seen[exchange] = []

        def arrived() -> dict[str, list[str]]:
            for ex in seen:
                q = f"q_{switch.feeder}.tap.{ex}"
                c = make_broker(switch.url(switch.feeder) + vhost)
                c.connect()
                c.consume(q, 100)
                got = c.get(0.2)
                c.ack([d.tag for d in got])
                c.close()
                seen[ex] += [decode(d.topic, d.headers, d.body).relpath for d in got]
            return seen

        for exchange in ("xreport", f"xr_{alice}", f"xr_{bob}"):
            tap(exchange)
        router = procs.start_tool("shovel", "foreground", "logs", log=tmp_path / "router.log")
        c = make_broker(switch.url(carol) + vhost)
        c.connect()
        switch.drivers.append(c)

        def send(relpath: str, source: str) -> None:
            c.publish(Outgoing(f"xs_{carol}", *_log_message(relpath, carol, source, cluster)))
            c.flush(10)

        send("evil/etc/passwd", "evil")                  # no such source here
        send(f"{bob}/b1.dat", bob)
        send(f"{alice}/a1.dat", alice)
        wait_for(lambda: f"{alice}/a1.dat" in arrived()[f"xr_{alice}"], timeout=30,
                 interval=0.3, what="alice's log message, after evil's")
        assert "xr_evil" not in vapi.exchanges()
        assert seen[f"xr_{bob}"] == [f"{bob}/b1.dat"]
        assert router.poll() is None, (tmp_path / "router.log").read_text()[-3000:]

        # a source added while the router runs gets its log messages
        assert main(["add-user", str(desc), dave, "source"]) == 0
        tap(f"xr_{dave}")
        send(f"{dave}/d1.dat", dave)
        # one removed gets none: the router had xr_bob in mind, and the broker
        # refuses the message (NOT_FOUND); the batch again, and it is dropped
        assert main(["remove-user", str(desc), bob]) == 0
        del seen[f"xr_{bob}"]
        send(f"{bob}/b2.dat", bob)
        send(f"{alice}/a2.dat", alice)
        wait_for(lambda: f"{alice}/a2.dat" in arrived()[f"xr_{alice}"]
                 and f"{dave}/d1.dat" in seen[f"xr_{dave}"], timeout=30, interval=0.3,
                 what="dave's log message, and alice's after bob's")
        assert f"xr_{bob}" not in vapi.exchanges() and "xr_evil" not in vapi.exchanges()
        assert "evil/etc/passwd" not in seen["xreport"]      # published nowhere
        assert seen[f"xr_{alice}"] == [f"{alice}/a1.dat", f"{alice}/a2.dat"]
        text = stop(router)
        assert "'unpublishable': 2" in text, text[-3000:]      # evil's, bob's after removal
        assert text.count("no exchange xr_evil: 'evil' is not a source of this switch") == 1
        assert f"no exchange xr_{bob}: '{bob}' is not a source" in text
        assert "Traceback" not in text
    finally:
        vapi.close()
        switch.api.request("DELETE", f"vhosts/{vhost}", missing_ok=True)


# --------------------------------------------------------------------------- nginx

def _nginx_site(switch_path: Path, prefix: Path) -> tuple[subprocess.Popen, str]:
    """The site ``dd_audit nginx --standalone`` writes, run by a real nginx in
    ``prefix``: (the process, ``http://host:port``). Stop it with stop_process."""
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    assert main(["nginx", "--standalone", str(switch_path), "--output", str(conf)]) == 0
    if os.geteuid() == 0:       # workers would run as nobody, who cannot read tmp_path
        conf.write_text("user root;\n" + conf.read_text())
    nginx = next((p for p in ("/usr/sbin/nginx", "/sbin/nginx", "/usr/local/sbin/nginx")
                  if os.path.exists(p)), None)
    if nginx is None:
        pytest.fail("nginx not found: run `bash tools/setup.sh`", pytrace=False)
    port = int(load_switch(str(switch_path)).base_url.split(":")[2].split("/")[0])
    proc = subprocess.Popen([nginx, "-p", f"{prefix}/", "-c", str(conf),
                             "-e", str(prefix / "error.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while not port_open(AMQP_HOST, port, 0.2):
        error_log = prefix / "error.log"
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc, timeout=10)
            pytest.fail(tail(error_log.read_text(errors="replace") if error_log.exists()
                             else "nginx did not start"), pytrace=False)
        time.sleep(0.02)
    return proc, f"http://{AMQP_HOST}:{port}"


def _status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_nginx_serves_data_dir_at_base_url(switch, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "20240101" / "alice").mkdir(parents=True)
    (data / "20240101" / "alice" / "f.txt").write_text("content\n")
    port = free_port()
    text = switch.path.read_text().replace(f"http://{AMQP_HOST}:8090/",
                                           f"http://{AMQP_HOST}:{port}/pub/")
    switch.path.write_text(text)
    proc, base = _nginx_site(switch.path, tmp_path / "nginx")
    try:
        with urllib.request.urlopen(f"{base}/pub/20240101/alice/f.txt", timeout=5) as r:
            assert r.read() == b"content\n"
        for path, status in (("/pub/", 403), ("/pub/20240101/", 403), ("/f.txt", 404),
                             ("/pub/nothing", 404)):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + path, timeout=5)
            assert err.value.code == status, path
    finally:
        stop_process(proc, timeout=10)


@pytest.mark.parametrize("at", ["/", "/pub/"])        # root, and alias
def test_nginx_follows_no_symlink_below_data_dir(switch, tmp_path, at):
    """A link in the tree to / (or /etc), made by hand by the switch's own
    user (root, here), serves nothing of the host: neither does one inside
    the tree (a link is posted as a link; nothing downloads through one).
    data_dir may be a link itself (from=data_dir)."""
    real = tmp_path / "data.real"
    alice = real / "alice"
    (alice / "day").mkdir(parents=True)
    (alice / "day" / "f.dat").write_bytes(b"alice's data\n")
    (tmp_path / "data").symlink_to(real)                 # data_dir, as described
    (alice / "root").symlink_to("/")
    (alice / "etc").symlink_to("/etc")
    (alice / "latest").symlink_to("day/f.dat")           # as dd_sara makes them
    (alice / "today").symlink_to("day")
    hostname = Path("/etc/hostname").read_bytes()
    assert (tmp_path / "data" / "alice" / "root" / "etc" / "hostname").read_bytes() == hostname
    port = free_port()
    switch.path.write_text(switch.path.read_text().replace(
        f"http://{AMQP_HOST}:8090/", f"http://{AMQP_HOST}:{port}{at}"))
    proc, base = _nginx_site(switch.path, tmp_path / "nginx")
    try:
        site = base + at + "alice/"
        assert _status(site + "day/f.dat") == (200, b"alice's data\n")
        for path in ("root/etc/hostname", "etc/hostname", "root/etc/passwd", "latest",
                     "today/f.dat"):
            code, body = _status(site + path)
            assert code in (403, 404) and hostname not in body, (path, code)
    finally:
        stop_process(proc, timeout=10)


def _get(base: str, path: str, user: str | None = None, password: str = "") -> int:
    """The status of a GET of ``path`` as written (no client-side
    normalisation of '..' or %-escapes), with basic credentials if given."""
    import http.client
    from base64 import b64encode
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        headers = {}
        if user is not None:
            headers["Authorization"] = "Basic " + b64encode(
                f"{user}:{password}".encode()).decode()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_nginx_serves_restricted_files_to_their_readers_and_links_only(switch, tmp_path,
                                                                        capsys):
    """The private tree (data_dir.private, served at _private/) against a real
    nginx with the password file declare wrote: a reader gets the file, a
    non-reader 403, no credentials or a wrong password 401, whatever the URL
    ('..', %2e%2e, through the public location); a link gets every one."""
    link = f"li{secrets.token_hex(3)}"
    switch.extra_users.append(link)
    switch.passwords[link] = secrets.token_hex(8)
    with open(os.environ["SARRA_CONFIG_DIR"] + "/credentials.conf", "a") as f:
        f.write(f"amqp://{link}:{switch.passwords[link]}@{AMQP_HOST}:{AMQP_PORT}/\n")
    port = free_port()
    cluster = load_switch(str(switch.path)).cluster
    switch.path.write_text(switch.path.read_text().replace(
        f"http://{AMQP_HOST}:8090/", f"http://{AMQP_HOST}:{port}/").replace(
        "links: []", f"  {link}: link\nlinks: []"))
    assert switch.run(capsys, "declare", str(switch.path))[0] == 0
    private = tmp_path / "data.private"
    bob, carol = switch.bob, switch.carol
    files = {"bob": f"{bob}/alice/d/f.dat", "carol": f"{carol}@{cluster},zed/alice/g.dat",
             "other": f"{carol}@elsewhere/alice/h.dat"}
    for rel in files.values():
        (private / rel).parent.mkdir(parents=True, exist_ok=True)
        (private / rel).write_bytes(b"secret " + rel.encode())
    (tmp_path / "data" / "alice").mkdir(parents=True)
    (tmp_path / "data" / "alice" / "p.dat").write_bytes(b"public\n")
    pw = switch.passwords
    proc, base = _nginx_site(switch.path, tmp_path / "nginx")
    try:
        def get(rel: str, user: str | None = None, password: str | None = None) -> int:
            return _get(base, rel, user, pw.get(user, "") if password is None else password)
        bobs, carols, others = (f"/_private/{files[k]}" for k in ("bob", "carol", "other"))
        assert get(bobs, bob) == 200 and get(carols, carol) == 200
        assert get("/alice/p.dat") == 200                        # public as before
        for user in (switch.alice, carol):
            assert get(bobs, user) == 403, user
        assert get(bobs, bob) == 200 and get(carols, bob) == 403
        assert get(others, carol) == 403                        # another switch's carol
        assert get(bobs) == 401 and get(bobs, bob, "wrong") == 401
        assert get(bobs, "nobody", "x") == 403
        for trick in (f"/_private/{bob}/../{carol}@{cluster},zed/alice/g.dat",
                      f"/_private/{bob}/%2e%2e/{carol}@{cluster},zed/alice/g.dat",
                      f"/_private/{bob}/%2E%2E/{carol}@{cluster},zed/alice/g.dat",
                      f"/alice/../_private/{carol}@{cluster},zed/alice/g.dat",
                      f"/_private/{bob}/../../data.private/{carol}@{cluster},zed/alice/g.dat",
                      f"/_private/{bob},{carol}/../{carol}@{cluster},zed/alice/g.dat"):
            assert get(trick, bob) in (400, 403, 404), trick
        for trick in (f"/../data.private/{files['bob']}", f"/%2e%2e/data.private/{files['bob']}",
                      "/../data.htpasswd", "/%2e%2e/data.htpasswd"):
            assert get(trick, bob) in (400, 403, 404), trick
        for guess in ("/_private/", f"/_private/{bob}/", f"/_private/{bob}/alice/d/"):
            assert get(guess, bob) in (403, 404), guess
        for rel in (bobs, carols, others):                       # the link carries them all
            assert get(rel, link) == 200, rel
        assert get(bobs, link, "wrong") == 401
    finally:
        stop_process(proc, timeout=10)
