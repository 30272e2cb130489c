"""Three switches, three RabbitMQ nodes, set up with the project's own
commands: for each, a description, ``dd_audit declare`` (users, link
accounts, permissions, exchanges), ``dd_audit configs`` (dd_sara, the log
router, the links), ``sarra declare`` and ``sarra start``; each switch and
each user a machine of its own (its own configuration and state
directories and credentials.conf).

    labA --> labB --> labC --> labA        (each arrow: the right-hand switch
                                            takes the left-hand one's posts)

labB takes from labA what is for labB or labC; labC from labB what is for
labC; labA from labC what is for labA (never what came from labA: a loop).
Alice and bob are sources on labA, carol a subscriber on labB, dave one
on labC; bob is a subscriber of labC too, eve of labB and labC (the private
transfer from alice to bob). Then the middle switch's broker is stopped and started again while
files flow through it: nothing is lost.

Everything sarra does here goes over TLS, verified against the session's
test CA (tests/conftest.py test_ca): every broker and link URL is amqps://
(the nodes' TLS listeners), each switch's base_url is https:// (its nginx,
running the site dd_audit nginx writes, with the CA's server certificate), dd_audit talks to the management API over
https. The switches get the CA from their description's ``ca_file`` (dd_audit
writes it into every component's configuration); the people from the
``ca_file=`` of their credentials.conf lines (brokers) and the ``ca_file``
option (downloads). The test's own probes (pika) use the plain ports.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pika
import pytest

from sarra import codec
from sarra.checksum import sum_name
from sarra.message import Message, format_time
from tests.helpers import (compare_trees, kill_processes_with_env, run_tool, tail,
                           wait_for)
from tests.integration.flowkit import slow_http
from tools.localnginx import find_nginx
from tools.localrabbit import RabbitNode
from tools.proc import free_port, port_open

__all__ = ["slow_http"]

NAMES = ("labA", "labB", "labC")
pytestmark = pytest.mark.rabbit_nodes("a", "b", "c")     # the net fixture's


@dataclass
class Machine:
    """A configuration and state directory with its credentials.conf."""

    root: Path
    creds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        (self.root / "state").mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"SARRA_CONFIG_DIR": str(self.root / "config"),
                "SARRA_STATE_DIR": str(self.root / "state")}

    def credential(self, url: str) -> None:
        self.creds.append(url)
        path = self.root / "config" / "credentials.conf"
        path.write_text("\n".join(self.creds) + "\n", encoding="utf-8")
        path.chmod(0o600)

    def write(self, rel: str, text: str) -> Path:
        path = self.root / "config" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, tool: str, *args, timeout: float = 60, check: bool = True):
        return run_tool(tool, *args, env=self.env, timeout=timeout, check=check)

    def stop_all(self) -> None:
        """At teardown: nothing of the machine is kept, no orderly stop."""
        kill_processes_with_env("SARRA_STATE_DIR", str(self.root / "state"))

    def logs(self, name: str) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in sorted((self.root / "state").rglob(f"*_{name}_*.log*")))


def side_by_side(action, machines) -> None:
    """``action(machine)`` for every machine at once (each mostly waits for
    processes); the first failure is raised once all are done."""
    errors: list[BaseException] = []

    def run(m):
        try:
            action(m)
        except BaseException as exc:     # noqa: BLE001 - raised again below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(m,)) for m in machines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def password(user: str) -> str:
    return f"{user}-Pw-{os.getpid()}"


def url(node: RabbitNode, user: str, with_password: bool = False) -> str:
    """``user``'s account on ``node``, over TLS."""
    return node.amqps_url(user, password(user) if with_password else None)


def watch_exchange(node: RabbitNode, exchange: str):
    """Declare ``exchange`` on ``node`` with a queue bound to all of it; a
    function that tells how many messages reached that queue."""
    params = pika.URLParameters(node.url())
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange, "topic", durable=True)
        queue = ch.queue_declare("", exclusive=False, auto_delete=False,
                                 arguments={"x-expires": 600_000}).method.queue
        ch.queue_bind(queue, exchange, "#")
    finally:
        conn.close()

    def depth() -> int:
        conn = pika.BlockingConnection(params)
        try:
            return conn.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            conn.close()
    return depth


@dataclass
class Site:
    """A switch's nginx, running the site ``dd_audit nginx --standalone`` wrote."""

    url: str
    prefix: Path
    proc: subprocess.Popen

    def stop(self) -> None:
        """Its process group killed (the master and its workers)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def start_site(m: Machine, switch_yaml: Path, prefix: Path, port: int, ca) -> Site:
    conf = prefix / "nginx.conf"
    m.run("audit", "nginx", "--standalone", "--ssl_certificate", ca.cert,
          "--ssl_certificate_key", ca.key, "--output", conf, switch_yaml)
    if os.geteuid() == 0:       # workers would run as nobody, who cannot read tmp
        conf.write_text("user root;\n" + conf.read_text())
    proc = subprocess.Popen([find_nginx(), "-p", f"{prefix}/", "-c", str(conf),
                             "-e", str(prefix / "error.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    site = Site(f"https://127.0.0.1:{port}/", prefix, proc)
    try:
        wait_for(lambda: port_open("127.0.0.1", port, 0.2) or proc.poll() is not None,
                 timeout=15, what=f"nginx on port {port}")
        assert proc.poll() is None, tail((prefix / "error.log").read_text(errors="replace"))
    except BaseException:
        site.stop()
        raise
    return site


@pytest.fixture(scope="module")
def net(rabbit_node, tmp_path_factory, test_ca):
    """The three switches declared and started, the subscribers running;
    every machine's components stopped at teardown. Yields a dict: "nodes"
    (labA/labB/labC -> RabbitNode), "switches" (name -> Machine, its
    switch.yaml in config/), "people" (alice, bob, carol, dave -> Machine),
    "tmp" (the module's directory: <name>-data are the switches' trees,
    <user>-mirror the subscribers'), "webs" (name -> the switch's https
    Site: the site dd_audit nginx writes), "ca" (the TestCA)."""
    tmp_path = tmp_path_factory.mktemp("switches")
    webs: dict[str, Site] = {}
    ca = str(test_ca.ca_file)
    nodes = dict(zip(("labA", "labB", "labC"), rabbit_node.several("a", "b", "c")))
    upstream = {"labB": "labA", "labC": "labB", "labA": "labC"}   # who takes from whom
    beyond = {"labB": ["labB", "labC"], "labC": ["labC"], "labA": ["labA"]}
    users = {"labA": {"alice": "source", "bob": "source"},
             "labB": {"carol": "subscriber", "eve": "subscriber"},
             "labC": {"dave": "subscriber", "bob": "subscriber", "eve": "subscriber"}}
    ports = {name: free_port() for name in NAMES}     # each switch's https server
    machines: dict[str, Machine] = {}
    people: dict[str, Machine] = {}
    switches = {}
    try:
        for name in NAMES:
            node = nodes[name]
            m = machines[name] = Machine(tmp_path / name)
            data = tmp_path / f"{name}-data"
            data.mkdir()
            web_url = f"https://127.0.0.1:{ports[name]}/"
            taker = next(t for t, up in upstream.items() if up == name)
            accounts = {**users[name], taker: "link"}
            for user in ("guest", "feeder", *accounts):
                pw = "guest" if user == "guest" else password(user)
                m.credential(node.amqps_url(user, pw))
            up = upstream[name]
            m.credential(url(nodes[up], name, with_password=True))   # our account there
            # and on its https server: the link fetches restricted files with it
            m.credential(f"https://{name}:{password(name)}@127.0.0.1:{ports[up]}/")
            lines = [f"cluster: {name}", f"broker: {node.amqps_url('guest', None)}",
                     f"feeder: {url(node, 'feeder')}", f"data_dir: {data}",
                     f"base_url: {web_url}", f"management_url: {node.management_https_url}",
                     f"ca_file: {ca}",
                     "users:", *(f"  {u}: {r}" for u, r in accounts.items()),
                     "links:", f"  - cluster: {up}", f"    broker: {url(nodes[up], name)}",
                     f"    to_clusters: [{', '.join(beyond[name])}]"]
            if name == "labC":     # data from labA comes to labC through labB
                lines.append("    from_clusters: [labB, labA]")
            switches[name] = m.write("switch.yaml", "\n".join(lines) + "\n")
        # each switch's steps wait for its processes: the three switches at
        # once, step by step (every account exists before any link logs in)
        sites = {name: tmp_path_factory.mktemp("nginx") for name in NAMES}

        def declare_and_serve(name):
            m = machines[name]
            out = m.run("audit", "declare", switches[name]).stdout
            taker = next(t for t, up in upstream.items() if up == name)
            assert f"set permissions of {taker} (link)" in out, out
            assert m.run("audit", "check", switches[name], check=False).returncode == 0
            # the site dd_audit writes (the tree, and _private/ behind basic
            # auth and the readers' map), with the password file declare wrote
            webs[name] = start_site(m, switches[name], sites[name], ports[name], test_ca)
        side_by_side(declare_and_serve, NAMES)

        def configure(name):
            m = machines[name]
            out = m.run("audit", "configs", switches[name]).stdout
            assert f"sara/from-{upstream[name]}.conf" in out, out
            written = [*(m.root / "config").glob("sara/*.conf"),
                       *(m.root / "config").glob("shovel/*.conf")]
            assert len(written) == 4 and all(
                "ca_file" in c.read_text() and "amqp://" not in c.read_text()
                for c in written), written       # all over TLS, the CA told
            m.run("sarra", "declare", timeout=120)
        side_by_side(configure, NAMES)
        # each start waits for its instances: the three machines at once
        side_by_side(lambda m: m.run("sarra", "start", timeout=120), machines.values())
        for user, switch in (("carol", "labB"), ("dave", "labC")):
            p = people[user] = Machine(tmp_path / user)
            p.credential(f"{url(nodes[switch], user, with_password=True)} ca_file={ca}")
            p.write("subscribe/all.conf", (
                f"broker {url(nodes[switch], user)}\nexchange xpublic\nsubtopic #\n"
                f"ca_file {ca}\n"
                f"mirror on\ndirectory {tmp_path / (user + '-mirror')}\naccept .*\n"
                "expire 1h\n"))
        for user in ("alice", "bob"):
            p = people[user] = Machine(tmp_path / user)
            p.credential(f"{url(nodes['labA'], user, with_password=True)} ca_file={ca}")
            p.write("log/mine.conf", f"broker {url(nodes['labA'], user)}\nexpire 1h\n")

        def ready(user):
            p = people[user]
            if user in ("carol", "dave"):
                p.run("subscribe", "declare", "all")
                p.run("subscribe", "start", "all")
            else:
                assert p.run("log", "mine", "--format", "json").stdout == ""  # subscribed
        side_by_side(ready, ("carol", "dave", "alice", "bob"))
        yield {"nodes": nodes, "switches": machines, "people": people, "tmp": tmp_path,
               "webs": {name: webs[name] for name in NAMES}, "ca": test_ca}
    finally:
        side_by_side(Machine.stop_all, [*machines.values(), *people.values()])
        for web in webs.values():
            web.stop()


def test_routing_by_destination_no_loops_and_logs_home_only(net, nginx):
    tmp, people, switches = net["tmp"], net["people"], net["switches"]
    alice_tree = tmp / "alice-data"
    for d in ("for_a", "for_b", "for_c", "for_all", "for_none"):
        (alice_tree / d).mkdir(parents=True)
        (alice_tree / d / "f.dat").write_bytes(os.urandom(3000))
    alice_web = nginx(alice_tree, workers=1, https=True)
    alice = people["alice"]
    # an xr_alice on labB and labC, each with a queue: alice is labA's source, so
    # the log messages made there about her data go home to labA, none into these
    elsewhere = {name: watch_exchange(net["nodes"][name], "xr_alice")
                 for name in ("labB", "labC")}
    for d, dest in (("for_a", "labA"), ("for_b", "labB"), ("for_c", "labC"),
                    ("for_all", "ALL")):
        alice.run("post", "--post_broker", url(net["nodes"]["labA"], "alice"),
                  "--post_base_url", alice_web.url, "--post_base_dir", alice_tree,
                  "--to_clusters", dest, alice_tree / d)
    alice.run("post", "--post_broker", url(net["nodes"]["labA"], "alice"),     # no destination:
              "--post_base_url", alice_web.url, "--post_base_dir", alice_tree,  # labA's
              alice_tree / "for_none")
    carol, dave = tmp / "carol-mirror" / "alice", tmp / "dave-mirror" / "alice"
    wait_for(lambda: sorted(p.name for p in dave.glob("*")) == ["for_all", "for_c"],
             timeout=60, what="labC's subscriber to get what is for labC")
    wait_for(lambda: sorted(p.name for p in carol.glob("*")) == ["for_all", "for_b", "for_c"],
             timeout=30, what="labB's subscriber to get what goes through labB")
    for d in ("for_all", "for_c"):
        assert compare_trees(alice_tree / d, dave / d) == []
    for d in ("for_all", "for_b", "for_c"):
        assert compare_trees(alice_tree / d, carol / d) == []

    # alice sees where her data went, on labA: carol's download on labB and
    # dave's on labC, and the links' acquisitions
    def alice_rows():
        out = alice.run("log", "mine", "--format", "json").stdout
        alice_rows.rows += [json.loads(line) for line in out.splitlines()]
        return {(r["user"], r["relpath"]) for r in alice_rows.rows}
    alice_rows.rows = []
    want = {("carol", "alice/for_b/f.dat"), ("carol", "alice/for_all/f.dat"),
            ("dave", "alice/for_c/f.dat"), ("dave", "alice/for_all/f.dat"),
            ("labB", "alice/for_c/f.dat"), ("labC", "alice/for_c/f.dat")}
    wait_for(lambda: alice_rows() >= want, timeout=60, interval=1,
             what=f"alice's log messages from labB and labC (have {alice_rows.rows[-3:]})")
    assert {r["code"] for r in alice_rows.rows} == {201}
    assert {r["source"] for r in alice_rows.rows} == {"alice"}
    # bob, another source of labA, sees none of it, nor does any xr_alice but labA's
    time.sleep(1)
    assert people["bob"].run("log", "mine", "--format", "json").stdout == ""
    assert {name: depth() for name, depth in elsewhere.items()} == {"labB": 0, "labC": 0}

    # nothing went round: labA's link from labC refused alice's posts that came
    # back (from labA), and took nothing
    back = switches["labA"].logs("from-labC")
    assert "loop: from this cluster (labA)" in back, tail(back)
    files_a = sorted(str(p.relative_to(tmp / "labA-data")) for p in (tmp / "labA-data").rglob("*")
                     if p.is_file())
    assert files_a == [f"alice/{d}/f.dat"
                       for d in ("for_a", "for_all", "for_b", "for_c", "for_none")]
    # for_a never left labA, nor did for_none (labA's dd_sara made it for labA):
    # labB's link saw both and left them out
    for d in ("for_a", "for_none"):
        wait_for(lambda d=d: f"rejected alice/{d}/f.dat: to_clusters labA: not through here"
                 in switches["labB"].logs("from-labA"), timeout=30, interval=0.5,
                 what=f"labB's link to leave {d} out")
        assert not (tmp / "labB-data" / "alice" / d).exists()


def test_middle_broker_restarted_mid_flow_nothing_lost(net, slow_http):
    tmp, people = net["tmp"], net["people"]
    tree = tmp / "burst"
    for i in range(90):
        (tree / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{i % 3}" / f"f{i:03d}.dat").write_bytes(os.urandom(2000))
    web = slow_http(tmp, 0.05)       # 50 ms a file: still flowing during the outage
    people["alice"].run("post", "--post_broker", url(net["nodes"]["labA"], "alice"),
                        "--post_base_url", web.url, "--post_base_dir", tmp,
                        "--to_clusters", "labC", tree)
    dave = tmp / "dave-mirror" / "alice" / "burst"
    wait_for(lambda: len(list(dave.rglob("*.dat"))) >= 5, timeout=60,
             what="the first files on labC")
    b = net["nodes"]["labB"]
    b.stop()
    time.sleep(1)
    b.start()
    wait_for(lambda: compare_trees(tree, dave) == [], timeout=120, interval=0.5,
             what="every file on labC after labB's broker came back")
    assert not [p for p in dave.rglob("*") if p.name.endswith(".tmp")]
    status = net["switches"]["labB"].run("sarra", "status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr


def test_a_post_from_outside_the_ring_goes_round_it_once(net):
    """labA -> labB -> labC -> labA is a ring. A post whose data entered the
    network on a switch that is not on it (labX: a relay of labB's published
    it on labB's xpublic) is refused by no link as a loop: each link's
    duplicate cache stops it when it comes round again. A symlink is the
    worst case: every switch that makes it announces it again, whatever it
    found in place, so without the caches it would go round for ever."""
    nodes, tmp = net["nodes"], net["tmp"]
    seen = {name: watch_exchange(nodes[name], "xpublic") for name in NAMES}
    msg = Message(format_time(time.time()), "http://127.0.0.1:9/", "labX/ring/latest",
                  {"sum": sum_name("L", "day-1.dat"), "link": "day-1.dat",
                   "source": "xavier", "from_cluster": "labX", "to_clusters": "ALL"})
    topic, headers, body, content_type = codec.encode(msg, "v02.post")
    conn = pika.BlockingConnection(pika.URLParameters(nodes["labB"].url()))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("xpublic", topic, body, pika.BasicProperties(
            headers=headers, content_type=content_type, delivery_mode=2))
    finally:
        conn.close()
    back_on_c = net["switches"]["labC"]
    wait_for(lambda: "rejected labX/ring/latest: duplicate" in back_on_c.logs("from-labB"),
             timeout=60, interval=0.5,
             what="labC's link to refuse the post that came round (a duplicate)")
    for name in NAMES:          # made once on each switch, pointing where it said
        assert os.readlink(tmp / f"{name}-data" / "labX" / "ring" / "latest") == "day-1.dat"
    time.sleep(2)               # anything still going round would show now
    # labB: the relay's post and labB's own, once the ring brought it back
    # (from labA); labC and labA announced it once each
    assert {name: depth() for name, depth in seen.items()} == {
        "labA": 1, "labB": 2, "labC": 1}


def _get(site: str, path: str, ca, user: str | None = None,
         pw: str | None = None) -> tuple[int, bytes]:
    """A GET of ``path`` as written (no client-side normalisation of '..'
    or %-escapes) on the switch's https server, with basic credentials if
    given: (status, body)."""
    import http.client
    import ssl
    from base64 import b64encode
    port = int(site.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=5, context=ssl.create_default_context(cafile=str(ca)))
    try:
        headers = {}
        if user is not None:
            secret = password(user) if pw is None else pw
            headers["Authorization"] = "Basic " + b64encode(
                f"{user}:{secret}".encode()).decode()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_private_transfer_alice_to_bob_across_switches(net, nginx):
    """Issue 15: alice (a source of labA) posts a file with ``readers bob``
    for labC; it crosses labB (kept restricted there for the link to carry
    on) and reaches labC's private tree. Bob's ordinary subscriber on labC
    (xpublic, nothing new) gets the post and downloads the file with his
    credentials.conf line for labC's server; eve, a subscriber of labB and
    of labC bound to all she may read, gets no post of it, and no URL of
    it serves her. Alice's dd_log shows bob's download on labC, nothing of
    eve's. A reader labC does not know: kept private there, and reported
    to alice (404). A public post of the same flow goes everywhere.

    Everything is over TLS as in the rest of the module (amqps, the
    switches' https sites as dd_audit nginx writes them); test_tls.py tests
    TLS itself."""
    tmp, people, nodes, webs, ca = (net[k] for k in ("tmp", "people", "nodes", "webs", "ca"))
    ca_file = ca.ca_file
    site_b, site_c = webs["labB"].url, webs["labC"].url
    # bob (a machine that also posts to labA) subscribes on labC, eve on labB and labC
    bob, eve = people["bob"], Machine(tmp / "eve")
    people["eve"] = eve          # stopped with the rest at teardown
    bob.credential(f"{url(nodes['labC'], 'bob', with_password=True)} ca_file={ca_file}")
    bob.credential(f"https://bob:{password('bob')}@127.0.0.1:{site_c.split(':')[2]}")
    subscribers = [(bob, "mine", "labC", "bob-mirror")]
    for switch, site in (("labB", site_b), ("labC", site_c)):
        eve.credential(f"{url(nodes[switch], 'eve', with_password=True)} ca_file={ca_file}")
        eve.credential(f"https://eve:{password('eve')}@127.0.0.1:{site.split(':')[2]}")
        subscribers.append((eve, switch, switch, f"eve-{switch}-mirror"))
    for person, conf, switch, mirror in subscribers:
        user = "bob" if person is bob else "eve"
        person.write(f"subscribe/{conf}.conf", (
            f"broker {url(nodes[switch], user)}\nexchange xpublic\nsubtopic #\n"
            f"ca_file {ca_file}\nmirror on\ndirectory {tmp / mirror}\naccept .*\n"
            "expire 1h\n"))

    def start(sub):
        person, conf = sub[0], sub[1]
        person.run("subscribe", "declare", conf)
        person.run("subscribe", "start", conf)
    side_by_side(start, subscribers)

    tree = tmp / "alice-flow"
    files = {d: tree / d / f"{d[:1]}.dat" for d in ("secret", "stranger", "public")}
    for path in files.values():
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(5000))
    web = nginx(tree, workers=1, https=True)
    alice = people["alice"]

    def post(d, *extra):
        return alice.run("post", "--post_broker", url(nodes["labA"], "alice"),
                         "--post_base_url", web.url, "--post_base_dir", tree, *extra,
                         tree / d)
    post("secret", "--to_clusters", "labC", "--readers", "bob")
    warned = post("stranger", "--to_clusters", "labC", "--readers", "zed").stderr
    assert "readers: zed" in warned, warned            # dd_post's check on labA
    post("public", "--to_clusters", "ALL")
    rel = {d: f"alice/{d}/{p.name}" for d, p in files.items()}

    # bob's subscriber got the post and the file, byte for byte; labC keeps
    # it in its private tree
    wait_for(lambda: (tmp / "bob-mirror" / rel["secret"]).exists(), timeout=60,
             what="bob's subscriber on labC to download the restricted file")
    secret = files["secret"].read_bytes()
    assert (tmp / "bob-mirror" / rel["secret"]).read_bytes() == secret
    assert (tmp / "labC-data.private" / "bob" / rel["secret"]).read_bytes() == secret
    assert (tmp / "labB-data.private" / "bob" / rel["secret"]).read_bytes() == secret
    for name in NAMES:                                  # in no public tree
        assert not (tmp / f"{name}-data" / rel["secret"]).exists(), name
        assert not (tmp / f"{name}-data" / rel["stranger"]).exists(), name
    # the public post went everywhere, to eve too (her subscribers work)
    public_mirrors = ("bob-mirror", "eve-labB-mirror", "eve-labC-mirror", "carol-mirror",
                      "dave-mirror")
    wait_for(lambda: all((tmp / m / rel["public"]).exists() for m in public_mirrors),
             timeout=60, what="the public file in every subscriber's mirror")
    for m in public_mirrors:
        assert (tmp / m / rel["public"]).read_bytes() == files["public"].read_bytes(), m
    wait_for(lambda: (tmp / "labC-data.private" / "zed" / rel["stranger"]).exists(),
             timeout=30, what="labC to keep the file for an unknown reader private")

    # alice's dd_log on labA: bob's download on labC, labC's 404 for zed,
    # nothing of eve's about either restricted file
    rows: list[dict] = []

    def alice_rows():
        out = alice.run("log", "mine", "--format", "json").stdout
        rows.extend(json.loads(line) for line in out.splitlines())
        return {(r["user"], r["relpath"], r["code"]) for r in rows}
    want = {("bob", rel["secret"], 201), ("eve", rel["public"], 201),
            ("labC", rel["stranger"], 404)}
    wait_for(lambda: alice_rows() >= want, timeout=60, interval=1,
             what=f"alice's log messages of bob's download and labC's 404 (have {rows[-4:]})")
    zed = next(r for r in rows if r["relpath"] == rel["stranger"] and r["code"] == 404)
    assert "no user zed on this switch (labC): kept private" in zed["message"], zed
    # (reported by labC: its link from labB took the post, user labC)
    bobs = [r for r in rows if r["user"] == "bob" and r["relpath"] == rel["secret"]]
    assert {r["base_url"] for r in bobs} == {f"{site_c}_private/bob/"}, bobs

    time.sleep(1)                      # anything late for eve would show now
    alice_rows()
    private = (rel["secret"], rel["stranger"])
    assert not [r for r in rows if r["user"] in ("eve", "carol", "dave")
                and r["relpath"] in private], rows
    for m in ("eve-labB-mirror", "eve-labC-mirror", "carol-mirror", "dave-mirror"):
        assert not [p for p in (tmp / m).rglob("*") if p.parent.name in ("secret", "stranger")], m
    eve_logs = "".join(p.read_text(errors="replace")
                       for p in (eve.root / "state").rglob("*.log*"))
    assert rel["public"] in eve_logs and not any(r in eve_logs for r in private)

    # no URL of it serves eve, on labB or labC: only bob, on labC (and the links)
    path = f"/_private/bob/{rel['secret']}"
    assert _get(site_c, path, ca_file, "bob") == (200, secret)
    assert _get(site_c, path, ca_file, "labA")[0] == 200     # labA's link account on labC
    for name, site in (("labB", site_b), ("labC", site_c)):
        assert _get(site, path, ca_file)[0] == 401, site            # no credentials
        # a wrong password: 403 before nginx checks it (eve reads nothing here)
        assert _get(site, path, ca_file, "eve", "wrong")[0] in (401, 403), site
        for trick in (path, f"/_private/eve/../bob/{rel['secret']}",
                      f"/_private/eve/%2e%2e/bob/{rel['secret']}",
                      f"/_private/eve/%2E%2E/bob/{rel['secret']}",
                      f"/_private/zed/../bob/{rel['secret']}",
                      f"/_private/zed/%2e%2e/bob/{rel['secret']}",
                      f"/alice/../_private/bob/{rel['secret']}",
                      f"/alice/%2e%2e/_private/bob/{rel['secret']}",
                      f"/_private/bob,eve/../bob/{rel['secret']}",
                      f"/_private/zed/{rel['stranger']}"):
            status, body = _get(site, trick, ca_file, "eve")
            assert status == 403 and secret not in body, (site, trick, status)
        # outside the private location: the public tree has no such file,
        # and nothing above it is served
        for trick in (f"/{rel['secret']}", f"/../{name}-data.private/bob/{rel['secret']}",
                      f"/%2e%2e/{name}-data.private/bob/{rel['secret']}"):
            status, body = _get(site, trick, ca_file, "eve")
            assert status in (400, 404) and secret not in body, (site, trick, status)
    assert _get(site_b, path, ca_file, "bob")[0] in (401, 403)   # labB's bob: nobody
    # and no log tells a password (the download credentials, the link's)
    for m in (bob, eve, *net["switches"].values()):
        text = "".join(p.read_text(errors="replace") for p in (m.root / "state").rglob("*.log*"))
        assert not [u for u in ("bob", "eve", "labA", "labB", "labC") if password(u) in text]


def capture(node: RabbitNode, exchange: str):
    """A queue bound to all of ``exchange`` on ``node`` (the test's plain
    port); a function that returns the posts that reached it since the last
    call, decoded."""
    params = pika.URLParameters(node.url())
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=False, auto_delete=False,
                                 arguments={"x-expires": 600_000}).method.queue
        ch.queue_bind(queue, exchange, "#")
    finally:
        conn.close()

    def taken() -> list[Message]:
        out = []
        conn = pika.BlockingConnection(params)
        try:
            ch = conn.channel()
            while True:
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    return out
                out.append(codec.decode(method.routing_key, props.headers, body,
                                        props.content_type, exchange))
        finally:
            conn.close()
    return taken


def publish(node: RabbitNode, exchange: str, msg: Message) -> None:
    """``msg`` published on ``exchange`` of ``node`` (confirmed), as v02."""
    topic, headers, body, content_type = codec.encode(msg, "v02.post")
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, topic, body, pika.BasicProperties(
            headers=headers, content_type=content_type, delivery_mode=2))
    finally:
        conn.close()


def test_a_readers_header_widened_on_a_link_is_refused(net, nginx):
    """Issue 15: a restricted post whose restriction is widened on its way
    between two switches is refused by the switch it reaches. Alice posts a
    file for bob on labC; labB's real post of it (taken off labB's xprivate,
    as labC's link gets it) is then published again on xprivate_labC, the
    exchange labC's link reads labB's restricted posts from, each time
    changed so that someone else could read the file: its readers header
    removed, or naming eve as well, or eve instead; its URL moved so that
    it no longer ends in .../_private/bob/ while still naming labB's
    private copy (the link's account may fetch anything under _private/);
    a public post of the same file from alice's own server. labC refuses
    every one (403, in its link's log and in alice's dd_log): nothing of it
    on labC's xpublic, nor in its public tree, nor in dave's mirror (labC's
    subscriber), nor anywhere for eve."""
    tmp, people, nodes, switches = (net[k] for k in ("tmp", "people", "nodes", "switches"))
    site_b = net["webs"]["labB"].url
    tree = tmp / "alice-tamper"               # alice's server: <url>alice/tamper/t.dat
    f = tree / "alice" / "tamper" / "t.dat"
    f.parent.mkdir(parents=True)
    f.write_bytes(os.urandom(4000))
    web = nginx(tree, workers=1, https=True)
    on_b = capture(nodes["labB"], "xprivate")
    public_c = capture(nodes["labC"], "xpublic")
    eve_c = capture(nodes["labC"], "xprivate_eve")
    people["alice"].run("post", "--post_broker", url(nodes["labA"], "alice"),
                        "--post_base_url", f"{web.url}alice/", "--post_base_dir", tree / "alice",
                        "--to_clusters", "labC", "--readers", "bob", f.parent)
    rel = "alice/tamper/t.dat"
    held = tmp / "labC-data.private" / "bob" / rel
    wait_for(lambda: held.exists(), timeout=60, what="labC to hold bob's file privately")
    assert held.read_bytes() == f.read_bytes()
    posts: list[Message] = []
    wait_for(lambda: posts.extend(on_b()) or any(p.relpath == rel for p in posts),
             timeout=30, what="labB's restricted post on its xprivate")
    real = next(p for p in posts if p.relpath == rel)
    assert real.base_url == f"{site_b}_private/bob/" and real.headers["readers"] == "bob"
    public_c(), eve_c()           # the legitimate flow's posts: not what is counted below

    def without(headers, *names):
        return {k: v for k, v in headers.items() if k not in names}
    tampered = {
        "readers removed": replace(real, headers=without(real.headers, "readers")),
        "readers widened": replace(real, headers={**real.headers, "readers": "bob,eve"}),
        "readers changed": replace(real, headers={**real.headers, "readers": "eve"}),
        "URL moved, public": replace(real, base_url=site_b, relpath=f"_private/bob/{rel}",
                                     headers=without(real.headers, "readers")),
        "URL split, public": replace(real, base_url=f"{site_b}_private/", relpath=f"bob/{rel}",
                                     headers=without(real.headers, "readers")),
        "URL split, for eve": replace(real, base_url=f"{site_b}_private/",
                                      relpath=f"bob/{rel}",
                                      headers={**real.headers, "readers": "eve"}),
        "URL dotted, public": replace(real, base_url=f"{site_b}_private/bob/x/../",
                                      headers=without(real.headers, "readers")),
        # alice's own server had it, public: labC holds it for bob only
        "public copy": replace(real, base_url=web.url, headers=without(real.headers, "readers")),
    }
    link_c = switches["labC"]
    before = link_c.logs("from-labB").count("rejected")
    for msg in tampered.values():                  # all at once: refused side by side
        publish(nodes["labB"], "xprivate_labC", msg)
    wait_for(lambda: link_c.logs("from-labB").count("rejected") >= before + len(tampered),
             timeout=60, interval=0.3, what="labC's link to refuse the tampered posts")
    refusals = [line.split("\n")[0]
                for line in link_c.logs("from-labB").split("rejected ")[before + 1:]]
    for what, msg in tampered.items():
        assert [r for r in refusals if f"{msg.relpath}: readers" in r and "refused" in r], \
            (what, refusals)
    # each refusal went back to alice as a log message (403), through labB and labA
    rows: list[dict] = []

    def refused():
        out = people["alice"].run("log", "mine", "--format", "json").stdout
        rows.extend(json.loads(line) for line in out.splitlines())
        return [r for r in rows if r["code"] == 403 and r["user"] == "labC"]
    wait_for(lambda: len(refused()) >= len(tampered), timeout=60, interval=1,
             what="alice's log messages of labC's refusals")
    assert sorted(r["relpath"] for r in refused()) == sorted(
        m.relpath for m in tampered.values())
    time.sleep(2)                  # anything taken late would show now
    assert [p.relpath for p in public_c()] == []
    assert [p.relpath for p in eve_c()] == []
    assert sorted(str(p.relative_to(tmp / "labC-data.private"))
                  for p in (tmp / "labC-data.private").rglob("t.dat")) == [f"bob/{rel}"]
    assert not [p for p in (tmp / "labC-data").rglob("*") if "tamper" in str(p)]
    assert not [p for p in (tmp / "dave-mirror").rglob("*") if "tamper" in str(p)]
