"""doc/admin-guide.md, "Set up a switch from a vanilla Debian machine"
(sections 1-11) and "Link another switch", run as written: every ```sh block in order, every file
the guide shows written where it says, on three sandboxed machines (the
switch, alice's, carol's: tests/guides/runner.py).

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
from dataclasses import replace

from tests.guides.conftest import log_table, rabbit_queues
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
START, STOP = "## Set up a switch", "## Link another switch"

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
                      paths=["/var/lib/sarra", "/etc/nginx"],
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

    # the shims saw exactly the guide's commands
    recorded = [shlex.split(c) for c in switch.calls()]
    expected = [shlex.split(c) for c in SWITCH_CALLS.format(user=switch.env["USER"]).splitlines()]
    assert recorded == expected
    assert alice.calls() == [] and carol.calls() == []
    for machine in (switch, alice, carol):
        assert machine.unused_substitutions() == [], machine.name
        for log in (machine.home / ".cache" / "sarra" / "log").glob("*.log"):
            text = log.read_text(errors="replace")
            assert "[ERROR]" not in text and "[WARNING]" not in text, f"{log.name}:\n{text}"
    assert not any("readable by group" in r.output for r in runner.results.values())


def test_link_another_switch_as_the_admin_guide_says(rabbit_node, machines, nginx):
    """"Link another switch": lab1 set up as sections 1-7 say, lab2 the same
    with the description and passwords of the link section, then the link
    section's commands on both; a post of alice on lab1 for lab2 reaches
    lab2's tree, and lab2's acquisition is in alice's log on lab1."""
    one, two = rabbit_node("link-lab1"), rabbit_node("link-lab2")
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
    link = parse_guide(GUIDE, STOP, "## Reduce redundant feeds")
    own = [st for st in link if st.machine == "lab2" and st.kind == "file"]
    assert sorted(st.path for st in own) == ["~/.config/sarra/credentials.conf",
                                             "~/.config/sarra/switch.yaml"]
    lab2_setup = []                # sections 1-7 with lab2's files in place of section 3's
    for st in setup:
        if st.kind == "file" and st.section.startswith("3."):
            lab2_setup += [] if lab2_setup and lab2_setup[-1] in own else own
        else:
            lab2_setup.append(replace(st, machine="lab2"))
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
