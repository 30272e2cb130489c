"""Reassembly from blocks, without a broker: versions, redeliveries, records,
links (the flow around it is in tests/integration/test_parts.py)."""
import os
import time

import pytest

from sarra.components import PRESETS
from sarra.config import load_config
from sarra.errors import TransferError, UnsafePathError
from sarra.flow.announce import file_messages
from sarra.flow.filter import Placement
from sarra.flow.work import Downloader, Target

BSZ = 8


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    """The record of inflight files (flow/inflight.py) goes to a private state dir."""
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))


def setup(tmp_path, *extra):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(exist_ok=True)
    cfg = load_config("subscribe", None, [("directory", str(dst)), ("mirror", "on"), *extra],
                      PRESETS["subscribe"])
    post = load_config("post", None, [("post_base_url", f"file:{src}/"),
                                      ("post_base_dir", str(src)), ("blocksize", str(BSZ))])
    return src, dst, Downloader(cfg), post


def version(src, post, data: bytes, mtime: float):
    path = src / "f.bin"
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return file_messages(post, str(path))


def apply(worker, msg):
    return worker.apply(msg, worker.target(msg, Placement(worker.cfg.directory, True)))


def test_a_new_version_of_the_same_size_replaces_the_old_one(tmp_path):
    src, dst, worker, post = setup(tmp_path)
    for m in version(src, post, b"A" * 8 + b"B" * 8, time.time() - 100):
        apply(worker, m)
    v2 = version(src, post, b"A" * 8 + b"C" * 8, time.time() - 50)
    codes = [apply(worker, m)[0] for m in v2]
    assert codes == [201, 201]           # block 0 is the same bytes, of another version
    assert (dst / "f.bin").read_bytes() == b"A" * 8 + b"C" * 8


def test_a_late_block_of_an_older_version_is_dropped(tmp_path):
    src, dst, worker, post = setup(tmp_path)
    v1 = version(src, post, b"1" * 16, time.time() - 100)
    v2 = version(src, post, b"2" * 16, time.time() - 50)
    (src / "f.bin").write_bytes(b"2" * 16)
    assert apply(worker, v2[0])[0] == 201
    with pytest.raises(TransferError) as err:
        apply(worker, v1[1])              # served from the current file: v2 bytes
    assert err.value.code == 409
    assert apply(worker, v2[1])[0] == 201
    assert (dst / "f.bin").read_bytes() == b"2" * 16


def test_a_redelivered_block_of_a_complete_file_announces_it_again(tmp_path):
    src, dst, worker, post = setup(tmp_path)
    blocks = version(src, post, os.urandom(16), time.time() - 10)
    for m in blocks:
        apply(worker, m)
    again = blocks[1]
    again.redelivered = True
    done = apply(worker, again)
    assert done.code == 304 and done.completed
    blocks[0].redelivered = False
    assert not apply(worker, blocks[0]).completed      # not given again: already announced


def test_the_record_of_blocks_is_not_a_stale_file(tmp_path):
    src, dst, worker, post = setup(tmp_path, ("inflight", "."))
    blocks = version(src, post, os.urandom(16), time.time() - 10)
    apply(worker, blocks[0])
    record = dst / ".f.bin.blocks"
    assert record.exists()
    os.utime(record, (1, 1))
    os.utime(dst / ".f.bin", (1, 1))
    worker.clean_stale(1.0)
    assert record.exists() and (dst / ".f.bin").exists()
    apply(worker, blocks[1])
    assert (dst / "f.bin").read_bytes() == (src / "f.bin").read_bytes()


def test_a_chain_of_links_cannot_lead_outside(tmp_path):
    src, dst, worker, post = setup(tmp_path)
    from sarra.message import Message
    from sarra.checksum import sum_name

    def link(rel, target):
        m = Message("20261125120000.000", f"file:{src}/", rel,
                    {"sum": sum_name("L", target), "link": target})
        return worker.apply(m, Target(str(dst), str(dst / rel)))

    (dst / "a").mkdir(parents=True)
    assert link("a/up", "..")[0] == 201          # a/up -> dst itself: inside
    with pytest.raises(UnsafePathError):
        link("x", "a/up/../..")                  # through a/up: above dst
