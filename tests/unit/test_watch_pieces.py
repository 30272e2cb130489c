"""The pure and local pieces of dd_watch: listings and their differences,
the record of what was posted, which names are temporary."""
import os
from types import SimpleNamespace

from sarra.flow.watching import temp_globs
from sarra.watch.snapshot import (CREATED, DELETED, MODIFIED, MOVED, Change, Entry, diff, rows,
                                  scan, walk)
from sarra.watch.state import WatchState


def e(size=1, mtime=1, ino=1, kind="f") -> Entry:
    return Entry(size, mtime, ino, kind)


def test_diff_creations_modifications_deletions():
    old = {"/t/a": e(ino=1), "/t/b": e(ino=2), "/t/c": e(ino=3)}
    new = {"/t/a": e(ino=1), "/t/b": e(size=2, ino=2), "/t/d": e(ino=4)}
    assert diff(old, new) == [Change(CREATED, "/t/d"), Change(MODIFIED, "/t/b"),
                              Change(DELETED, "/t/c")]


def test_diff_pairs_a_vanished_and_a_new_path_of_the_same_inode_as_a_move():
    old = {"/t/a": e(ino=7, mtime=5), "/t/x": e(ino=8)}
    new = {"/t/sub/a2": e(ino=7, mtime=5), "/t/x": e(ino=8)}
    assert diff(old, new) == [Change(MOVED, "/t/a", "/t/sub/a2")]


def test_diff_same_inode_but_new_content_is_not_a_move():
    old = {"/t/a": e(ino=7, size=1)}
    new = {"/t/b": e(ino=7, size=9)}   # inode reused by a new file
    assert diff(old, new) == [Change(CREATED, "/t/b"), Change(DELETED, "/t/a")]


def test_diff_of_equal_listings_is_empty():
    listing = {f"/t/{i}": e(ino=i) for i in range(100)}
    assert diff(listing, dict(listing)) == []


def test_scan_lists_files_and_links_not_directories(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"abc")
    os.symlink("d/e/f", tmp_path / "ln")
    got = scan([str(tmp_path)])
    assert sorted(got) == [str(tmp_path / "d" / "e" / "f"), str(tmp_path / "ln")]
    assert got[str(tmp_path / "d" / "e" / "f")].size == 3
    assert got[str(tmp_path / "ln")].kind == "l"


def test_the_start_up_rows_are_the_walk_of_the_tree_with_what_is_ignored(tmp_path):
    """``rows`` (the listing at start) holds what ``walk`` finds, every
    kind of entry, with or without following links, and marks as ignored
    the temporary names and what is in the inflight directory."""
    (tmp_path / "d" / ".tmp").mkdir(parents=True)
    (tmp_path / "d" / "a").write_bytes(b"abc")
    (tmp_path / "d" / "b.tmp").write_bytes(b"x")
    (tmp_path / "d" / ".tmp" / "c").write_bytes(b"partial")
    os.symlink("d/a", tmp_path / "to_file")
    os.symlink("d", tmp_path / "to_dir")
    os.symlink("nowhere", tmp_path / "dangling")
    os.mkfifo(tmp_path / "d" / "fifo")
    ignored = lambda name: True if name.endswith(".tmp") else None   # noqa: E731
    for follow in (False, True):
        listed = sorted(rows([str(tmp_path)], follow, ignored, ".tmp"))
        walked = sorted(walk([str(tmp_path)], follow))
        assert [(p, size, mtime) for p, size, mtime, _ in listed] == \
            [(p, e.size, e.mtime_ns) for p, e in walked]
        flagged = {os.path.relpath(p, tmp_path) for p, *_, skip in listed if skip}
        assert {"d/b.tmp", "d/.tmp/c"} <= flagged
        assert not flagged - {"d/b.tmp", "d/.tmp/c", "to_dir/b.tmp", "to_dir/.tmp/c"}
        assert str(tmp_path / "d" / "fifo") not in {p for p, *_ in listed}


def test_state_commits_only_when_told(tmp_path):
    path = str(tmp_path / "watch.db")
    st = WatchState(path)
    st.put("/t/a", 1, 10, "s,aa")
    st.put("/t/dir/b", 2, 20, "s,bb")
    st.put("/t/dir/sub/c", 3, 30, None)
    st.put("/t/dirx", 4, 40, "s,dd")
    assert [p for p, _ in st.under("/t/dir")] == ["/t/dir/b", "/t/dir/sub/c"]
    st.commit()
    st.remove("/t/a")
    st.put("/t/new", 5, 50, "s,ee")
    st.rollback()                              # a batch the broker did not confirm
    assert st.get("/t/a").sum == "s,aa" and st.get("/t/new") is None
    st.close()
    again = WatchState(path)
    assert len(again) == 4 and again.get("/t/dir/sub/c").sum is None
    again.close()


def test_state_remembers_a_first_start_on_an_empty_tree(tmp_path):
    """A tree empty at the first start: a file that appears while dd_watch is
    stopped is posted at the next start (not recorded as at a first start)."""
    path = str(tmp_path / "watch.db")
    st = WatchState(path)
    assert not st.started
    st.mark_started()
    st.close()
    again = WatchState(path)
    assert again.started and len(again) == 0
    again.close()


def test_state_compares_a_listing_with_the_record_in_sqlite(tmp_path):
    """The start-up comparison (flow/watching.py _catch_up) runs in SQLite:
    new and changed paths, not the ignored ones nor the unchanged; vanished
    paths below a root only, an ignored path that is still there not
    vanished."""
    st = WatchState(str(tmp_path / "w.db"))
    st.put("/t/same", 1, 10, "s1")
    st.put("/t/grown", 1, 10, "s2")
    st.put("/t/gone", 1, 10, "s3")
    st.put("/t/now-ignored", 1, 10, "s4")
    st.put("/t2/elsewhere", 1, 10, "s5")     # another root's: not judged under /t
    st.commit()
    assert st.load_listing([("/t/same", 1, 10, False), ("/t/grown", 2, 10, False),
                            ("/t/new", 5, 50, False), ("/t/now-ignored", 1, 10, True),
                            ("/t/new-ignored", 1, 10, True)]) == (5, 2)
    assert sorted(st.changed()) == ["/t/grown", "/t/new"]
    assert [p for p, _ in st.vanished("/t")] == ["/t/gone"]
    assert [row.sum for _, row in st.vanished("/t")] == ["s3"]
    st.drop_listing()
    st.commit()
    assert len(st) == 5


def test_a_first_start_records_the_tree_as_it_is_walked(tmp_path):
    """No record yet: the listing's files are the baseline, without a sum
    (never announced), the ignored ones left out; nothing is compared."""
    st = WatchState(str(tmp_path / "w.db"))
    assert not st.started
    assert st.record_listing(iter([("/t/a", 1, 10, False), ("/t/b.tmp", 2, 20, True),
                                   ("/t/d/c", 3, 30, False)])) == (3, 1)
    st.commit()
    assert st.get("/t/a") == (1, 10, None, None) and st.get("/t/d/c") == (3, 30, None, None)
    assert st.get("/t/b.tmp") is None and len(st) == 2
    st.close()


def test_temporary_names_from_patterns_and_inflight():
    cfg = SimpleNamespace(temp_pattern=[".*"], inflight=".tmp")
    assert temp_globs(cfg) == [".*", "*.tmp"]
    assert temp_globs(SimpleNamespace(temp_pattern=[], inflight=".")) == [".*"]
    assert temp_globs(SimpleNamespace(temp_pattern=["*~"], inflight="5")) == ["*~"]
    assert temp_globs(SimpleNamespace(temp_pattern=[], inflight="NONE")) == []


def test_watch_limit_falls_back_to_polling_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno
    import queue

    from sarra.watch import observer

    def refuse(self):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(observer.EventWatcher, "start", refuse)
    changes: queue.Queue = queue.Queue()
    w = observer.start_watcher([str(tmp_path)], changes, False, 0.05)
    try:
        assert w.name == "polling"
        assert "inotify watch limit reached" in caplog.text and "polling" in caplog.text
        (tmp_path / "new").write_bytes(b"x")
        assert changes.get(timeout=5) == Change(CREATED, str(tmp_path / "new"))
    finally:
        w.stop()


def _source(tmp_path, monkeypatch, *lines):
    from sarra.config import load_config
    from sarra.flow.watching import WatchSource

    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    tree = tmp_path / "tree"
    tree.mkdir()
    conf = tmp_path / "w.conf"
    conf.write_text(f"post_broker memory://unit/\npost_base_dir {tree}\n"
                    f"post_base_url file:{tree}/\npath {tree}\n" + "".join(lines))
    cfg = load_config("watch", str(conf), [], {"accept_unmatch": True})
    src = WatchSource(cfg)
    src.connect()
    return src, tree


def _collect(src, until: int, timeout: float = 10.0) -> list:
    import time
    got, deadline = [], time.monotonic() + timeout
    while len(got) < until and time.monotonic() < deadline:
        msgs, _ = src.get(0.2)
        got += msgs
        src.ack([])
    return got


def test_reject_patterns_apply_to_the_announced_url(tmp_path, monkeypatch):
    src, tree = _source(tmp_path, monkeypatch, "reject .*\\.log$\n", "accept .*/keep/.*\n",
                        "accept_unmatch off\n")
    try:
        (tree / "keep").mkdir()
        for name in ("keep/a.dat", "keep/b.log", "other.dat"):
            (tree / name).write_bytes(b"x")
        (tree / "keep" / "z.dat").write_bytes(b"last")
        got = _collect(src, 2)
        got += _collect(src, 99, timeout=1.5)   # nothing else may come
        assert sorted(m.relpath for m in got) == ["keep/a.dat", "keep/z.dat"]
    finally:
        src.close()


def test_events_option_leaves_out_deletes(tmp_path, monkeypatch):
    src, tree = _source(tmp_path, monkeypatch, "events create|modify\n")
    try:
        (tree / "a").write_bytes(b"x")
        assert [m.relpath for m in _collect(src, 1)] == ["a"]
        (tree / "a").unlink()
        (tree / "b").write_bytes(b"y")
        got = _collect(src, 1) + _collect(src, 99, timeout=1.5)
        assert [(m.relpath, m.operation) for m in got] == [("b", "file")]
    finally:
        src.close()


def test_inflight_number_or_directory_adds_no_name_pattern():
    assert temp_globs(SimpleNamespace(temp_pattern=[], inflight="0")) == []
    assert temp_globs(SimpleNamespace(temp_pattern=[], inflight="tmp/")) == []


def test_files_in_the_inflight_directory_are_never_posted(tmp_path, monkeypatch):
    src, tree = _source(tmp_path, monkeypatch, "inflight tmp/\n")
    try:
        (tree / "tmp").mkdir()
        (tree / "tmp" / "a.dat").write_bytes(b"being written")
        os.rename(tree / "tmp" / "a.dat", tree / "a.dat")
        got = _collect(src, 1) + _collect(src, 99, timeout=1.5)
        assert [m.relpath for m in got] == ["a.dat"]
    finally:
        src.close()


def test_a_file_outside_post_base_dir_is_skipped_not_fatal(tmp_path, monkeypatch, caplog):
    src, tree = _source(tmp_path, monkeypatch, "accept .*\n")
    try:
        src.cfg.override("post_base_dir", str(tree / "sub"))   # the tree is not under it
        (tree / "sub").mkdir()
        (tree / "x.dat").write_bytes(b"x")
        (tree / "sub" / "y.dat").write_bytes(b"y")
        got = _collect(src, 1) + _collect(src, 99, timeout=1.5)
        assert [m.relpath for m in got] == ["y.dat"]
        assert "not under post_base_dir" in caplog.text
    finally:
        src.close()


def test_a_big_file_is_posted_in_blocks_each_with_its_own_sum(tmp_path, monkeypatch):
    import hashlib
    src, tree = _source(tmp_path, monkeypatch, "blocksize 1k\n")
    try:
        data = os.urandom(2500)
        (tree / "big").write_bytes(data)
        got = _collect(src, 3)
        assert [m.headers["parts"] for m in got] == ["i,1024,3,452,0", "i,1024,3,452,1",
                                                     "i,1024,3,452,2"]
        for m, (a, b) in zip(got, [(0, 1024), (1024, 2048), (2048, 2500)]):
            assert m.headers["sum"] == "s," + hashlib.sha512(data[a:b]).hexdigest()
        assert len({m.pubtime for m in got}) == 1 and len({m.headers["mtime"] for m in got}) == 1
    finally:
        src.close()
