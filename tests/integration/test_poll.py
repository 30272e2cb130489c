"""dd_poll end to end: pollers listing real servers (nginx autoindex, sshd,
vsftpd plain and TLS), posting through the real broker, and a running
dd_subscribe fetching every file straight from those servers.

One test runs the four kinds of listing at once (one poller each, one
subscriber for all), so that each step waits once for all of them.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import compare_trees, iter_lines, stop_process, wait_for
from tests.integration.flowkit import (BROKER, assert_logs_clean, declare, qname, stop,
                                       sub_config, taps)

__all__ = ["taps"]

KINDS = ("http", "sftp", "ftp", "ftps")


def poll_config(sarra_home, name: str, exchange: str, poll_url: str, path: str,
                extra: str = "") -> None:
    sarra_home.write_config("poll", name, (
        f"post_broker {BROKER}\n"
        f"post_exchange {exchange}\n"
        f"poll_url {poll_url}\n"
        f"path {path}\n"
        f"post_base_url {poll_url}\n"
        "sleep 1\n"
        f"{extra}"))


def start_polls(procs, names_logs: list[tuple[str, Path]]) -> list:
    """Start pollers (all at once), then wait until each is polling."""
    started = [procs.start_tool("poll", "foreground", name, log=log)
               for name, log in names_logs]
    for proc, (name, log) in zip(started, names_logs):
        wait_for(lambda p=proc, lg=log: p.poll() is not None or any(
            "polling " in line for line in iter_lines(lg)),
            timeout=30, interval=0.05, what=f"the poller {name} to start")
        assert proc.poll() is None, Path(log).read_text()
    return started


@pytest.fixture
def servers(nginx, sshd, ftpd, ftpsd, sarra_home, tmp_path, unique):
    """For each kind: (the local directory listed, poll_url); the
    credentials of every server in credentials.conf."""
    sarra_home.add_credentials(sshd.credentials, ftpd.credentials, ftpsd.credentials)
    web = tmp_path / "web"
    (web / "http").mkdir(parents=True)
    site = nginx(web, workers=1, extra="location / { autoindex on; }")
    sftp_root = tmp_path / "sftproot"
    (sftp_root / "sftp").mkdir(parents=True)
    out = {"http": (web / "http", site.url),
           "sftp": (sftp_root / "sftp", f"{sshd.url}{sftp_root}/")}
    for kind, server in (("ftp", ftpd), ("ftps", ftpsd)):
        mine = server.root / f"{unique}-{tmp_path.name}"
        (mine / kind).mkdir(parents=True)
        out[kind] = (mine / kind, f"{server.url}{mine.name}/")
    return out


def test_poll_announces_new_and_changed_files_once_and_a_subscriber_mirrors_them(
        sarra_home, unique, procs, taps, tmp_path, servers, ftpd):
    dst = tmp_path / "dst"
    ex = f"xpoll_{unique}"
    sub = f"psub_{unique}"
    sub_config(sarra_home, sub, ex, dst, f"xpr_{unique}")
    declare(sub)
    taps.queues.append(qname(sarra_home, sub))
    posts = taps(ex, "v02.post.#")
    subscriber = procs.start_tool("subscribe", "foreground", sub, log=tmp_path / "sub.log")

    for kind, (local, _url) in servers.items():
        (local / "unicodé" / "deeper").mkdir(parents=True)
        for rel in ("a.txt", "with space #1.bin", "unicodé/ü.bin", "unicodé/deeper/z"):
            (local / rel).write_bytes(os.urandom(2000 + len(rel)))
    # a directory whose page is no index (nginx serves index.html): skipped, said
    (servers["http"][0] / "odd").mkdir()
    (servers["http"][0] / "odd" / "index.html").write_text("<html><p>hello</p></html>\n")
    odd = {"http/odd/index.html"}

    for kind, (_local, url) in servers.items():
        poll_config(sarra_home, f"p{kind}_{unique}", ex, url, kind, "file_age_min 1.2\n")
    # and one whose login is refused: an error, tried again later, never fatal
    wrong = f"ftp://nobody@127.0.0.1:{ftpd.port}/"
    poll_config(sarra_home, f"pbad_{unique}", ex, wrong, "x")
    *started, bad = start_polls(procs, [(f"p{k}_{unique}", tmp_path / f"{k}.log")
                                        for k in servers] +
                                [(f"pbad_{unique}", tmp_path / "bad.log")])
    pollers = dict(zip(servers, started))

    def mirrored() -> bool:
        if subscriber.poll() is not None:
            raise AssertionError((tmp_path / "sub.log").read_text()[-3000:])
        return all(compare_trees(local, dst / kind) == [] for kind, (local, _) in
                   servers.items() if kind != "http") and \
            set(compare_trees(servers["http"][0], dst / "http")) <= {
                "only in a: odd", "only in a: odd/index.html"}
    wait_for(mirrored, timeout=40, interval=0.3, what="the four trees mirrored")
    first = Counter(m.relpath for m in posts.settle(1.5))
    expected = {f"{k}/{r}" for k in KINDS
                for r in ("a.txt", "with space #1.bin", "unicodé/ü.bin", "unicodé/deeper/z")}
    assert set(first) - odd == expected and set(first.values()) == {1}, first
    for m in posts.messages:
        assert m.sum[0] == "z" and m.headers["sum"] == "z,s"
        assert m.base_url == servers[m.relpath.split("/")[0]][1]
    log = (tmp_path / "http.log").read_text()
    assert "odd/: listing skipped this round" in log and "| <html><p>hello</p></html>" in log

    # a change (another size) is announced again; an unchanged file never;
    # a file still growing, once it stops (file_age_min 1.2)
    grown = {}
    for kind, (local, _url) in servers.items():
        (local / "a.txt").write_bytes(b"changed" * 50)
    for kind, (local, _url) in servers.items():
        grown[kind] = local / "growing.dat"
    pieces = {kind: b"" for kind in servers}
    for _ in range(5):                     # each piece grows every file: 2 s in all
        for kind, path in grown.items():
            chunk = os.urandom(700)
            with open(path, "ab") as f:
                f.write(chunk)
            pieces[kind] += chunk
        time.sleep(0.4)
    wait_for(mirrored, timeout=40, interval=0.3, what="the changes mirrored")
    second = Counter(m.relpath for m in posts.settle(2)) - first
    assert dict(second) == {f"{k}/{n}": 1 for k in KINDS for n in ("a.txt", "growing.dat")}
    for kind in KINDS:
        assert (dst / kind / "growing.dat").read_bytes() == pieces[kind]

    # a restart announces nothing already announced
    for proc in pollers.values():
        proc.send_signal(signal.SIGTERM)
    assert [proc.wait(20) for proc in pollers.values()] == [0] * len(pollers)
    again = start_polls(procs, [(f"p{k}_{unique}", tmp_path / f"{k}.2.log") for k in servers])
    for kind in KINDS:
        wait_for(lambda k=kind: any("first round" in line
                                    for line in iter_lines(tmp_path / f"{k}.2.log")),
                 timeout=15, interval=0.2, what="a round after the restart")
    assert len(posts.settle(1.5)) == sum(first.values()) + sum(second.values())
    assert all("0 announced" in next(line for line in iter_lines(tmp_path / f"{k}.2.log")
                                     if "first round" in line) for k in KINDS)

    badlog = (tmp_path / "bad.log").read_text()
    assert bad.poll() is None and "login refused" in badlog and "next round in" in badlog
    for proc in again + [bad]:
        stop_process(proc, signal.SIGTERM, timeout=20)
    stop(subscriber)
    assert_logs_clean(*tmp_path.glob("*.log"))
    for path in tmp_path.glob("*.log"):
        assert ftpd.password not in path.read_text(errors="replace")


@pytest.mark.rabbit_nodes("b")
def test_two_instances_announce_each_file_once_and_the_survivor_takes_over(
        sarra_home, unique, tmp_path, ftpd, rabbit_node):
    """``instances 2`` started by ``sarra start``, as a source user of a
    switch (dd_audit's permissions: it may declare q_<user>.* queues and
    write to xs_<user>, nothing else): one holds the lease on the broker
    (an exclusive queue) and polls; killed, the other takes over within
    seconds, without announcing again what was confirmed."""
    from sarra.service import pid_file, read_pid_file
    from tests.clusterkit import rabbit_api
    from tests.helpers import run_tool
    from tests.integration.flowkit import Tap
    node = rabbit_node("b")
    user = f"src{unique}"
    # rabbitmqctl add_user, set_permissions (configure, write, read): by the API
    rabbit_api(node, "PUT", f"users/{user}", {"password": "pw-" + unique, "tags": ""})
    rabbit_api(node, "PUT", f"permissions/%2F/{user}", {
        "configure": rf"^q_{user}\..*", "write": rf"^q_{user}\..*|^xs_{user}(_.*)?$",
        "read": rf"^q_{user}\..*|^x[rs]_{user}(_.*)?$"})
    ex = f"xs_{user}"
    posts = Tap(ex, "v02.post.#", f"q_tap_{unique}", url=node.url())   # (declares ex, as guest)
    sarra_home.add_credentials(ftpd.credentials, node.url(user, "pw-" + unique))
    mine = ftpd.root / f"lease-{unique}"
    mine.mkdir()
    name = f"plea_{unique}"
    sarra_home.write_config("poll", name, (
        f"post_broker {node.url(user, None)}\npoll_url {ftpd.url}{mine.name}/\n"
        "sleep 1\ninstances 2\n"))
    for i in range(5):
        (mine / f"f{i}").write_bytes(os.urandom(100 + i))
    run_tool("sarra", "start", f"poll/{name}", timeout=60)
    logs = [sarra_home.state_dir / "log" / f"poll_{name}_{n:02d}.log" for n in (1, 2)]

    def holder() -> int | None:
        found = [n for n, log in enumerate(logs, 1)
                 if any("lease" in line and "taken" in line for line in iter_lines(log))]
        return found[0] if len(found) == 1 else None
    wait_for(holder, timeout=20, interval=0.2, what="one instance to hold the lease")
    active = holder()
    assert Counter(m.relpath for m in posts.wait_count(5, 20)) == \
        {f"{mine.name}/f{i}": 1 for i in range(5)}
    posts.settle(2)                 # the waiting instance announces nothing
    assert len(posts.messages) == 5
    status = run_tool("sarra", "status", f"poll/{name}", timeout=60).stdout
    assert f"poll/{name}: running (2/2 instances)" in status, status

    pid, _ = read_pid_file(pid_file("poll", name, active))
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    for i in range(5, 8):
        (mine / f"f{i}").write_bytes(os.urandom(100 + i))
    other = logs[2 - active]
    wait_for(lambda: any("taken" in line for line in iter_lines(other)), timeout=15,
             interval=0.1, what="the other instance to take the lease")
    posts.wait_count(8, 15)
    took = time.monotonic() - killed
    assert Counter(m.relpath for m in posts.settle(2)) == \
        {f"{mine.name}/f{i}": 1 for i in range(8)}
    assert took < 10, f"the takeover took {took:.1f}s"
    run_tool("sarra", "stop", f"poll/{name}", timeout=60)
    posts.close()
    rabbit_api(node, "DELETE", f"users/{user}")
