"""Containment of the local tree, without a broker: the link rule, links and
renames that would make a path of the tree resolve outside it, paths
resolved again at the moment of use, the stale sweep that removes only our
own inflight files, the check of ``directory`` at start, and local errors
reported as local (sarra/containment.py, flow/work.py, flow/inflight.py)."""
import errno
import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sarra.checksum import sum_name
from sarra.components import PRESETS
from sarra.config import load_config
from sarra.containment import depth_below, link_refusal
from sarra.errors import (ChecksumError, ConfigError, LocalError, MessageError, TransferError,
                          UnsafePathError)
from sarra.flow.filter import Placement
from sarra.flow.inflight import InflightFiles
from sarra.flow.send import remote_link_check
from sarra.flow.work import Downloader, check_directory
from sarra.message import Message

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SARRA_INSTANCE", raising=False)


def subscriber(dst: Path, *extra) -> Downloader:
    cfg = load_config("subscribe", None, [("directory", str(dst)), ("mirror", "on"),
                                          ("preserve_time", "on"), *extra],
                      PRESETS["subscribe"])
    return Downloader(cfg)


def op(worker: Downloader, relpath: str, sum_header: str, newname: str | None = None,
       base: str = "file:/nowhere/", **headers):
    """Apply one post the way the engine does (target, rename_to, apply)."""
    m = Message("20261125120000.000", base, relpath, {"sum": sum_header, **headers})
    placement = Placement(worker.cfg.directory, True)
    target = worker.target(m, placement)
    if newname is not None:
        m.headers["newname"] = newname
        probe = Message(m.pubtime, m.base_url, newname, dict(m.headers))
        target = target._replace(rename_to=worker.target(probe, placement).path)
    return worker.apply(m, target)


def link(worker, relpath: str, target: str):
    return op(worker, relpath, sum_name("L", target), link=target)


def rename(worker, relpath: str, newname: str):
    return op(worker, relpath, sum_name("R", relpath), newname=newname)


def remove(worker, relpath: str):
    return op(worker, relpath, sum_name("R", relpath))


def mkdir(worker, relpath: str):
    return op(worker, relpath, sum_name("m", relpath))


def fetch(worker, src: Path, relpath: str, data: bytes, mtime: float | None = None):
    path = src / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    extra = {}
    if mtime is not None:
        os.utime(path, (mtime, mtime))
        extra["mtime"] = time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime)) + ".000"
    return op(worker, relpath, "d," + hashlib.md5(data).hexdigest(), base=f"file:{src}/",
              parts=f"1,{len(data)},1,0,0", **extra)


def escapes(root: Path) -> list[str]:
    """Every path of the tree (each directory entry, links not followed while
    walking) whose resolution is outside ``root``."""
    real = os.path.realpath(root)
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            resolved = os.path.realpath(path)
            if resolved != real and not resolved.startswith(real + os.sep):
                out.append(f"{os.path.relpath(path, root)} -> {resolved}")
    return out


# -- the rule ----------------------------------------------------------------

@pytest.mark.parametrize("target,depth", [
    ("x", 0), ("a/b/c", 0), (".", 0), ("./x", 0), ("", 0), ("a//b/", 0),
    ("..", 1), ("../x", 1), ("../../x/y", 2), ("../..", 3), ("./../x", 1), (".././../x", 2),
    ("../../../d1/d2", 5),
])
def test_the_link_rule_allows(target, depth):
    assert link_refusal(target, depth) is None


@pytest.mark.parametrize("target,depth,why", [
    ("/etc", 3, "absolute"), ("/", 0, "absolute"),
    ("..", 0, "climbs 1"), ("../x", 0, "climbs 1"), ("../../x", 1, "climbs 2"),
    ("../../../x", 2, "climbs 3"),
    ("u/..", 5, "after a name"), ("u/../x", 5, "after a name"), ("u/../../..", 5, "after a name"),
    ("../a/../b", 5, "after a name"), ("a/./..", 5, "after a name"), ("x\x00y", 1, "NUL"),
])
def test_the_link_rule_refuses(target, depth, why):
    assert why in link_refusal(target, depth)


def test_depth_below_counts_real_directories(tmp_path):
    assert depth_below(str(tmp_path), str(tmp_path)) == 0
    assert depth_below(str(tmp_path), str(tmp_path / "a")) == 1
    assert depth_below(str(tmp_path), str(tmp_path / "a" / "b" / "c")) == 3


def test_remote_links_obey_the_same_rule():
    remote_link_check("/srv/in", "/srv/in/a/b/l", "../../x")
    remote_link_check("/", "/a/l", "..")
    for path, target in (("/srv/in/l", ".."), ("/srv/in/a/l", "u/../.."), ("/srv/in/a/l", "/x"),
                         ("/srv/in/a/b/l", "../../../x")):
        with pytest.raises(UnsafePathError):
            remote_link_check("/srv/in", path, target)


# -- attacks on a real tree -----------------------------------------------------

def test_the_chain_attack_is_refused(tmp_path):
    dst = tmp_path / "dst"
    w = subscriber(dst)
    for d in ("d1", "d1/d2", "d1/d2/d3", "d1/d2/d3/d4"):
        assert mkdir(w, d).code == 201
    assert link(w, "esc/u", "../d1/d2/d3/d4").code == 201
    with pytest.raises(UnsafePathError) as err:
        link(w, "esc/t", "u/../../..")     # inside while u is deep; not once u -> .
    assert err.value.field == "link" and "after a name" in str(err.value)
    assert link(w, "esc/u", ".").code == 201
    assert not os.path.lexists(dst / "esc" / "t")
    assert escapes(dst) == []
    assert escapes(tmp_path) == []   # (nothing above was touched either)


def test_a_link_renamed_into_a_shallower_directory_is_refused_and_stays(tmp_path):
    dst = tmp_path / "dst"
    w = subscriber(dst)
    assert link(w, "a/b/c/l", "../../..").code == 201     # the root itself: fine there
    assert os.path.realpath(dst / "a/b/c/l") == os.path.realpath(dst)
    with pytest.raises(UnsafePathError):
        rename(w, "a/b/c/l", "top")                         # '../../..' from the root
    with pytest.raises(UnsafePathError):
        rename(w, "a/b/c/l", "a/l")
    assert os.readlink(dst / "a/b/c/l") == "../../.."      # left where it was
    assert not os.path.lexists(dst / "top") and not os.path.lexists(dst / "a/l")
    assert rename(w, "a/b/c/l", "x/y/z/moved").code == 201  # as deep: allowed
    assert os.readlink(dst / "x/y/z/moved") == "../../.."
    assert not os.path.lexists(dst / "a/b/c/l")
    assert escapes(dst) == []


def test_a_link_replacing_a_link_is_checked_at_its_place(tmp_path):
    dst = tmp_path / "dst"
    w = subscriber(dst)
    assert link(w, "a/x", "..").code == 201
    assert link(w, "a/x", "b").code == 201
    assert os.readlink(dst / "a/x") == "b"
    with pytest.raises(UnsafePathError):
        link(w, "a/x", "../..")
    assert os.readlink(dst / "a/x") == "b"
    # a link through a directory link is made in the real directory it lands in
    assert link(w, "up", "a").code == 201
    with pytest.raises(UnsafePathError):
        link(w, "up/y", "../..")         # up/ is a/ (depth 1): two levels is too many
    assert link(w, "up/y", "..").code == 201
    assert os.readlink(dst / "a" / "y") == ".."
    assert escapes(dst) == []


def test_the_old_attacks_stay_refused(tmp_path):
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    outside.mkdir()
    w = subscriber(dst)
    for rel, target in (("abs", str(outside)), ("up", ".."), ("a/up", "../.."),
                        ("a/b", "../../outside")):
        with pytest.raises(UnsafePathError):
            link(w, rel, target)
    dst.joinpath("planted").symlink_to(outside)          # made by someone else
    with pytest.raises(UnsafePathError):
        link(w, "inside", "planted/x")                    # physically outside
    with pytest.raises(UnsafePathError):
        link(w, "planted/l", "x")
    assert os.listdir(outside) == []


DIRS = ["d1", "d1/d2", "d1/d2/d3", "d1/d2/d3/d4", "a", "a/b"]
LINKS = ["u", "t", "v", "a/u", "a/t", "d1/u", "d1/d2/t", "a/b/l", "d1/d2/d3/x", "u/t", "t/v"]
TARGETS = [".", "..", "../..", "../../..", "d1/d2/d3/d4", "d1/d2/d3", "u", "t", "v", "u/..",
           "u/../..", "u/../../..", "t/..", "t/../..", "v/u", "a/b", "../d1", "../u",
           "../../t", "../../secret", "x/../../.."]


def random_posts(tmp_path: Path, seed: int) -> tuple[list[str], dict]:
    """300 random posts (seeded): links with hostile targets, renames of
    links, deletes, directories, over a tree of a few directories; the paths
    that resolved outside after each one (and what happened, by kind)."""
    dst = tmp_path / f"dst{seed}"
    w = subscriber(dst)
    rnd = random.Random(seed)
    for d in DIRS:
        mkdir(w, d)
    outcomes: dict = {}
    for _ in range(300):
        kind = rnd.choice("llllrrdm")
        try:
            if kind == "l":
                link(w, rnd.choice(LINKS), rnd.choice(TARGETS))
            elif kind == "r":
                rename(w, rnd.choice(LINKS), rnd.choice(LINKS))
            elif kind == "d":
                remove(w, rnd.choice(LINKS))
            else:
                mkdir(w, rnd.choice(DIRS + LINKS))
            outcome = "done"
        except (UnsafePathError, MessageError, LocalError) as exc:
            outcome = type(exc).__name__
        outcomes[kind, outcome] = outcomes.get((kind, outcome), 0) + 1
        found = escapes(dst)
        if found:
            return found, outcomes
    return [], outcomes


SEEDS = (1, 3, 5, 6, 11, 12)


def test_any_sequence_of_links_renames_and_deletes_keeps_the_tree_inside(tmp_path):
    """After each post of every sequence, no path of the tree resolves outside it."""
    (tmp_path / "secret").mkdir()
    for seed in SEEDS:
        found, outcomes = random_posts(tmp_path, seed)
        assert found == [], f"seed {seed}: {found}"
        for what in (("l", "done"), ("l", "UnsafePathError"), ("r", "done"), ("d", "done")):
            assert outcomes.get(what, 0) >= 5, (seed, outcomes)     # each happened, often
    assert os.listdir(tmp_path / "secret") == []


def test_the_sequences_escape_with_the_physical_check_alone(tmp_path, monkeypatch):
    """The same sequences, with only the check made when a link is made (its
    target resolved inside, not absolute): some path then resolves outside."""
    import sarra.containment as containment
    monkeypatch.setattr(containment, "link_refusal",
                        lambda link, depth: "is absolute" if link.startswith("/") else None)
    (tmp_path / "secret").mkdir()
    escaped = [seed for seed in SEEDS if random_posts(tmp_path, seed)[0]]
    assert len(escaped) >= 2, escaped


def test_paths_are_resolved_again_when_used(tmp_path):
    """A target computed while ``a`` was a directory; ``a`` is then replaced
    by a link to the outside (by someone with access to the tree): the
    write is refused, nothing lands outside."""
    dst, outside, src = tmp_path / "dst", tmp_path / "outside", tmp_path / "src"
    outside.mkdir()
    w = subscriber(dst)
    (src / "a").mkdir(parents=True)
    (src / "a" / "f").write_bytes(b"data")
    (dst / "a").mkdir(parents=True)
    m = Message("20261125120000.000", f"file:{src}/", "a/f",
                {"sum": "d," + hashlib.md5(b"data").hexdigest(), "parts": "1,4,1,0,0"})
    target = w.target(m, Placement(str(dst), True))
    (dst / "a").rmdir()
    (dst / "a").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        w.apply(m, target)
    assert os.listdir(outside) == []
    # a link's depth is the one of the directory it is made in, at that moment
    (dst / "a").unlink()
    (dst / "p" / "q").mkdir(parents=True)
    lm = Message("20261125120000.000", "file:/x/", "p/q/l",
                 {"sum": sum_name("L", "../.."), "link": "../.."})
    ltarget = w.target(lm, Placement(str(dst), True))     # p/q: depth 2, '../..' fits
    (dst / "p" / "q").rmdir()
    (dst / "p" / "q").symlink_to("..")                      # p/q is now the root (depth 0)
    with pytest.raises(UnsafePathError):
        w.apply(lm, ltarget)
    assert escapes(dst) == []


# -- the stale sweep -------------------------------------------------------------

def test_the_sweep_leaves_a_delivered_tmp_file(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    w = subscriber(dst)
    old = time.time() - 3600
    assert fetch(w, src, "x.tmp", b"delivered", mtime=old).code == 201
    assert fetch(w, src, "sub/y.bin.tmp", b"also delivered", mtime=old).code == 201
    (dst / "stranger.tmp").write_bytes(b"not ours")           # made by someone else
    os.utime(dst / "stranger.tmp", (old, old))
    assert w.clean_stale(1.0) == 0
    assert (dst / "x.tmp").read_bytes() == b"delivered"
    assert (dst / "sub" / "y.bin.tmp").read_bytes() == b"also delivered"
    assert (dst / "stranger.tmp").exists()
    w.close()
    again = subscriber(dst)           # a successor reads the record: nothing of it either
    assert again.clean_stale(0.0) == 0 and (dst / "x.tmp").exists()


KILLED = r"""
import os, signal, sys
from sarra.components import PRESETS
from sarra.config import load_config
from sarra.flow.filter import Placement
from sarra.flow.work import Downloader
from sarra.message import Message

dst, src = sys.argv[1], sys.argv[2]
cfg = load_config("subscribe", None, [("directory", dst), ("mirror", "on"),
                                      ("preserve_time", "on")], PRESETS["subscribe"])
w = Downloader(cfg)

class Dying:
    size = None
    def read(self, n):
        os.kill(os.getpid(), signal.SIGKILL)     # killed in the middle of the download
    def close(self):
        pass

class Transfer:
    def open(self, url, offset=0, length=None):
        return Dying()
    def close(self):
        pass

w._transfers["file"] = Transfer()
m = Message("20261125120000.000", "file:" + src + "/", "d/f.bin",
            {"sum": "d," + "0" * 32, "parts": "1,100,1,0,0"})
w.apply(m, w.target(m, Placement(dst, True)))
"""


def test_the_sweep_removes_what_a_killed_process_of_ours_left(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", KILLED, str(dst), str(src)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == -9, res.stderr
    left = dst / "d" / "f.bin.tmp"
    assert left.exists(), os.listdir(dst / "d")
    records = list((tmp_path / "state" / "subscribe").glob("*/inflight.00.list"))
    assert len(records) == 1 and str(left).encode() in records[0].read_bytes()
    (dst / "d" / "g.bin.tmp").write_bytes(b"a file delivered under that name")
    old = time.time() - 3600
    for p in (left, dst / "d" / "g.bin.tmp"):
        os.utime(p, (old, old))
    w = subscriber(dst)          # the same configuration, started again
    assert w.clean_stale(60.0) == 1
    assert not left.exists()
    assert (dst / "d" / "g.bin.tmp").read_bytes() == b"a file delivered under that name"
    assert str(left).encode() not in records[0].read_bytes()   # forgotten once removed


def test_a_recorded_path_that_is_now_another_file_is_not_swept(tmp_path):
    """The record says (path, inode): a file put at that path since (a
    delivered x.tmp renamed over our leftover) is another file."""
    ours = InflightFiles(str(tmp_path / "inflight.00.list"))
    path = tmp_path / "x.tmp"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    ours.made(str(path), fd)
    os.close(fd)
    (tmp_path / "new").write_bytes(b"delivered")
    os.replace(tmp_path / "new", path)
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert ours.sweep(1.0) == 0 and path.read_bytes() == b"delivered"
    assert str(path) not in ours.live
    # and a recorded one that is still ours, old and not locked, goes
    fd = os.open(tmp_path / "y.tmp", os.O_WRONLY | os.O_CREAT, 0o600)
    ours.made(str(tmp_path / "y.tmp"), fd)
    os.close(fd)
    os.utime(tmp_path / "y.tmp", (old, old))
    assert ours.sweep(1.0) == 1 and not (tmp_path / "y.tmp").exists()


def test_a_running_process_keeps_its_record_and_a_second_one_gets_its_own(tmp_path):
    first = InflightFiles(str(tmp_path / "inflight.00.list"))
    second = InflightFiles(str(tmp_path / "inflight.00.list"))
    for n, rec in enumerate((first, second)):
        fd = os.open(tmp_path / f"f{n}.tmp", os.O_WRONLY | os.O_CREAT, 0o600)
        rec.made(str(tmp_path / f"f{n}.tmp"), fd)
        os.close(fd)
    assert first.path.endswith("inflight.00.list")
    assert second.path.endswith(f"inflight.00.{os.getpid()}.list")
    assert list(second.live) == [str(tmp_path / "f1.tmp")]   # the first one's are its own
    second.close()                                           # gone: the first takes over
    third = InflightFiles(str(tmp_path / "inflight.00.list"))
    third.sweep(3600)
    assert third.path.endswith(f"inflight.00.{os.getpid()}.list")
    assert sorted(third.live) == [str(tmp_path / "f1.tmp")]
    first.close()


def test_a_file_assembled_in_place_is_recorded_and_placed(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    w = subscriber(dst)
    data = os.urandom(16)
    (src).mkdir()
    (src / "b.bin").write_bytes(data)
    for bno in range(2):
        piece = data[bno * 8:bno * 8 + 8]
        m = Message("20261125120000.000", f"file:{src}/", "b.bin",
                    {"sum": "d," + hashlib.md5(piece).hexdigest(),
                     "parts": f"i,8,2,0,{bno}"})
        w.apply(m, w.target(m, Placement(str(dst), True)))
        if bno == 0:
            assert str(dst / "b.bin.tmp") in w._ours.live
            assert w.clean_stale(0.0) == 0 and (dst / "b.bin.tmp").exists()   # has .blocks
    assert (dst / "b.bin").read_bytes() == data
    assert w._ours.live == {}


# -- the directory ----------------------------------------------------------------

def test_a_directory_through_a_regular_file_is_a_configuration_error(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    for directory in (f"{tmp_path}/file/sub", f"{tmp_path}/file", f"{tmp_path}/file/${{SOURCE}}",
                      f"{tmp_path}/file/in/${{YYYYMMDD}}/x"):
        with pytest.raises(ConfigError) as err:
            check_directory(directory)
        assert err.value.option == "directory" and f"{tmp_path}/file" in str(err.value)
    with pytest.raises(ConfigError) as err:
        subscriber(tmp_path / "file" / "sub")
    assert err.value.option == "directory"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="dangling"):
        check_directory(f"{tmp_path}/dangling/sub")


def test_usable_directories_pass_the_check(tmp_path, monkeypatch):
    check_directory(str(tmp_path))
    check_directory(f"{tmp_path}/not/yet/made")
    check_directory(f"{tmp_path}/${{SOURCE}}/in")
    check_directory(f"{tmp_path}/x${{YYYYMMDD}}")
    monkeypatch.chdir(tmp_path)
    check_directory("relative/dir")
    check_directory(".")
    assert not (tmp_path / "not").exists()          # nothing is made by the check


def test_a_directory_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path / "ro"))
    (tmp_path / "ro").mkdir()
    with pytest.raises(ConfigError, match="cannot write into"):
        check_directory(f"{tmp_path}/ro/sub")


def test_the_directory_of_every_accept_clause_is_checked(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    conf = tmp_path / "two.conf"
    conf.write_text(f"broker amqp://u@h/\ndirectory {tmp_path}/good\naccept .*a.*\n"
                    f"directory {tmp_path}/file/bad\naccept .*b.*\n")
    cfg = load_config("subscribe", str(conf))
    with pytest.raises(ConfigError) as err:
        Downloader(cfg)
    assert "file/bad" in str(err.value)


def test_dd_subscribe_exits_2_naming_the_option(tmp_path, monkeypatch, capsys):
    from sarra.cli import run
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    (tmp_path / "file").write_bytes(b"x")
    rc = run("subscribe", ["--broker", "amqp://guest:guest@127.0.0.1/",
                           "--directory", f"{tmp_path}/file/sub", "foreground"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "option 'directory'" in err and f"{tmp_path}/file is not a directory" in err


# -- local errors -----------------------------------------------------------------

def test_a_local_write_error_is_a_local_error_naming_the_path_and_errno(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    w = subscriber(dst)
    dst.mkdir()
    (dst / "blocker").write_bytes(b"a file where a directory should be")
    with pytest.raises(LocalError) as err:
        fetch(w, src, "blocker/f.bin", b"data")
    e = err.value
    assert isinstance(e, TransferError) and e.code == 500 and e.recoverable
    assert "ENOTDIR" in str(e) and str(dst / "blocker") in str(e)


@pytest.mark.parametrize("code,status,retried", [
    (errno.ENOSPC, 507, True), (errno.EDQUOT, 507, True), (errno.EROFS, 500, True),
    (errno.EACCES, 500, True), (errno.ELOOP, 500, True), (errno.ENAMETOOLONG, 500, False),
])
def test_local_error_codes(code, status, retried):
    e = LocalError.of(OSError(code, os.strerror(code), "/data/x/f.tmp"))
    assert (e.code, e.recoverable) == (status, retried)
    assert str(e).startswith(f"local error: /data/x/f.tmp: {errno.errorcode[code]} (")


def test_a_full_disk_during_the_copy_is_507_and_nothing_is_left(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    w = subscriber(dst)
    import sarra.flow.work as work

    def full(stream, out, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(work, "copy", full)
    with pytest.raises(LocalError) as err:
        fetch(w, src, "f.bin", b"data")
    assert err.value.code == 507 and str(dst / "f.bin") in str(err.value)
    assert os.listdir(dst) == [] and w._ours.live == {}


def test_errors_of_the_source_keep_their_codes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    w = subscriber(dst)
    m = Message("20261125120000.000", f"file:{src}/", "missing.bin",
                {"sum": "d," + "0" * 32, "parts": "1,4,1,0,0"})
    with pytest.raises(TransferError) as err:
        w.apply(m, w.target(m, Placement(str(dst), True)))
    assert not isinstance(err.value, LocalError)
    assert (err.value.code, err.value.recoverable) == (499, False)

    class Broken:
        size = None

        def read(self, n):
            raise OSError(errno.EIO, "Input/output error")

        def close(self):
            pass

    class Transfer:
        def open(self, url, offset=0, length=None):
            return Broken()

        def close(self):
            pass

    w._transfers["file"] = Transfer()
    with pytest.raises(TransferError) as err:
        fetch(w, src, "eio.bin", b"data")
    assert not isinstance(err.value, LocalError) and err.value.code == 499
    assert "reading file:" in str(err.value)
    assert not (dst / "eio.bin").exists() and not (dst / "eio.bin.tmp").exists()


# -- dd_sender: links on the server, by the same rule ---------------------------

class FakePusher:
    def __init__(self):
        self.calls = []

    def symlink(self, url, link, dir_mode):
        self.calls.append(("symlink", url, link))

    def rename(self, url, new_url, dir_mode):
        self.calls.append(("rename", url, new_url))
        return True

    def remove(self, url):
        self.calls.append(("remove", url))
        return True

    def close(self):
        pass


def test_dd_sender_makes_and_moves_remote_links_by_the_rule(tmp_path, monkeypatch):
    from sarra.flow.filter import choose, default_placement
    from sarra.flow.send import Sender
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    os.symlink("../..", tree / "a" / "b" / "l")       # the switch's link (fine there)
    conf = tmp_path / "push.conf"
    conf.write_text(f"broker amqp://guest@localhost/\ndestination sftp://bob@h/srv/in/\n"
                    f"base_dir {tree}\naccept .*\n")
    s = Sender(load_config("sender", str(conf), (), PRESETS["sender"]))
    s._transfer = FakePusher()

    def apply(relpath, sum_header, **headers):
        m = Message("20261125120000.000", f"file:{tree}/", relpath, {"sum": sum_header, **headers})
        _ok, placement, _why = choose(m, s.cfg.masks, True, default_placement(s.cfg))
        target = s.target(m, placement)
        if "newname" in headers:
            probe = Message(m.pubtime, m.base_url, headers["newname"], dict(m.headers))
            target = target._replace(rename_to=s.target(probe, placement).path)
        return s.apply(m, target)

    assert apply("a/b/l", sum_name("L", "../.."), link="../..").code == 201
    for rel, target in (("a/t", "u/../.."), ("a/t", "../.."), ("t", "..")):
        with pytest.raises(UnsafePathError):
            apply(rel, sum_name("L", target), link=target)
    assert [c[0] for c in s._transfer.calls] == ["symlink"]
    # the switch renamed its link a/b/l to top: moved on the server it would climb out
    os.rename(tree / "a" / "b" / "l", tree / "top")
    with pytest.raises(UnsafePathError):
        apply("a/b/l", sum_name("R", "l"), newname="top")
    assert [c[0] for c in s._transfer.calls] == ["symlink"]      # nothing renamed there
    os.rename(tree / "top", tree / "a" / "b" / "m")
    assert apply("a/b/l", sum_name("R", "l"), newname="a/b/m").code == 201
    assert s._transfer.calls[-1] == ("rename", "sftp://bob@h/srv/in/a/b/l",
                                     "sftp://bob@h/srv/in/a/b/m")


def test_a_link_or_directory_through_a_regular_file_is_enotdir(tmp_path):
    dst = tmp_path / "dst"
    w = subscriber(dst)
    dst.mkdir()
    (dst / "blocker").write_bytes(b"x")
    for apply in (lambda: link(w, "blocker/l", "x"), lambda: mkdir(w, "blocker/d"),
                  lambda: mkdir(w, "blocker")):
        with pytest.raises(LocalError) as err:
            apply()
        assert (err.value.code, err.value.errno_name) == (500, "ENOTDIR"), str(err.value)
        assert str(dst / "blocker") in str(err.value)


# -- resolving a path --------------------------------------------------------------

def test_real_is_realpath_whatever_the_path(tmp_path, monkeypatch):
    """``containment.real`` (the kernel's resolution, read back from
    /proc/self/fd) gives what os.path.realpath gives: links to directories
    and files, relative links, '..' after a link (physical), dangling
    links, loops, a path through a regular file, missing components, and
    a directory deleted while open; and the same when /proc is not there."""
    import sarra.containment as containment
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    (tmp_path / "out").mkdir()
    (tmp_path / "a" / "up").symlink_to("..")
    (tmp_path / "a" / "b" / "lf").symlink_to("f")
    (tmp_path / "a" / "away").symlink_to(tmp_path / "out")
    (tmp_path / "a" / "dangling").symlink_to("nothing/here")
    (tmp_path / "a" / "loop1").symlink_to("loop2")
    (tmp_path / "a" / "loop2").symlink_to("loop1")
    (tmp_path / "a" / "name with (deleted)").mkdir()
    paths = ["a", "a/b", "a/b/", "a/b/f", "a/b/lf", "a/up", "a/up/a/b", "a/away", "a/away/..",
             "a/away/new/file", "a/dangling", "a/dangling/x", "a/loop1", "a/loop1/x",
             "a/b/f/x", "missing", "missing/x/y", "a/./b/../b", "a/name with (deleted)"]
    monkeypatch.chdir(tmp_path)
    for rel in paths:
        for p in (str(tmp_path / rel), rel):
            assert containment.real(p) == os.path.realpath(p), p
    monkeypatch.setattr(containment, "_proc_fd", [False])
    for rel in paths:
        assert containment.real(rel) == os.path.realpath(rel), rel


def test_real_of_a_directory_deleted_while_resolved_is_realpaths(tmp_path, monkeypatch):
    import sarra.containment as containment
    gone = tmp_path / "gone"
    gone.mkdir()
    readlink = os.readlink

    def deleted_meanwhile(path):
        got = readlink(path)
        if str(path).startswith("/proc/self/fd/") and os.path.exists(gone):
            gone.rmdir()
        return got + " (deleted)" if str(path).startswith("/proc/self/fd/") else got
    monkeypatch.setattr(containment.os, "readlink", deleted_meanwhile)
    assert containment.real(str(gone)) == str(gone)   # realpath's answer, lexical


def _swapping(worker: Downloader, swap, when: str):
    """Give ``worker`` a file: transfer that calls ``swap()`` once, as the
    first byte of the next download is read (``when`` 'during'), or once
    that download is over (``when`` 'after')."""
    from sarra.transfer.file import FileTransfer
    real = FileTransfer()
    state = {"done": False}

    class Stream:
        def __init__(self, inner):
            self.inner, self.size = inner, getattr(inner, "size", None)

        def read(self, n):
            if when == "during" and not state["done"]:
                state["done"] = True
                swap()
            return self.inner.read(n)

        def close(self):
            self.inner.close()
            if when == "after" and not state["done"]:
                state["done"] = True
                swap()

    class Swapping:
        def open(self, url, offset=0, length=None):
            return Stream(real.open(url, offset, length))

        def remove(self, url):
            return real.remove(url)

        def close(self):
            real.close()
    worker._transfers["file"] = Swapping()


@pytest.mark.parametrize("when", ["after", "during"])
def test_a_directory_swapped_for_a_link_between_two_files_of_a_batch(tmp_path, when):
    """Two files of one directory, their targets computed together (as a
    batch's); the directory is replaced by a symbolic link out of the tree
    after the first file is placed ('after'), or while the second one is
    being copied ('during': after its inflight file was opened, before its
    rename). The second file is refused (403) and nothing is written
    outside; the first stays where it was put."""
    dst, outside, src = tmp_path / "dst", tmp_path / "outside", tmp_path / "src"
    outside.mkdir()
    (src / "a").mkdir(parents=True)
    w = subscriber(dst)
    msgs = []
    for name in ("f1", "f2"):
        data = f"data of {name}".encode()
        (src / "a" / name).write_bytes(data)
        msgs.append(Message("20261125120000.000", f"file:{src}/", f"a/{name}",
                            {"sum": "d," + hashlib.md5(data).hexdigest(),
                             "parts": f"1,{len(data)},1,0,0"}))
    (dst / "a").mkdir(parents=True)
    targets = [w.target(m, Placement(str(dst), True)) for m in msgs]

    def swap():
        os.rename(dst / "a", dst / "moved")        # still inside the tree
        (dst / "a").symlink_to(outside)
    if when == "after":
        _swapping(w, swap, "after")
        assert w.apply(msgs[0], targets[0]).code == 201
        with pytest.raises(UnsafePathError):
            w.apply(msgs[1], targets[1])
        assert (dst / "moved" / "f1").read_bytes() == b"data of f1"
    else:
        assert w.apply(msgs[0], targets[0]).code == 201
        _swapping(w, swap, "during")
        with pytest.raises(UnsafePathError):
            w.apply(msgs[1], targets[1])
        assert sorted(os.listdir(dst / "moved")) == ["f1"]   # its inflight file removed
    assert os.listdir(outside) == []
    (dst / "a").unlink()                  # the link planted (by someone with access)
    assert escapes(dst) == []
    w.close()


def test_a_failed_download_in_a_swapped_directory_touches_nothing_outside(tmp_path):
    """The inflight file of a download whose directory was swapped for a
    link out of the tree meanwhile: its mode and times are set on the file
    written (its descriptor), and when the download fails, what is removed
    is that file where it is now, never a file outside of the same name."""
    dst, outside, src = tmp_path / "dst", tmp_path / "outside", tmp_path / "src"
    outside.mkdir()
    (outside / "f.tmp").write_bytes(b"not yours")
    (outside / "f.tmp").chmod(0o600)
    (src / "a").mkdir(parents=True)
    (src / "a" / "f").write_bytes(b"data")
    (dst / "a").mkdir(parents=True)
    w = subscriber(dst, ("preserve_mode", "on"))
    m = Message("20261125120000.000", f"file:{src}/", "a/f",
                {"sum": "d," + hashlib.md5(b"other").hexdigest(),    # will not verify
                 "parts": "1,4,1,0,0", "mode": "777"})
    target = w.target(m, Placement(str(dst), True))

    def swap():
        os.rename(dst / "a", dst / "moved")
        (dst / "a").symlink_to(outside)
    _swapping(w, swap, "during")
    with pytest.raises(ChecksumError):
        w.apply(m, target)
    assert (outside / "f.tmp").read_bytes() == b"not yours"
    assert (outside / "f.tmp").stat().st_mode & 0o777 == 0o600
    assert os.listdir(dst / "moved") == []
    m.headers["sum"] = "d," + hashlib.md5(b"data").hexdigest()   # verifies: mode set on fd
    (dst / "a").unlink()
    os.rename(dst / "moved", dst / "a")
    _swapping(w, swap, "during")
    with pytest.raises(UnsafePathError):
        w.apply(m, target)
    assert (outside / "f.tmp").stat().st_mode & 0o777 == 0o600
    assert os.listdir(dst / "moved") == [] and sorted(os.listdir(outside)) == ["f.tmp"]
    w.close()


def test_real_of_a_path_resolving_beyond_path_max_keeps_the_kernels_lookup(tmp_path,
                                                                          monkeypatch):
    """A path whose resolution is longer than PATH_MAX (links made by posts
    can do that: each target short, their chain long) cannot be read back
    from /proc/self/fd (ENAMETOOLONG): realpath's answer for that one, but
    the kernel's lookup was switched off for the rest of the process, as if
    /proc were missing."""
    import sarra.containment as containment
    if not containment._proc_fd[0]:
        pytest.skip("no O_PATH or /proc here")
    half = "/".join(["x" * 250] * 10)
    monkeypatch.chdir(tmp_path)
    os.makedirs(half)
    os.chdir(half)                      # (the whole path is too long for one call)
    os.makedirs(half)
    os.symlink(half, "l2")
    os.chdir(tmp_path)
    os.symlink(half, "l1")
    deep = str(tmp_path / "l1" / "l2")
    assert len(os.path.realpath(deep)) > 4096
    try:
        assert containment.real(deep) == os.path.realpath(deep)
        assert containment._proc_fd[0], "the kernel's lookup was switched off"
    finally:
        containment._proc_fd[0] = True


def test_real_is_realpath_on_generated_trees(tmp_path):
    """Property-style: random trees of directories, files and links
    (relative, absolute, out of the tree, chains, loops, dangling), names
    with a newline, non-UTF-8 bytes, ' (deleted)'; random paths through
    them with '..', '.', '' and missing names: real() == realpath()."""
    import random
    import sarra.containment as containment
    names = ["a", "b", "d\n", "e (deleted)", "\udcff\udcfe", " ", "..f"]
    rng = random.Random(11)
    for n in range(60):
        root = tmp_path / str(n) / "r"
        root.mkdir(parents=True)
        dirs = [str(root)]
        for _ in range(rng.randint(3, 10)):
            d = os.path.join(rng.choice(dirs), rng.choice(names))
            if not os.path.lexists(d):
                os.mkdir(d)
                dirs.append(d)
        for _ in range(rng.randint(2, 8)):
            at = os.path.join(rng.choice(dirs), rng.choice(names))
            if os.path.lexists(at):
                continue
            kind = rng.random()
            if kind < .3:
                target = os.path.relpath(rng.choice(dirs), os.path.dirname(at))
            elif kind < .5:
                target = rng.choice(dirs) + rng.choice(["", "/", "/" + rng.choice(names)])
            elif kind < .8:
                target = "/".join(rng.choice(names + ["..", "."]) for _ in range(rng.randint(1, 4)))
            else:
                target = str(tmp_path)
            if rng.random() < .2:
                open(at, "x").close()
            else:
                os.symlink(target, at)
        for _ in range(40):
            comps = [rng.choice(names + ["..", ".", "", "zz"]) for _ in range(rng.randint(0, 6))]
            p = os.path.join(str(root), *comps)
            assert containment.real(p) == os.path.realpath(p), p


@pytest.mark.parametrize("when", ["after", "during"])
@pytest.mark.parametrize("inplace", ["on", "off"])
def test_a_directory_swapped_for_a_link_between_two_blocks_of_a_file(tmp_path, inplace, when):
    """A file arriving in two blocks: its directory is replaced by a link
    out of the tree after the first block, before the second is fetched
    ('after' the first's fetch) or while it is ('during'). The second block (the one that
    completes the file) is refused, and nothing outside is written, created,
    truncated, given a mode or removed: not the inflight file's namesake,
    not its .blocks record's, not a part file's."""
    dst, outside, src = tmp_path / "dst", tmp_path / "outside", tmp_path / "src"
    outside.mkdir()
    (src / "a").mkdir(parents=True)
    data = b"01234567"
    (src / "a" / "f").write_bytes(data)
    (dst / "a").mkdir(parents=True)
    w = subscriber(dst, ("preserve_mode", "on"), ("inplace", inplace), ("inflight", ".tmp"))
    msgs = [Message("20261125120000.000", f"file:{src}/", "a/f",
                    {"sum": "d," + hashlib.md5(data[4 * n:4 * n + 4]).hexdigest(),
                     "parts": f"i,4,2,0,{n}", "mode": "777"}) for n in (0, 1)]
    targets = [w.target(m, Placement(str(dst), True)) for m in msgs]
    assert w.apply(msgs[0], targets[0]).code in (201, 307)
    planted = {name: b"not yours, " + name.encode() for name in sorted(os.listdir(dst / "a"))}
    for name, text in planted.items():       # namesakes of what the first block left
        (outside / name).write_bytes(text)
        (outside / name).chmod(0o600)

    def swap():
        os.rename(dst / "a", dst / "moved")
        (dst / "a").symlink_to(outside)
    _swapping(w, swap, when)
    with pytest.raises(UnsafePathError):
        w.apply(msgs[1], targets[1])
    assert sorted(os.listdir(outside)) == sorted(planted)
    for name, text in planted.items():
        assert (outside / name).read_bytes() == text, name
        assert (outside / name).stat().st_mode & 0o777 == 0o600, name
    (dst / "a").unlink()
    w.close()
