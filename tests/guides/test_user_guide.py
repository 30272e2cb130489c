"""doc/user-guide.md run as written: every ```sh block in order, every file
it shows written where it says, on three sandboxed machines (alice's, who
subscribes, posts and watches a directory, bob's, who mirrors her
directory, and carol's, whose subscriber triggers commands when files
arrive: tests/guides/runner.py), against a switch set up here; then
README.md's "Using it" on one machine. Both files are run whole (SPANS:
tests/guides/test_coverage.py checks that nothing else is needed).

The switch (a new private RabbitMQ node, `dd_audit declare` from a
description written here, dd_sara and the log router as in the admin guide)
has the users the guide names, with the passwords its credentials show;
bob may read `xs_alice`, as section 8.2 asks of the administrator (the
admin guide's "RabbitMQ" section says how); a private nginx serves its
tree. Alice's web server, for data.example.com, is a private nginx
serving her /srv/data. The commands carol's hooks run (section 10) are
small scripts at the guide's paths that record how they were called.

Where a block needs something to happen first (a daemon at work), the test
waits for it between steps; the foreground commands are stopped as Ctrl-C
would, once they are at work.
"""
from __future__ import annotations

import os
import shlex

import pytest

from tests.guides.conftest import log_table, rabbit_api, rabbit_queues
from tests.guides.runner import GuideRunner, Machine, parse_guide
from tests.helpers import REPO_ROOT, compare_trees, make_tree, wait_for
from tools.localnginx import start_nginx

GUIDE = REPO_ROOT / "doc" / "user-guide.md"
README = REPO_ROOT / "README.md"
WHOLE = (None, None)                       # parse_guide's start, stop: the whole file
SPANS = {GUIDE: [WHOLE], README: [WHOLE]}  # what the tests below run

pytestmark = pytest.mark.rabbit_nodes("users")    # the switch (user_switch)

PASSWORDS = {"admin": "Adm1n-Secret", "feeder": "F33der-Secret",   # the switch's own
             "anonymous": "anonymous", "alice": "Fake-Passw0rd",   # the guide's (section 2)
             "bob": "B0b-Secret", "carol": "Car0l-Secret"}         # not in the guide

DESCRIPTION = """\
cluster: lab1
broker: amqp://admin@127.0.0.1:{port}/
feeder: amqp://feeder@127.0.0.1:{port}/
management_url: {management}
data_dir: {data}
base_url: {web}
users:
  anonymous: subscriber
  alice: source
  bob: subscriber
  carol: subscriber
links: []
"""

SARA = """\
broker                amqp://feeder@127.0.0.1:{port}/
exchange              xsarra
source_from_exchange  on
cluster               lab1
directory             {data}/${{SOURCE}}
post_broker           amqp://feeder@127.0.0.1:{port}/
post_exchange         xpublic
post_base_dir         {data}
post_base_url         {web}
report_exchange       xreport_in
expire                1d
"""

ROUTER = """\
broker                amqp://feeder@127.0.0.1:{port}/
exchange              xreport_in
topic_prefix          v02.report
source_from_exchange  on
post_exchange         xreport,xr_${{SOURCE}}
expire                1d
"""


def _credentials(machine, *users, port):
    path = machine.home / ".config" / "sarra" / "credentials.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for user in users:
            f.write(f"amqp://{user}:{PASSWORDS[user]}@127.0.0.1:{port}/\n")


@pytest.fixture(scope="module")
def user_switch(rabbit_node, tmp_path_factory):
    """A running switch on a new private node: the guide's users, dd_sara, the
    log router (shared by the user guide's test and the README's)."""
    node = rabbit_node("users")
    switch = Machine("switch", tmp_path_factory.mktemp("switch"), rabbit=node)
    # the node's administrator, as the admin guide's section 2 makes it
    # (rabbitmqctl add_user, set_user_tags, set_permissions): by its API
    rabbit_api(node, "PUT", "users/admin", {"password": PASSWORDS["admin"],
                                            "tags": "administrator"})
    rabbit_api(node, "PUT", "permissions/%2F/admin", {"configure": ".*", "write": ".*",
                                                      "read": ".*"})
    data = switch.root / "var" / "lib" / "sarra" / "data"
    data.mkdir(parents=True)
    web = start_nginx(tmp_path_factory.mktemp("switch-nginx"), data, workers=1)
    fill = dict(port=node.amqp_port, management=node.management_url, data=data, web=web.url)
    switch.write_file("~/.config/sarra/switch.yaml", DESCRIPTION.format(**fill))
    switch.write_file("~/.config/sarra/sara/switch.conf", SARA.format(**fill))
    switch.write_file("~/.config/sarra/shovel/logs.conf", ROUTER.format(**fill))
    _credentials(switch, *PASSWORDS, port=node.amqp_port)
    try:
        for command in ("dd_audit declare ~/.config/sarra/switch.yaml",
                        "sarra declare && sarra start"):
            result = switch.sh(command)
            assert result.returncode == 0, result.output
        # bob reads alice's exchange (section 8.2): a subscriber's rights plus xs_alice
        rabbit_api(node, "PUT", "permissions/%2F/bob", {
            "configure": r"^q_bob\..*", "write": r"^q_bob\..*|^xs_bob$",
            "read": r"^q_bob\..*|^x[rs]_bob$|^xpublic$|^xs_alice$"})
        yield node
    finally:
        switch.stop_everything()
        web.stop()


def _alice_password(node, password: str) -> None:
    """The switch's administrator sets alice's password (the user guide's and
    the README's differ): rabbitmqctl change_password, by the node's API
    (a user's PUT keeps nothing but what it is given: her tags again)."""
    tags = rabbit_api(node, "GET", "users/alice")["tags"]
    rabbit_api(node, "PUT", "users/alice", {
        "password": password, "tags": tags if isinstance(tags, str) else ",".join(tags)})


RECORDING = r"""#!/bin/sh
# GUIDE_PATH of the guide, standing in: records its call (one line, tabs between)
files="$(printf '%s' "${SARRA_SET_FILES:-}" | tr '\n' ' ')"
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(basename "$0")" "$SARRA_STAGE" "${SARRA_FILE:-}" \
    "$SARRA_RELPATH" "$SARRA_SOURCE" "${SARRA_SET:-}" "${files% }" >> LOG
"""


def _recording(machine, guide_path: str, log) -> None:
    """A command of the guide, at its path on ``machine``, that records each
    call in ``log``: its name, then the exec hook's variables SARRA_STAGE,
    SARRA_FILE, SARRA_RELPATH, SARRA_SOURCE, SARRA_SET and SARRA_SET_FILES
    (one path a line there; spaces between here)."""
    script = machine.path(guide_path)
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(RECORDING.replace("GUIDE_PATH", guide_path)
                      .replace("LOG", shlex.quote(str(log))), encoding="utf-8")
    script.chmod(0o755)


def _logged(machine, text: str) -> int:
    """How many times ``text`` is in the machine's sarra logs."""
    logs = machine.home / ".cache" / "sarra" / "log"
    return sum(p.read_text(errors="replace").count(text) for p in logs.glob("*.log"))


def test_the_user_guide_as_written(user_switch, machines, nginx):
    node = user_switch
    _alice_password(node, PASSWORDS["alice"])
    amqp = f"127.0.0.1:{node.amqp_port}"
    alice = machines("alice", paths=["/srv/data", "/data/obs"])
    march = make_tree(alice.path("/srv/data/2026-03-25"), 6, depth=1, size=1500, seed=1)
    november = make_tree(alice.path("/srv/data/2026-11-25"), 5, depth=1, size=1500, seed=2)
    alice.path("/srv/data/outgoing").mkdir()
    data = nginx(alice.path("/srv/data"), workers=1)
    alice.subs.update({"@switch.example.com/": f"@{amqp}/", "http://data.example.com/": data.url})
    bob = machines("bob", paths=["/data/copy"], subs={"@switch.example.com/": f"@{amqp}/"})
    _credentials(bob, "bob", port=node.amqp_port)     # what section 2 tells bob to do
    carol = machines("carol", paths=["/data/captures", "/usr/local/bin"],
                     subs={"@switch.example.com/": f"@{amqp}/"})
    _credentials(carol, "carol", port=node.amqp_port)
    calls = carol.state / "hooks.log"
    _recording(carol, "/usr/local/bin/index-capture", calls)
    _recording(carol, "/usr/local/bin/merge-day", calls)
    runner = GuideRunner(parse_guide(GUIDE, *WHOLE), {"alice": alice, "bob": bob, "carol": carol})
    assert runner.skipped == []

    def at_work(out: str) -> bool:
        return "bound to xpublic" in out

    # 2, 3.1-3.2: credentials, obs.conf, in the terminal (Ctrl-C once it is bound)
    foreground = runner.index("dd_subscribe foreground obs")
    runner.run_until(foreground)
    result = runner.run_next(interrupt_when=at_work)
    assert result.interrupted
    assert "interrupted: unacknowledged messages will be delivered again" in result.stderr
    assert "dd_subscribe: 0 files transferred" in result.stdout
    result = runner.run_next(interrupt_when=at_work)          # the one-liner
    assert result.interrupted
    assert "queue q_anonymous.subscribe.adhoc-" in result.stderr
    assert "dd_subscribe: 0 files transferred" in result.stdout

    # 3.3: declare, start, status, restart, stop, cleanup
    result = runner.run_next()
    assert "declared queue q_anonymous.subscribe.obs." in result.stdout
    assert "subscribe/obs: running (1/1 instances)" in result.stdout
    assert "subscribe/obs stopped (1 instances)" in result.stdout
    assert "deleted queue q_anonymous.subscribe.obs." in result.stdout
    assert not any(q.startswith("q_anonymous.subscribe.obs.") for q in rabbit_queues(node))

    # 7: a tree posted
    result = runner.run_next()
    assert f"posted {len(march)} of {len(march)} files" in result.output, result.output

    # 8.1: dd_watch in the terminal (Ctrl-C once it watches), then in the background
    watch = runner.index("dd_watch foreground outgoing")
    runner.run_until(watch)
    result = runner.run_next(interrupt_when=lambda out: "watching " in out)
    assert result.interrupted
    assert "declared exchange xs_alice" in result.stdout
    assert "watch/outgoing: running (1/1 instances)" in result.stdout
    assert "watch/outgoing stopped (1 instances)" in result.stdout

    # 8.2: bob mirrors alice's directory; alice writes, renames a file while
    # her dd_watch runs (the test starts it again: the block above ends with stop)
    runner.run_until(runner.index("dd_subscribe start alice-outgoing") + 1)
    wait_for(lambda: _logged(bob, "bound to xs_alice"), timeout=20, what="bob's subscriber")
    started = _logged(alice, " announced before")
    result = alice.sh("dd_watch start outgoing")
    assert result.returncode == 0, result.output
    wait_for(lambda: _logged(alice, " announced before") > started, timeout=20,
             what="alice's dd_watch")
    grib = alice.path("/srv/data/outgoing/2026/a.grib2")
    grib.parent.mkdir(parents=True)
    grib.write_bytes(os.urandom(3000))
    copy = bob.path("/data/copy") / "outgoing" / "2026"
    wait_for(lambda: (copy / "a.grib2").is_file()
             and (copy / "a.grib2").read_bytes() == grib.read_bytes(),
             timeout=20, what="a.grib2 at bob's")
    grib.rename(grib.with_name("b.grib2"))
    wait_for(lambda: not compare_trees(grib.parent, copy), timeout=20,
             what="the rename at bob's")
    fetched = {r["path"] for r in data.requests()}   # bob's and the switch's downloads
    assert "/outgoing/2026/a.grib2" in fetched
    assert "/outgoing/2026/b.grib2" not in fetched     # renamed, not downloaded again

    # 9.1, 9.2: alice posts to the switch; dd_log subscribes, alice posts again
    # ("post something (9.1)"), and dd_log shows what the switch did with it
    post = runner.index("dd_post --post_broker", after=watch)
    runner.run_until(post + 1)
    assert f"posted {len(november)} of {len(november)} files" in runner.results[post].output
    first = runner.index("dd_log mine")
    runner.run_until(first + 1)
    assert "(0 log messages from xr_alice)" in runner.results[first].stderr
    runner.run_step(post)                                   # post something (9.1)
    wait_for(lambda: sum(n for q, n in rabbit_queues(node).items()
                         if q.startswith("q_alice.log.mine.")) >= len(november),
             timeout=20, what="the switch's log messages for alice")
    result = runner.run_next(interrupt_when=lambda out: out.count("POSTED (UTC)") == 2)
    assert result.interrupted
    rows = log_table("POSTED (UTC)" + result.stdout.split("POSTED (UTC)")[1])   # the first run
    taken = {r["relpath"] for r in rows if r["who"].startswith("feeder@")
             and r["code"] in ("201", "304")}
    assert {f"2026-11-25/{f}" for f in november} <= taken, result.stdout
    assert result.stderr.count("log messages from xr_alice") == 2, result.stderr

    # 10: carol's triggers. Her subscriber starts; alice posts the day's
    # directory with 11 of the 12 captures: each is indexed, the day is not
    # merged; then with all 12: the twelfth is indexed, the day merged once
    start = runner.index("dd_subscribe start captures")
    runner.run_until(start + 1)
    assert "subscribe/captures instance 1 started" in runner.results[start].stdout
    wait_for(lambda: _logged(carol, "bound to xpublic"), timeout=20, what="carol's subscriber")
    day = alice.path("/srv/data/results-A/2026-11-25")
    nodes = [f"node{n:02d}" for n in range(1, 13)]
    for node_dir in nodes[:11]:
        (day / node_dir).mkdir(parents=True)
        (day / node_dir / "capture.dat").write_bytes(os.urandom(1500))
    post = runner.index("dd_post --post_broker", after=start)
    runner.run_until(post + 1)
    assert "posted 11 of 11 files" in runner.results[post].output, runner.results[post].output

    def recorded(name: str) -> list[list[str]]:
        lines = calls.read_text().splitlines() if calls.exists() else []
        return [carol.unsubstitute(ln).split("\t")[1:] for ln in lines
                if ln.startswith(name + "\t")]
    wait_for(lambda: len(recorded("index-capture")) >= 11, timeout=30,
             what="11 captures indexed")
    (day / nodes[11]).mkdir()
    (day / nodes[11] / "capture.dat").write_bytes(os.urandom(1500))
    assert recorded("merge-day") == []                    # 11 of 12: not yet
    runner.run_step(post)                                 # the day's directory again
    assert "posted 12 of 12 files" in runner.results[post].output
    wait_for(lambda: recorded("merge-day"), timeout=30, what="the day merged")
    mirror = "/data/captures/alice/results-A/2026-11-25"
    relpath = "alice/results-A/2026-11-25/{}/capture.dat".format
    assert sorted(recorded("index-capture")) == [      # each once (the guide's node03 too)
        ["on_file", f"{mirror}/{n}/capture.dat", relpath(n), "alice", "", ""] for n in nodes]
    assert recorded("merge-day") == [
        ["on_file", f"{mirror}/node12/capture.dat", relpath("node12"), "alice", "2026-11-25",
         " ".join(f"{mirror}/{n}/capture.dat" for n in nodes)]]
    assert not compare_trees(day, carol.path(mirror))
    assert runner.next == len(runner.steps)

    assert not any("readable by group" in r.output for r in runner.results.values())
    # nothing the guide does leaves a complaint in a log
    for machine in (alice, bob, carol):
        for log in (machine.home / ".cache" / "sarra" / "log").glob("*.log"):
            text = log.read_text(errors="replace")
            assert "[ERROR]" not in text, f"{log.name}:\n{text}"
    assert alice.calls() == [] and bob.calls() == [] and carol.calls() == []
    for machine in (alice, bob, carol):
        assert machine.unused_substitutions() == [], machine.name


def test_the_readme_as_written(user_switch, machines, nginx):
    """README.md's "Using it": one machine, the user's, on the same switch."""
    node = user_switch
    _alice_password(node, "secret")                 # the README's
    user = machines("user", paths=["/srv/data", "/data/obs", "/tmp/sarra-try"])
    tree = make_tree(user.path("/srv/data/2026-11-25"), 4, depth=1, size=1000, seed=3)
    user.path("/srv/data/outgoing").mkdir()
    data = nginx(user.path("/srv/data"), workers=1)
    user.subs.update({"@switch.example.com/": f"@127.0.0.1:{node.amqp_port}/",
                      "http://data.example.com/": data.url,
                      "@127.0.0.1/": f"@127.0.0.1:{node.amqp_port}/"})   # guest's, on this node
    runner = GuideRunner(parse_guide(README, machine="user"), {"user": user})
    skipped = [(st.text.strip(), st.reason) for st in runner.steps if st.kind == "skip"]
    assert skipped == [
        ("bash tools/demo.sh",
         "the demo runs on its own (600 files, the shared broker); not part of this tour"),
        (".venv/bin/python -m pytest -q tests", "the test suite itself, which runs this file")]

    # "Try the tools on this machine": guest, xs_guest, file: URLs, dd_log on xs_guest
    mine = runner.index("dd_post --post_broker amqp://guest@")
    runner.run_until(mine + 1)
    assert "posted 2 of 2 files" in runner.results[mine].stdout, runner.results[mine].output
    assert "reached no queue" not in runner.results[mine].output
    copy = user.path("/tmp/sarra-try/copy")
    wait_for(lambda: sorted(p.name for p in copy.rglob("*.txt")) == ["numbers.txt", "today.txt"],
             timeout=20, what="the copies")
    result = runner.run_next()             # ls, sarra status, dd_log
    assert "numbers.txt" in result.stdout and "today.txt" in result.stdout, result.output
    assert (copy / "files" / "numbers.txt").read_text() == \
        user.path("/tmp/sarra-try/files/numbers.txt").read_text()
    assert "subscribe/try: running (1/1 instances)" in result.stdout, result.output
    table = result.stdout[result.stdout.index("POSTED (UTC)"):]
    rows = log_table(table)
    assert sorted((r["code"], r["relpath"]) for r in rows) == \
        [("201", "files/numbers.txt"), ("201", "files/sub/today.txt")], result.output
    assert all(r["who"].startswith("guest@") for r in rows)
    result = runner.run_next()
    assert "deleted queue" in result.stdout and "removed " in result.stdout, result.output

    post = runner.index("dd_post --post_broker amqp://alice@")
    runner.run_until(post + 1)
    assert f"posted {len(tree)} of {len(tree)} files" in runner.results[post].output
    result = runner.run_next()
    assert "subscribe/obs: running (1/1 instances)" in result.stdout, result.output
    result = runner.run_next(interrupt_when=lambda out: "bound to xpublic" in out)
    assert result.interrupted and "dd_subscribe: 0 files transferred" in result.stdout
    result = runner.run_next()
    assert "watch/outgoing instance 1 started" in result.stdout
    runner.run_to_end()
    assert "(0 log messages from xr_alice)" in runner.results[len(runner.steps) - 1].stderr
    assert not any("readable by group" in r.output for r in runner.results.values())
    assert user.calls() == [] and user.unused_substitutions() == []
