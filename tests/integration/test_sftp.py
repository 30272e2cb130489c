"""SFTP end to end: a subscriber mirroring a tree announced with an sftp://
base URL, and dd_sender pushing a posted tree to an SFTP server and
announcing the remote copies, on this broker and on another switch's (a
second RabbitMQ node) whose subscriber mirrors them.

Real RabbitMQ, a private sshd (the ``sshd`` fixture: key login, the key
named in credentials.conf with ``ssh_keyfile``); the tools run as
subprocesses.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pika
import pytest

from tests.helpers import make_tree, run_tool
from tests.integration.flowkit import (BROKER, assert_logs_clean, codes_by_relpath, declare,
                                       dd_post, qname, stop, sub_config, taps, tmp_files,
                                       wait_same_tree)

__all__ = ["taps"]  # the fixture, imported for pytest

N_FILES = 60


def logins(sshd) -> int:
    return sshd.log.read_text(errors="replace").count("Accepted publickey")


def test_subscriber_mirrors_a_tree_from_an_sftp_base_url(sarra_home, unique, procs, taps, sshd,
                                                         tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_tree(src, N_FILES, depth=3, size=20_000, seed=31)
    (src / "empty.bin").write_bytes(b"")
    rels = sorted(rels + ["empty.bin"])
    sarra_home.add_credentials(sshd.credentials)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"sftp_sub_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr)
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    before = logins(sshd)
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")

    base_url = f"{sshd.url}{src}/"
    dd_post(ex, base_url, src, src)
    wait_same_tree(src, dst, timeout=30, proc=proc)
    assert tmp_files(dst) == []
    reports.wait_count(len(rels), 10)
    reports.settle(0.3)
    assert sorted(codes_by_relpath(reports.messages)) == rels
    assert Counter(r.report.code for r in reports.messages) == Counter({201: len(rels)})
    assert {r.base_url for r in reports.messages} == {base_url}

    stop(proc)
    assert logins(sshd) - before == 1, "one SFTP connection, reused for every file"
    known = (sarra_home.state_dir / "known_hosts").read_text().splitlines()
    assert [line.split()[0] for line in known] == [f"[127.0.0.1]:{sshd.port}"]
    assert_logs_clean(proc.log)


def sender_config(sarra_home, name: str, ex: str, xr: str, src: Path, remote_url: str,
                  out: str, post_broker: str = BROKER) -> None:
    sarra_home.write_config("sender", name, (
        f"broker {BROKER}\n"
        f"exchange {ex}\n"
        "subtopic #\n"
        "expire 10m\n"
        f"report_exchange {xr}\n"
        f"base_dir {src}\n"
        f"destination {remote_url}\n"
        f"post_broker {post_broker}\n"
        f"post_exchange {out}\n"
        f"post_base_url {remote_url}\n"
        "accept .*\n"))
    run_tool("sender", "declare", name, timeout=60)


def test_sender_pushes_a_posted_tree_and_announces_the_remote_copies(sarra_home, unique, procs,
                                                                    taps, sshd, tmp_path):
    src, remote = tmp_path / "src", tmp_path / "remote"
    rels = make_tree(src, N_FILES, depth=3, size=20_000, seed=32)
    os.symlink(rels[-1], src / "top-link")
    (src / "empty.bin").write_bytes(b"")
    os.chmod(src / rels[0], 0o600)
    everything = sorted(rels + ["top-link", "empty.bin"])
    sarra_home.add_credentials(sshd.credentials)
    ex, xr, out, name = f"xt_{unique}", f"xr_{unique}", f"xt_{unique}_remote", f"push_{unique}"
    reports, posts, reposts = taps(xr), taps(ex, "v02.post.#"), taps(out, "v02.post.#")
    remote_url = f"{sshd.url}{remote}/"
    sender_config(sarra_home, name, ex, xr, src, remote_url, out)
    state = sarra_home.state_dir / "sender" / name
    taps.queues.append(next(state.glob("*.qname")).read_text().strip())
    proc = procs.start_tool("sender", "foreground", name, log=tmp_path / "sender.log")

    base_url = "http://switch.example.com/data/"     # the sender finds the files in base_dir
    dd_post(ex, base_url, src, src)
    wait_same_tree(src, remote, timeout=30, proc=proc)
    assert tmp_files(remote) == [], "inflight names left on the server"
    for rel in everything[:10]:      # SFTP (v3) sets whole seconds
        if rel != "top-link":
            assert int((src / rel).stat().st_mtime) == (remote / rel).stat().st_mtime
    assert (remote / rels[0]).stat().st_mode & 0o777 == 0o600

    reports.wait_count(len(everything), 10)
    posts.wait_count(len(everything), 10)
    reposts.wait_count(len(everything), 10)
    reports.settle(0.3)
    by_rel = codes_by_relpath(reports.messages)
    assert sorted(by_rel) == everything
    assert {r.report.code for r in reports.messages} == {201}
    texts = Counter(r.report.message for r in reports.messages)
    assert texts == Counter({"Copied": len(everything) - 1, "Linked": 1})
    assert {r.base_url for r in reports.messages} == {base_url}

    # the remote copies announced at the remote URL, with the sums of the posts
    assert sorted(p.relpath for p in reposts.messages) == everything
    assert {p.base_url for p in reposts.messages} == {remote_url}
    sums = {p.relpath: p.headers["sum"] for p in posts.messages}
    assert {p.relpath: p.headers["sum"] for p in reposts.messages} == sums

    text = stop(proc)
    assert "Traceback" not in text
    assert_logs_clean(proc.log)


@pytest.mark.rabbit_nodes("b")
def test_sender_announces_on_another_switch_whose_subscriber_fetches_the_copies(
        sarra_home, unique, procs, taps, sshd, rabbit_node, tmp_path):
    """Switch to switch by push: dd_sender on this switch (the local
    RabbitMQ) copies a posted tree to the SFTP server and announces the
    copies on the other switch's broker (a second RabbitMQ node), where a
    subscriber mirrors them from the SFTP server: the same bytes at the end."""
    node = rabbit_node("b")
    src, remote, mirror = tmp_path / "src", tmp_path / "remote", tmp_path / "mirror"
    make_tree(src, 20, depth=2, size=30_000, seed=33)
    sarra_home.add_credentials(sshd.credentials)
    sarra_home.add_credentials(node.url())
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"push2_{unique}"
    there = f"xpushed_{unique}"             # the exchange announced on, on the other switch
    conn = pika.BlockingConnection(pika.URLParameters(node.url()))
    try:
        conn.channel().exchange_declare(there, "topic", durable=True)
    finally:
        conn.close()
    remote_url = f"{sshd.url}{remote}/"
    taps(xr)
    sender_config(sarra_home, name, ex, xr, src, remote_url, there,
                  post_broker=node.url(password=None))
    taps.queues.append(next((sarra_home.state_dir / "sender" / name).glob("*.qname"))
                       .read_text().strip())
    sarra_home.write_config("subscribe", f"far_{unique}", (
        f"broker {node.url(password=None)}\nexchange {there}\nsubtopic #\nmirror on\n"
        f"directory {mirror}\naccept .*\nreport_back off\nexpire 10m\n"))
    run_tool("subscribe", "declare", f"far_{unique}", timeout=60)
    running = [procs.start_tool("sender", "foreground", name, log=tmp_path / "sender.log"),
               procs.start_tool("subscribe", "foreground", f"far_{unique}",
                                log=tmp_path / "far.log")]
    try:
        dd_post(ex, "http://switch.example.com/data/", src, src)
        wait_same_tree(src, remote, timeout=30, proc=running[0])
        wait_same_tree(src, mirror, timeout=30, proc=running[1])
        assert tmp_files(mirror) == []
    finally:
        for proc in running:
            stop(proc)
        conn = pika.BlockingConnection(pika.URLParameters(node.url()))
        try:
            conn.channel().exchange_delete(there)
        finally:
            conn.close()
    for proc in running:
        assert_logs_clean(proc.log)
