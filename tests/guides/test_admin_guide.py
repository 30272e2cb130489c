"""doc/admin-guide.md run as written: every ```sh block in order, every file
the guide shows written where it says, on sandboxed machines
(tests/guides/runner.py): "Set up a switch from a vanilla Debian machine"
(sections 1-11) on three (the switch, alice's, carol's), followed on the
switch by the reference sections' commands ("Installing", "Watching
directories", "Operating a switch's configurations" with "Starting with the
system"); "Link another switch" on lab1 and lab2, then "Reduce redundant
feeds" with lab3 fed by both; "RabbitMQ" (permissions by hand) on a node of
its own. SPANS lists what is run: tests/guides/test_coverage.py checks that
every command of the guide is in one of them or marked skip.

What the test provides, and nothing else: a new private RabbitMQ node for
the switch (the guide's `rabbitmqctl` acts on it), alice's files under her
/srv/data and her web server (a private nginx) for data.example.com, and
the substitutions below, which put the guide's host names and absolute
paths on 127.0.0.1 and in the sandboxes. The switch's nginx is the one
`systemctl start nginx` starts (a private nginx including the sandbox's
/etc/nginx/sites-enabled), serving the site `dd_audit nginx` wrote.
"""
from __future__ import annotations

import shlex
import shutil
from dataclasses import replace

import pika
import pytest
import requests

from tests.guides.conftest import log_table, rabbit_api, rabbit_queues
from tests.clusterkit import all_running, api
from tests.guides.runner import GuideRunner, parse_guide
from tests.helpers import REPO_ROOT, compare_trees, free_port, make_tree, port_open, wait_for

GUIDE = REPO_ROOT / "doc" / "admin-guide.md"


def shown_after(text: str, marker: str) -> str:
    """The first fenced block after ``marker`` in the guide's text."""
    rest = text[text.index(marker):]
    start = rest.index("```\n") + 4
    return rest[start:rest.index("```", start)]


def options(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


# the parts of the guide the tests below run (parse_guide's start, stop), all
# of it but the blocks marked skip (tests/guides/test_coverage.py)
SET_UP = ("## Set up a switch", "## Link another switch")
LINK = ("## Link another switch", "## Reduce redundant feeds")
WINNOW = ("## Reduce redundant feeds", "## Installing")
INSTALLING = ("## Installing", "## RabbitMQ")
RABBITMQ = ("## RabbitMQ", "## Queues")
WATCHING = ("## Watching directories", "## Operating a switch's configurations")
OPERATING = ("## Operating a switch's configurations", "## Running a switch on a cluster")
CLUSTER = ("## Running a switch on a cluster", "## Not implemented yet")
SPANS = {GUIDE: [SET_UP, LINK, WINNOW, INSTALLING, RABBITMQ, WATCHING, OPERATING, CLUSTER]}
START, STOP = SET_UP

# what the shims of the switch recorded, in order (sudo records itself, then
# the shimmed command records itself too)
SWITCH_CALLS = """\
sudo apt-get install -y python3-venv
apt-get install -y python3-venv
sudo systemctl enable rabbitmq-server nginx
systemctl enable rabbitmq-server nginx
sudo systemctl start nginx
systemctl start nginx
sudo rabbitmqctl add_user admin Adm1n-Secret
rabbitmqctl add_user admin Adm1n-Secret
sudo rabbitmqctl set_user_tags admin administrator
rabbitmqctl set_user_tags admin administrator
sudo rabbitmqctl set_permissions -p / admin '.*' '.*' '.*'
rabbitmqctl set_permissions -p / admin '.*' '.*' '.*'
sudo install -d -o {user} -m 755 /var/lib/sarra/data
sudo tee /etc/nginx/sites-available/sarra-lab1
sudo ln -s /etc/nginx/sites-available/sarra-lab1 /etc/nginx/sites-enabled/
sudo nginx -t
nginx -t
sudo systemctl reload nginx
systemctl reload nginx
"""
# then the reference sections' (INSTALLING, WATCHING, OPERATING)
REFERENCE_CALLS = """\
sudo tee /etc/sysctl.d/60-sarra.conf
sudo sysctl --system
sysctl --system
sudo systemctl enable --now sarra.service sarra-sanity.timer
systemctl enable --now sarra.service sarra-sanity.timer
sudo systemctl restart sarra
systemctl restart sarra
"""


@pytest.mark.rabbit_nodes("admin")
def test_set_up_a_switch_as_the_admin_guide_says(rabbit_node, machines, nginx):
    node = rabbit_node("admin")                 # a new RabbitMQ: only guest
    switch_http = free_port()                    # the switch's nginx site (port 80 in the guide)
    amqp = f"127.0.0.1:{node.amqp_port}"

    alice = machines("alice", paths=["/srv/data"])
    files = make_tree(alice.path("/srv/data/2026-11-25"), 10, depth=1, size=2000)
    data = nginx(alice.path("/srv/data"), workers=1)   # alice's web server: data.example.com
    alice.subs.update({"@switch.example.com/": f"@{amqp}/",
                       "http://data.example.com/": data.url})
    switch = machines("switch", cwd=REPO_ROOT, rabbit=node, nginx=True,
                      paths=["/var/lib/sarra", "/etc/nginx", "/etc/sysctl.d"],
                      subs={"@localhost/": f"@{amqp}/",            # broker URLs
                            "@localhost:5672/": f"@{amqp}/",       # credentials.conf
                            "http://switch.example.com/": f"http://127.0.0.1:{switch_http}/",
                            # the description: the private node's management API
                            # (the default would be port 15672, the shared broker's)
                            "\nusers:": f"\nmanagement_url: {node.management_url}\nusers:"})
    carol = machines("carol", paths=["/data/switch"],
                     subs={"@switch.example.com/": f"@{amqp}/"})
    runner = GuideRunner(parse_guide(GUIDE, START, STOP),
                         {"switch": switch, "alice": alice, "carol": carol})
    assert runner.skipped == []

    # 1-5: install, the administrator, the description, dd_audit, nginx
    reload = runner.index("systemctl reload nginx")
    runner.run_until(reload + 1)
    declared = runner.results[runner.index("dd_audit declare")].stdout
    for change in ("created user feeder", "created user alice (source)", "declared exchange xpublic",
                   "bound xs_alice -> xsarra"):
        assert change in declared, declared
    site = switch.path("/etc/nginx/sites-enabled/sarra-lab1").read_text()
    assert f"listen 127.0.0.1:{switch_http};" in site, site
    wait_for(lambda: port_open("127.0.0.1", switch_http, 0.2), timeout=10,
             what="the switch's nginx site to listen")
    again = switch.sh("dd_audit declare ~/.config/sarra/switch.yaml && "
                      "dd_audit check ~/.config/sarra/switch.yaml")
    assert again.returncode == 0 and again.stdout.strip() == "", again.output

    # 6-7: dd_sara and the log router, written by dd_audit configs as the
    # guide shows them, started
    start = runner.index("sarra start")
    runner.run_until(start + 1)
    text = GUIDE.read_text(encoding="utf-8")
    for rel, marker in (("sara/switch.conf", "`sara/switch.conf`:"),
                        ("shovel/logs.conf", "`shovel/logs.conf`, the log router:")):
        written = (switch.home / ".config" / "sarra" / rel).read_text()
        assert options(written) == options(switch.substitute(shown_after(text, marker))), rel
    status = runner.results[start].stdout
    assert "sara/switch: running (2/2 instances)" in status, status
    assert "shovel/logs: running (1/1 instances)" in status, status

    # 8: carol subscribes; her queue is there before alice posts
    subscribe = runner.index("dd_subscribe start alice")
    runner.run_until(subscribe + 1)
    wait_for(lambda: any(q.startswith("q_carol.subscribe.alice.") for q in rabbit_queues(node)),
             timeout=20, what="carol's queue")

    # 9: alice subscribes to her log messages, then posts
    post = runner.index("dd_post --post_broker")
    runner.run_until(post + 1)
    assert "(0 log messages from xr_alice)" in runner.results[post - 1].stderr
    assert "posted 10 of 10 files" in runner.results[post].output, runner.results[post].output

    # alice's tree reaches the switch, then carol, byte for byte
    mirror = carol.path("/data/switch") / "alice" / "2026-11-25"
    wait_for(lambda: not compare_trees(alice.path("/srv/data/2026-11-25"), mirror),
             timeout=30, what=f"alice's {len(files)} files at carol's")
    assert not compare_trees(alice.path("/srv/data/2026-11-25"),
                             switch.path("/var/lib/sarra/data/alice/2026-11-25"))
    # and the 20 log messages (the switch's and carol's) are in alice's queue
    wait_for(lambda: sum(n for q, n in rabbit_queues(node).items()
                         if q.startswith("q_alice.log.mine.")) >= 20,
             timeout=20, what="20 log messages for alice")

    # 10: where alice's data went
    where = runner.index("dd_log mine", after=post)
    runner.run_until(where + 1)
    shown = runner.results[where]
    rows = log_table(shown.stdout)
    feeder = {r["relpath"] for r in rows if r["who"].startswith("feeder@") and r["code"] == "201"}
    got = {r["relpath"] for r in rows if r["who"].startswith("carol@") and r["code"] == "201"}
    assert feeder == {f"2026-11-25/{f}" for f in files}, shown.stdout
    assert got == {f"alice/2026-11-25/{f}" for f in files}, shown.stdout
    assert "(20 log messages from xr_alice)" in shown.stderr

    # 11: watching over it
    runner.run_to_end()
    watch = runner.results[runner.index("sarra status", after=where)].stdout
    assert "sara/switch: running (2/2 instances)" in watch, watch
    logs = runner.results[runner.index("sarra log sara/switch")].stdout
    assert logs.strip(), "sarra log shows nothing"
    walk_through = len(switch.calls())

    # the reference sections, on the switch: installing again changes nothing;
    # the inotify limit (the sysctl shim checks the setting, applies nothing)
    switch.path("/etc/sysctl.d").mkdir(parents=True)           # as on Debian
    reference = GuideRunner([replace(st, index=i) for i, st in enumerate(
        [st for span in (INSTALLING, WATCHING, OPERATING) for st in parse_guide(GUIDE, *span)])],
        {"switch": switch})
    assert [st.text.split()[0] for st in reference.steps if st.kind == "skip"] == ["python3"]
    setup = reference.run_next()
    assert "setup: ready" in setup.stdout, setup.output
    limit = reference.run_next()
    assert "fs.inotify.max_user_watches = 524288" in limit.stdout, limit.output
    assert switch.path("/etc/sysctl.d/60-sarra.conf").read_text() == \
        "fs.inotify.max_user_watches=524288\n"
    # operating the switch's configurations: list, start, status, log,
    # restart, sanity, stop
    operate = reference.run_next()
    home = "~/.config/sarra"
    assert [ln for ln in switch.unsubstitute(operate.stdout).splitlines()
            if ln.startswith(("sara/switch: ~", "shovel/logs: ~"))] == [
        f"sara/switch: {home}/sara/switch.conf (2 instances)",
        f"shovel/logs: {home}/shovel/logs.conf (1 instance)"], operate.stdout
    assert "sara/switch: running (2/2 instances)" in operate.stdout, operate.stdout
    assert "sara/switch stopped (2 instances)" in operate.stdout, operate.stdout
    assert "shovel/logs stopped (1 instances)" in operate.stdout, operate.stdout
    after = switch.sh("sarra status")
    assert after.returncode == 1 and "sara/switch: stopped (0/2 instances)" in after.stdout
    # starting with the system: the package's units (debian/sarra.service, run
    # by the systemctl shim with its environment) act on /etc/sarra, where the
    # package's switch keeps its configurations (section 1, "With the Debian
    # package"): the walk-through's go there, as its administrator would put them
    etc = switch.root / "etc" / "sarra"
    shutil.copytree(switch.home / ".config" / "sarra", etc)
    reference.run_to_end()
    units = switch.sh(f"SARRA_CONFIG_DIR={etc} SARRA_STATE_DIR={switch.root}/var/lib/sarra "
                      "sarra status", substitute=False)
    assert "sara/switch: running (2/2 instances)" in units.stdout, units.output
    assert "shovel/logs: running (1/1 instances)" in units.stdout, units.output
    journal = (switch.state / "units" / "sarra.service.log").read_text()
    assert journal.count("sara/switch instance 1 started") == 2, journal     # start, restart

    # the shims saw exactly the guide's commands
    recorded = [shlex.split(c) for c in switch.calls()]
    expected = [shlex.split(c) for c in SWITCH_CALLS.format(user=switch.env["USER"]).splitlines()]
    assert recorded[:walk_through] == expected
    assert recorded[walk_through:] == [shlex.split(c) for c in REFERENCE_CALLS.splitlines()]
    assert alice.calls() == [] and carol.calls() == []
    for machine in (switch, alice, carol):
        assert machine.unused_substitutions() == [], machine.name
        for log in [*(machine.home / ".cache" / "sarra" / "log").glob("*.log"),
                    *(machine.root / "var" / "lib" / "sarra" / "log").glob("*.log")]:   # the units'
            text = log.read_text(errors="replace")
            assert "[ERROR]" not in text and "[WARNING]" not in text, f"{log.name}:\n{text}"
    assert not any("readable by group" in r.output
                   for r in [*runner.results.values(), *reference.results.values()])


def set_up_as(machine: str, steps: list, own: list) -> list:
    """The set-up walk-through's ``steps`` for another switch, on ``machine``:
    its own files (``own``: description and passwords) in place of those of
    section 3, everything else as the guide says it for lab1."""
    out: list = []
    for st in steps:
        if st.kind == "file" and st.section.startswith("3."):
            out += [] if out and out[-1] in own else own
        else:
            out.append(replace(st, machine=machine))
    return out


@pytest.mark.rabbit_nodes("link-lab1", "link-lab2", "link-lab3")
def test_link_another_switch_as_the_admin_guide_says(rabbit_node, machines, nginx):
    """"Link another switch": lab1 set up as sections 1-7 say, lab2 the same
    with the description and passwords of the link section, then the link
    section's commands on both; a post of alice on lab1 for lab2 reaches
    lab2's tree, and lab2's acquisition is in alice's log on lab1."""
    one, two = rabbit_node.several("link-lab1", "link-lab2")
    http1, http2 = free_port(), free_port()
    amqp1, amqp2 = f"127.0.0.1:{one.amqp_port}", f"127.0.0.1:{two.amqp_port}"
    switch = machines("switch", cwd=REPO_ROOT, rabbit=one, nginx=True,
                      paths=["/var/lib/sarra", "/etc/nginx"],
                      subs={"@localhost/": f"@{amqp1}/", "@localhost:5672/": f"@{amqp1}/",
                            "http://switch.example.com/": f"http://127.0.0.1:{http1}/",
                            "\nusers:": f"\nmanagement_url: {one.management_url}\nusers:"})
    lab2 = machines("lab2", cwd=REPO_ROOT, rabbit=two, nginx=True,
                    paths=["/var/lib/sarra", "/etc/nginx"],
                    subs={"@localhost/": f"@{amqp2}/", "@localhost:5672/": f"@{amqp2}/",
                          "@switch.example.com/": f"@{amqp1}/",       # lab1, seen from lab2
                          "http://switch2.example.com/": f"http://127.0.0.1:{http2}/",
                          "\nusers:": f"\nmanagement_url: {two.management_url}\nusers:"})
    setup = parse_guide(GUIDE, START, "### 8.")               # sections 1-7, on "switch"
    link = parse_guide(GUIDE, *LINK)
    own = [st for st in link if st.machine == "lab2" and st.kind == "file"]
    assert sorted(st.path for st in own) == ["~/.config/sarra/credentials.conf",
                                             "~/.config/sarra/switch.yaml"]
    lab2_setup = set_up_as("lab2", setup, own)      # sections 1-7 with lab2's files
    on_lab1 = [st for st in link if st.machine == "switch"]   # lab2's account, first
    assert on_lab1 == link[:len(on_lab1)]
    steps = [replace(st, index=i) for i, st in enumerate(
        [*setup, *on_lab1, *lab2_setup, *link[len(on_lab1):]])]
    runner = GuideRunner(steps, {"switch": switch, "lab2": lab2})
    assert runner.skipped == []

    alice = machines("alice", paths=["/srv/data"])
    files = make_tree(alice.path("/srv/data/2026-11-26"), 5, depth=1, size=3000)
    data = nginx(alice.path("/srv/data"), workers=1)
    alice.subs.update({"@switch.example.com/": f"@{amqp1}/",
                       "http://data.example.com/": data.url})
    alice.write_file("~/.config/sarra/credentials.conf",
                     "amqp://alice:Al1ce-Secret@switch.example.com/\n")
    alice.write_file("~/.config/sarra/log/mine.conf", "broker amqp://alice@switch.example.com/\n")

    runner.run_to_end()
    added = runner.results[runner.index("dd_audit add-user")].stdout
    assert "set permissions of lab2 (link)" in added, added
    last = runner.results[runner.index("dd_audit configs",
                                       after=len(setup) + len(on_lab1) + len(lab2_setup))].stdout
    assert "wrote" not in last, last    # written at set-up (section 6), unchanged since
    written = sorted(p.relative_to(lab2.home / ".config" / "sarra").as_posix()
                     for p in (lab2.home / ".config" / "sarra").glob("*/*.conf"))
    assert written == ["sara/from-lab1.conf", "sara/switch.conf", "shovel/logs-to-lab1.conf",
                       "shovel/logs.conf"]
    status = last
    for name in ("sara/from-lab1", "shovel/logs-to-lab1", "sara/switch", "shovel/logs"):
        assert f"{name}: running" in status, status

    alice.sh("chmod 600 ~/.config/sarra/credentials.conf && dd_log mine")   # subscribed
    posted = alice.sh("dd_post --post_broker amqp://alice@switch.example.com/ "
                      "--post_base_url http://data.example.com/ --post_base_dir /srv/data "
                      "--to_clusters lab2 /srv/data/2026-11-26")
    assert "posted 5 of 5 files" in posted.output, posted.output
    there = lab2.path("/var/lib/sarra/data") / "alice" / "2026-11-26"
    wait_for(lambda: not compare_trees(alice.path("/srv/data/2026-11-26"), there),
             timeout=40, what="alice's files on lab2")
    seen: list[dict] = []

    def lab2_rows() -> bool:
        seen.extend(log_table(alice.sh("dd_log mine").stdout))
        return {r["relpath"] for r in seen if r["who"].startswith("lab2@")} == {
            f"alice/2026-11-26/{f}" for f in files}
    wait_for(lab2_rows, timeout=30, interval=1, what="lab2's log messages in alice's log")
    assert lab2.calls() == switch.calls()          # the same set-up, on each
    for machine in (switch, lab2, alice):
        assert machine.unused_substitutions() == [], machine.name
        for log in (machine.home / ".cache" / "sarra" / "log").glob("*.log"):
            text = log.read_text(errors="replace")
            assert "[ERROR]" not in text, f"{machine.name} {log.name}:\n{text}"

    # and, with lab1 and lab2 so linked, lab3 fed by both
    reduce_redundant_feeds(rabbit_node, machines, switch, lab2, alice, amqp1, amqp2)


def reduce_redundant_feeds(rabbit_node, machines, lab1, lab2, alice, amqp1, amqp2):
    """"Reduce redundant feeds": lab3 gets accounts on lab1 and lab2 (the
    section's commands there), is set up as sections 1-5 say with the
    section's description and passwords, then its feeds, winnow and dd_sara
    as shown; alice posts for lab2 and lab3 on lab1: her files reach lab3,
    each downloaded once (from lab1 or from lab2), each second post dropped
    as a duplicate."""
    three = rabbit_node("link-lab3")
    http3 = free_port()
    amqp3 = f"127.0.0.1:{three.amqp_port}"
    lab3 = machines("lab3", cwd=REPO_ROOT, rabbit=three, nginx=True,
                    paths=["/var/lib/sarra", "/etc/nginx"],
                    subs={"@localhost/": f"@{amqp3}/", "@localhost:5672/": f"@{amqp3}/",
                          "@switch.example.com/": f"@{amqp1}/",        # lab1, seen from lab3
                          "@switch2.example.com/": f"@{amqp2}/",       # lab2
                          "http://switch3.example.com/": f"http://127.0.0.1:{http3}/",
                          "\nusers:": f"\nmanagement_url: {three.management_url}\nusers:"})
    feeds = parse_guide(GUIDE, *WINNOW)
    upstream = [st for st in feeds if st.machine != "lab3"]       # lab3's accounts
    assert [st.machine for st in upstream] == ["switch", "lab2"] and \
        upstream == feeds[:len(upstream)]
    own = [st for st in feeds if st.kind == "file" and st.path in (
        "~/.config/sarra/switch.yaml", "~/.config/sarra/credentials.conf")]
    assert [(st.machine, st.path) for st in own] == [
        ("lab3", "~/.config/sarra/switch.yaml"), ("lab3", "~/.config/sarra/credentials.conf")]
    lab3_setup = set_up_as("lab3", parse_guide(GUIDE, SET_UP[0], "### 6."), own)   # 1-5
    rest = [st for st in feeds[len(upstream):] if st not in own]
    runner = GuideRunner([replace(st, index=i) for i, st in enumerate(
        [*upstream, *lab3_setup, *rest])], {"switch": lab1, "lab2": lab2, "lab3": lab3})
    assert runner.skipped == []
    runner.run_to_end()
    for i in (0, 1):
        assert "set permissions of lab3 (subscriber)" in runner.results[i].stdout, \
            runner.results[i].output
    status = runner.results[len(runner.steps) - 1].stdout
    for name in ("shovel/feed-a", "shovel/feed-b", "winnow/two-feeds", "sara/winnowed"):
        assert f"{name}: running" in status, status

    files = make_tree(alice.path("/srv/data/2026-11-27"), 6, depth=1, size=2000, seed=27)
    posted = alice.sh("dd_post --post_broker amqp://alice@switch.example.com/ "
                      "--post_base_url http://data.example.com/ --post_base_dir /srv/data "
                      "--to_clusters lab2,lab3 /srv/data/2026-11-27")
    assert f"posted {len(files)} of {len(files)} files" in posted.output, posted.output
    there = lab3.path("/var/lib/sarra/data") / "alice" / "2026-11-27"
    wait_for(lambda: not compare_trees(alice.path("/srv/data/2026-11-27"), there),
             timeout=40, what="alice's files on lab3")

    def duplicates() -> int:
        logs = (lab3.home / ".cache" / "sarra" / "log").glob("winnow_two-feeds_*.log")
        return sum(p.read_text(errors="replace").count(
            ": duplicate (seen in the last nodupe_ttl)") for p in logs)
    wait_for(lambda: duplicates() >= len(files), timeout=30, what="the second feed's posts")
    assert duplicates() == len(files)
    # lab1 served each file to lab2 (its link) and some to lab3, lab2 the
    # others to lab3: lab3 took each once
    gets = sum((m.state / "nginx" / "access.log").read_text().count('"GET /alice/2026-11-27/')
               for m in (lab1, lab2))
    assert gets == 2 * len(files), gets
    assert lab3.calls() == lab1.calls()            # sections 1-5 (6-7 call no shim)
    assert lab3.unused_substitutions() == []
    for log in (lab3.home / ".cache" / "sarra" / "log").glob("*.log"):
        text = log.read_text(errors="replace")
        assert "[ERROR]" not in text and "[WARNING]" not in text, f"lab3 {log.name}:\n{text}"


@pytest.mark.rabbit_nodes("link-lab2")
def test_rabbitmq_permissions_by_hand_as_the_admin_guide_says(rabbit_node, machines):
    """"RabbitMQ": alice added with rabbitmqctl and the anchored patterns the
    guide shows, on a node without an alice (the link test's lab2; she is
    removed after); she may then declare, write and read what is hers and
    read xpublic, and nothing of a user whose name begins with hers."""
    node = rabbit_node("link-lab2")
    switch = machines("switch", rabbit=node)
    runner = GuideRunner(parse_guide(GUIDE, *RABBITMQ), {"switch": switch})
    assert runner.skipped == []
    admin = pika.BlockingConnection(pika.URLParameters(node.url()))
    try:
        runner.run_to_end()
        assert [shlex.split(c)[:2] for c in switch.calls()] == [
            ["rabbitmqctl", "add_user"], ["rabbitmqctl", "set_permissions"]]
        setup = admin.channel()
        for name in ("xpublic", "xs_alicebob"):          # the switch's, and another user's
            setup.exchange_declare(name, "topic", durable=True)
        alice = pika.BlockingConnection(pika.URLParameters(node.url("alice", "Fake-Passw0rd")))
        try:
            def allowed(what, *args) -> bool:
                channel = alice.channel()
                channel.confirm_delivery()        # a refused publish closes it, here
                try:
                    getattr(channel, what)(*args)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    assert exc.reply_code == 403, exc
                    return False
                channel.close()
                return True
            assert allowed("exchange_declare", "xs_alice", "topic", False, True)
            assert allowed("exchange_declare", "xs_alice_model", "topic", False, True)
            assert allowed("queue_declare", "q_alice.subscribe.obs.1.2", False, True)
            assert allowed("queue_bind", "q_alice.subscribe.obs.1.2", "xpublic", "v02.post.#")
            assert allowed("queue_bind", "q_alice.subscribe.obs.1.2", "xs_alice", "v02.post.#")
            assert allowed("basic_publish", "xs_alice", "v02.post.obs", b"x")   # write
            assert not allowed("basic_publish", "xs_alicebob", "v02.post.obs", b"x")
            assert not allowed("basic_publish", "xpublic", "v02.post.obs", b"x")
            assert not allowed("exchange_declare", "xs_alicebob", "topic", False, True)
            assert not allowed("queue_declare", "q_alicebob.subscribe.x", False, True)
            assert not allowed("queue_bind", "q_alice.subscribe.obs.1.2", "xs_alicebob", "#")
            assert not allowed("exchange_declare", "xpublic", "topic", False, True)
        finally:
            alice.close()
    finally:
        cleanup = admin.channel()
        for name in ("xs_alicebob", "xs_alice", "xs_alice_model"):
            cleanup.exchange_delete(name)
        cleanup.queue_delete("q_alice.subscribe.obs.1.2")
        admin.close()
        try:                                    # rabbitmqctl delete_user, by the API
            rabbit_api(node, "DELETE", "users/alice")
        except requests.HTTPError:
            pass                                # (not added)


def test_a_switch_on_a_cluster_as_the_admin_guide_says(cluster, machines, nginx):
    """"Running a switch on a cluster" on the session's three clustered nodes
    (joining them is the one step not run): the switch declared and started
    with quorum queues and its stream, bob subscribed with the three nodes;
    alice's files reach bob's mirror, then his replay of the stream."""
    all_running(cluster)
    # the guide's node names on the cluster's ports (node1's API, and AMQP)
    nodes = {f"node{i}.example.com": f"127.0.0.1:{n.amqp_port}" for i, n in enumerate(cluster, 1)}
    on_switch = {**nodes, "node1.example.com:15672": f"127.0.0.1:{cluster[0].http_port}",
                 **{f"{k}:5672": v for k, v in nodes.items()}}
    switch = machines("cluster", cwd=REPO_ROOT, rabbit=cluster[0], paths=["/var/lib/sarra"],
                      subs=on_switch)
    web = nginx(switch.path("/var/lib/sarra/data"), workers=1)
    switch.subs["http://switch.example.com/"] = web.url
    bob = machines("bob", paths=["/data"], subs=nodes)
    runner = GuideRunner(parse_guide(GUIDE, *CLUSTER), {"cluster": switch, "bob": bob})
    assert [why.split(":")[0] for _where, why in runner.skipped] == ["joining machines"]

    alice = machines("alice", paths=["/srv/data"])
    files = make_tree(alice.path("/srv/data/2026-12-03"), 5, depth=1, size=3000)
    data = nginx(alice.path("/srv/data"), workers=1)
    alice.subs.update({"node1.example.com": nodes["node1.example.com"],
                       "http://data.example.com/": data.url})
    alice.write_file("~/.config/sarra/credentials.conf",
                     "amqp://alice:Al1ce-Secret@node1.example.com/\n")

    runner.run_until(runner.index("dd_subscribe start replay"))
    declared = runner.results[runner.index("dd_audit declare")].stdout
    assert "declared stream xpublic_stream (x-max-age 604800s) bound to xpublic" in declared
    sara = (switch.home / ".config" / "sarra" / "sara" / "switch.conf").read_text()
    assert "queue_type" in sara and "quorum" in sara and sara.count("127.0.0.1:") >= 3
    quorum = [q["name"] for q in api(cluster[0], "queues") if q.get("type") == "quorum"]
    assert any(q.startswith("q_feeder.sara.switch") for q in quorum), quorum
    assert any(q.startswith("q_bob.subscribe.all") for q in quorum), quorum

    posted = alice.sh("chmod 600 ~/.config/sarra/credentials.conf && "
                      "dd_post --post_broker amqp://alice@node1.example.com/ "
                      "--post_base_url http://data.example.com/ --post_base_dir /srv/data "
                      "/srv/data/2026-12-03")
    assert "posted 5 of 5 files" in posted.output, posted.output
    src = alice.path("/srv/data/2026-12-03")
    wait_for(lambda: not compare_trees(src, bob.path("/data/labq") / "alice" / "2026-12-03"),
             timeout=60, what="alice's files in bob's mirror")
    runner.run_to_end()
    wait_for(lambda: not compare_trees(src, bob.path("/data/replay") / "alice" / "2026-12-03"),
             timeout=60, what="alice's files in bob's replay of the stream")
    for machine in (switch, bob, alice):
        assert machine.unused_substitutions() == [], (machine.name,
                                                      machine.unused_substitutions())
        for log in (machine.home / ".cache" / "sarra" / "log").glob("*.log"):
            text = log.read_text(errors="replace")
            assert "[ERROR]" not in text, f"{machine.name} {log.name}:\n{text}"
