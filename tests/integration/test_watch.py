"""dd_watch end to end: a watcher publishing a tree as it changes, a
subscriber mirroring it through the real broker, posts counted on a tap.

Real RabbitMQ, real files, the tools as subprocesses.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import compare_trees, iter_lines, wait_for
from tests.integration.flowkit import (BROKER, assert_logs_clean, declare, qname, stop,
                                       sub_config, taps, wait_same_tree)

__all__ = ["taps"]


def watch_config(sarra_home, name: str, exchange: str, src: Path, extra: str = "") -> None:
    sarra_home.write_config("watch", name, (
        f"post_broker {BROKER}\n"
        f"post_exchange {exchange}\n"
        f"post_base_dir {src}\n"
        f"post_base_url file:{src}/\n"
        f"path {src}\n"
        f"{extra}"))


def start_watch(procs, name: str, log: Path):
    proc = procs.start_tool("watch", "foreground", name, log=log)
    wait_for(lambda: proc.poll() is not None or any("to announce" in line
                                                   for line in iter_lines(log)),
             timeout=20, interval=0.05, what="the watcher to start")
    assert proc.poll() is None, Path(log).read_text()
    return proc


def posts_by_relpath(msgs) -> Counter:
    return Counter(m.relpath for m in msgs)


@pytest.fixture
def pair(sarra_home, unique, procs, taps, tmp_path):
    """A running subscriber mirroring exchange ``ex`` into dst, and a tap on
    the posts; the test starts its own watcher."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    ex, xr = f"xw_{unique}", f"xwr_{unique}"
    sub = f"wsub_{unique}"
    sub_config(sarra_home, sub, ex, dst, xr)
    declare(sub)
    taps.queues.append(qname(sarra_home, sub))
    posts = taps(ex, "v02.post.#")
    proc = procs.start_tool("subscribe", "foreground", sub, log=tmp_path / "sub.log")
    return src, dst, ex, posts, proc


def test_mirror_follows_create_modify_rename_delete_symlink(sarra_home, unique, procs, pair,
                                                            tmp_path):
    src, dst, ex, posts, sub = pair
    watch_config(sarra_home, f"w_{unique}", ex, src)
    watcher = start_watch(procs, f"w_{unique}", tmp_path / "watch.log")

    (src / "a" / "b").mkdir(parents=True)
    for rel in ("one.txt", "a/two.txt", "a/b/three.txt", "a/b/four #5.txt"):
        (src / rel).write_bytes(os.urandom(3000))
    wait_same_tree(src, dst, timeout=20, proc=sub)

    (src / "a" / "two.txt").write_bytes(b"changed " * 100)                 # modify
    wait_same_tree(src, dst, timeout=20, proc=sub)

    n_before = len(posts.settle(0.5))
    inode = (dst / "a" / "b" / "three.txt").stat().st_ino
    os.rename(src / "a" / "b" / "three.txt", src / "a" / "3.txt")           # rename
    wait_same_tree(src, dst, timeout=20, proc=sub)
    assert (dst / "a" / "3.txt").stat().st_ino == inode, "renamed file was downloaded again"
    renames = posts.settle(0.5)[n_before:]
    assert [(m.relpath, m.operation) for m in renames] == [
        ("a/b/three.txt", "delete"), ("a/3.txt", "file")]
    assert renames[0].headers["newname"] == "a/3.txt"
    assert renames[1].headers["oldname"] == "a/b/three.txt"
    assert renames[1].headers["sum"] == "s," + hashlib.sha512(
        (src / "a" / "3.txt").read_bytes()).hexdigest()

    (src / "one.txt").unlink()                                               # delete
    os.symlink("a/3.txt", src / "link-to-3")                                 # symlink
    wait_same_tree(src, dst, timeout=20, proc=sub)
    assert os.readlink(dst / "link-to-3") == "a/3.txt"

    msgs = posts.settle(0.5)
    counts = posts_by_relpath(msgs)
    assert counts == Counter({"one.txt": 2, "a/two.txt": 2, "a/b/three.txt": 2,
                              "a/b/four #5.txt": 1, "a/3.txt": 1, "link-to-3": 1}), counts
    stop(watcher)
    stop(sub)
    assert_logs_clean(watcher.log, sub.log)


def test_slow_writer_is_posted_once_complete_and_temp_names_never(sarra_home, unique, procs,
                                                                   pair, tmp_path):
    src, dst, ex, posts, sub = pair
    watch_config(sarra_home, f"w_{unique}", ex, src)
    watcher = start_watch(procs, f"w_{unique}", tmp_path / "watch.log")
    chunks = [os.urandom(10_000) for _ in range(10)]
    with open(src / "slow.bin", "wb") as f:            # 10 chunks over 2 s, one open
        for c in chunks:
            f.write(c)
            f.flush()
            time.sleep(0.2)
    with open(src / "part.tmp", "wb") as f:             # written under a temporary name...
        f.write(b"x" * 5000)
    (src / ".hidden").write_bytes(b"editor swap")
    os.rename(src / "part.tmp", src / "whole.dat")      # ...and renamed into place
    wait_for(lambda: (dst / "whole.dat").exists() and (dst / "slow.bin").exists(),
             timeout=20, what="both files mirrored")
    msgs = posts.settle(1.5)
    assert posts_by_relpath(msgs) == Counter({"slow.bin": 1, "whole.dat": 1})
    slow = next(m for m in msgs if m.relpath == "slow.bin")
    assert slow.headers["parts"] == "1,100000,1,0,0"
    assert slow.headers["sum"] == "s," + hashlib.sha512(b"".join(chunks)).hexdigest()
    assert (dst / "slow.bin").read_bytes() == b"".join(chunks)
    assert not (dst / ".hidden").exists() and not (dst / "part.tmp").exists()
    stop(watcher)
    stop(sub)


def test_burst_of_5000_files_in_new_deep_directories_each_posted_once(sarra_home, unique,
                                                                      procs, taps, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ex = f"xw_{unique}"
    posts = taps(ex, "v02.post.#")
    watch_config(sarra_home, f"w_{unique}", ex, src)
    watcher = start_watch(procs, f"w_{unique}", tmp_path / "watch.log")
    expected = set()
    n = 0
    for top in range(10):                      # 10 trees, 5 levels deep, files at every level
        d = src / f"t{top}"
        for level in range(5):
            d = d / f"l{level}"
            d.mkdir(parents=True)
            for i in range(100):
                (d / f"f{i:03d}").write_bytes(b"%d" % n)
                expected.add(str((d / f"f{i:03d}").relative_to(src)))
                n += 1
    assert n == 5000
    posts.wait(lambda ms: len(ms) >= n, 60, "5000 posts")
    msgs = posts.settle(1.5)
    counts = posts_by_relpath(msgs)
    assert set(counts) == expected, (len(set(counts)), sorted(expected - set(counts))[:5])
    assert max(counts.values()) == 1, [r for r, c in counts.items() if c > 1][:5]
    stop(watcher)


def test_restart_posts_only_what_changed_meanwhile(sarra_home, unique, procs, taps, tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(50):
        (src / "d" / f"f{i}").write_bytes(os.urandom(100))
    ex = f"xw_{unique}"
    posts = taps(ex, "v02.post.#")
    name = f"w_{unique}"
    watch_config(sarra_home, name, ex, src, "post_on_start on\n")
    w1 = start_watch(procs, name, tmp_path / "w1.log")
    posts.wait(lambda ms: len(ms) >= 50, 20, "the 50 files present at start")
    assert len(posts.settle(1.0)) == 50
    stop(w1)

    (src / "d" / "f1").write_bytes(b"modified while the watcher was down")
    (src / "d" / "f2").unlink()
    (src / "d" / "new").write_bytes(b"new")
    posts.messages.clear()
    w2 = start_watch(procs, name, tmp_path / "w2.log")
    posts.wait(lambda ms: len(ms) >= 3, 20, "the three changes")
    msgs = posts.settle(1.5)
    assert sorted((m.relpath, m.operation) for m in msgs) == [
        ("d/f1", "file"), ("d/f2", "delete"), ("d/new", "file")]
    stop(w2)

    posts.messages.clear()                   # a restart with nothing changed posts nothing
    w3 = start_watch(procs, name, tmp_path / "w3.log")
    (src / "d" / "after").write_bytes(b"x")
    posts.wait(lambda ms: len(ms) >= 1, 20, "the file created after the restart")
    assert [m.relpath for m in posts.settle(1.5)] == ["d/after"]
    stop(w3)


def test_force_polling_sees_create_rename_delete(sarra_home, unique, procs, pair, tmp_path):
    src, dst, ex, posts, sub = pair
    watch_config(sarra_home, f"w_{unique}", ex, src, "force_polling on\nsleep 0.2\n")
    watcher = start_watch(procs, f"w_{unique}", tmp_path / "watch.log")
    assert "with polling" in Path(watcher.log).read_text()
    (src / "x").mkdir()
    (src / "x" / "a.dat").write_bytes(os.urandom(2000))
    (src / "b.dat").write_bytes(os.urandom(2000))
    wait_same_tree(src, dst, timeout=20, proc=sub)
    inode = (dst / "b.dat").stat().st_ino
    os.rename(src / "b.dat", src / "x" / "b2.dat")
    (src / "x" / "a.dat").unlink()
    (src / "x" / "keep").write_bytes(b"k")
    wait_same_tree(src, dst, timeout=20, proc=sub)
    assert (dst / "x" / "b2.dat").stat().st_ino == inode
    counts = posts_by_relpath(posts.settle(1.0))
    assert counts == Counter({"x/a.dat": 2, "b.dat": 2, "x/b2.dat": 1, "x/keep": 1}), counts
    stop(watcher)
    stop(sub)


def test_a_rename_travels_through_a_reposting_subscriber(sarra_home, unique, procs, taps,
                                                         tmp_path):
    """watch -> subscriber 1 (mirrors, re-posts its copies) -> subscriber 2:
    a rename at the source is a rename at every hop, never a download."""
    src, mid, end = tmp_path / "src", tmp_path / "mid", tmp_path / "end"
    src.mkdir()
    ex1, ex2, xr = f"xw1_{unique}", f"xw2_{unique}", f"xwr_{unique}"
    one, two = f"hop1_{unique}", f"hop2_{unique}"
    sub_config(sarra_home, one, ex1, mid, xr, extra=(
        f"post_broker {BROKER}\npost_exchange {ex2}\npost_base_url file:{mid}/\n"))
    sub_config(sarra_home, two, ex2, end, xr)
    for name in (one, two):
        declare(name)
        taps.queues.append(qname(sarra_home, name))
    hop2_posts = taps(ex2, "v02.post.#")
    subs = [procs.start_tool("subscribe", "foreground", n, log=tmp_path / f"{n}.log")
            for n in (one, two)]
    watch_config(sarra_home, f"w_{unique}", ex1, src)
    watcher = start_watch(procs, f"w_{unique}", tmp_path / "watch.log")

    (src / "d").mkdir()
    (src / "d" / "a.dat").write_bytes(os.urandom(5000))
    wait_same_tree(src, end, timeout=20)
    inodes = [(mid / "d" / "a.dat").stat().st_ino, (end / "d" / "a.dat").stat().st_ino]
    os.rename(src / "d" / "a.dat", src / "d" / "b.dat")
    wait_same_tree(src, end, timeout=20)
    assert compare_trees(src, mid) == []
    assert [(mid / "d" / "b.dat").stat().st_ino, (end / "d" / "b.dat").stat().st_ino] == inodes
    renames = [m for m in hop2_posts.settle(0.5) if "newname" in m.headers or "oldname" in m.headers]
    assert sorted((m.relpath, m.headers.get("newname"), m.headers.get("oldname"))
                  for m in renames) == [("d/a.dat", "d/b.dat", None), ("d/b.dat", None, "d/a.dat")]
    for p in (watcher, *subs):
        stop(p)
