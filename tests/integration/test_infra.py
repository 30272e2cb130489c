"""The test infrastructure itself: servers answer, helpers tell trees apart."""
from __future__ import annotations

import os
import socket

import requests

from tests.helpers import compare_trees, make_tree, run_tool, wait_for


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxies from the environment
    return s


def test_nginx_serves_file_and_honours_range(nginx, tmp_path):
    root = tmp_path / "www"
    (root / "sub dir").mkdir(parents=True)
    data = os.urandom(1 << 20)
    (root / "sub dir" / "big.bin").write_bytes(data)
    server = nginx(root)
    assert server.url == f"http://127.0.0.1:{server.port}/"

    with _session() as s:
        whole = s.get(server.url + "sub%20dir/big.bin", timeout=10)
        assert whole.status_code == 200
        assert whole.content == data
        assert whole.headers.get("Accept-Ranges") == "bytes"

        part = s.get(server.url + "sub%20dir/big.bin", headers={"Range": "bytes=100-199"}, timeout=10)
        assert part.status_code == 206
        assert part.content == data[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"

        missing = s.get(server.url + "nope.bin", timeout=10)
        assert missing.status_code == 404
        listing = s.get(server.url, timeout=10)
        assert listing.status_code in (403, 404)  # autoindex off

    entries = wait_for(lambda: len(server.requests()) >= 4 and server.requests(), timeout=5,
                       what="4 access log entries")
    assert [(e["method"], e["path"], e["status"]) for e in entries[:2]] == [
        ("GET", "/sub%20dir/big.bin", 200), ("GET", "/sub%20dir/big.bin", 206)]
    assert entries[0]["bytes"] == len(data)
    assert entries[1]["bytes"] == 100 and entries[1]["range"] == "bytes=100-199"
    assert "big.bin" in server.access_log.read_text()


def test_two_nginx_instances_are_independent(nginx, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"A")
    (tmp_path / "b" / "f").write_bytes(b"B")
    sa, sb = nginx(tmp_path / "a", workers=1), nginx(tmp_path / "b")
    assert sa.port != sb.port
    with _session() as s:
        assert s.get(sa.url + "f", timeout=10).content == b"A"
        assert s.get(sb.url + "f", timeout=10).content == b"B"


def test_amqp_port_answers(amqp_url):
    assert amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    with socket.create_connection(("127.0.0.1", 5672), timeout=5) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        frame = sock.recv(7)
    assert frame[:1] == b"\x01"  # a METHOD frame: connection.start


def test_sarra_home(sarra_home, unique):
    import os as _os
    assert _os.environ["SARRA_CONFIG_DIR"] == str(sarra_home.config_dir)
    assert _os.environ["SARRA_STATE_DIR"] == str(sarra_home.state_dir)
    assert sarra_home.credentials.read_text().strip() == "amqp://guest:guest@127.0.0.1:5672/"
    assert (sarra_home.credentials.stat().st_mode & 0o777) == 0o600
    path = sarra_home.write_config("subscribe", f"t_{unique}", "broker amqp://guest@127.0.0.1/\n")
    assert path == sarra_home.config_dir / "subscribe" / f"t_{unique}.conf"
    assert path.read_text() == "broker amqp://guest@127.0.0.1/\n"
    assert len(unique) == 8 and int(unique, 16) >= 0


def test_make_tree_is_deterministic_and_has_odd_names(tmp_path):
    rels = make_tree(tmp_path / "a", 20, depth=3, size=1000, seed=7)
    again = make_tree(tmp_path / "b", 20, depth=3, size=1000, seed=7)
    assert rels == again and len(rels) == 20 and len(set(rels)) == 20
    assert any(" " in r for r in rels) and any("#" in r for r in rels)
    assert any(not r.isascii() for r in rels)
    assert all((tmp_path / "a" / r).stat().st_size == 1000 for r in rels)
    assert compare_trees(tmp_path / "a", tmp_path / "b") == []
    other = make_tree(tmp_path / "c", 20, depth=3, size=1000, seed=8)
    assert compare_trees(tmp_path / "a", tmp_path / "c") != []
    assert other != rels


def test_compare_trees_detects_one_byte_and_missing_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    rels = make_tree(a, 10, seed=1)
    make_tree(b, 10, seed=1)
    assert compare_trees(a, b) == []

    target = b / rels[-1]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    assert compare_trees(a, b) == [f"content differs: {rels[-1]} (4096 != 4096 bytes)"]

    (b / rels[0]).unlink()
    diffs = compare_trees(a, b)
    assert f"only in a: {rels[0]}" in diffs and len(diffs) == 2

    (b / "extra dir").mkdir()
    assert "only in b: extra dir" in compare_trees(a, b)
    assert compare_trees(a, tmp_path / "absent") == [f"only in a: {r}" for r in
                                                      sorted(compare_trees_names(a))]


def compare_trees_names(root):
    return [p.relative_to(root).as_posix() for p in root.rglob("*")]


def test_run_tool_reports_output_on_failure(sarra_home):
    import pytest
    res = run_tool("no-such-tool-xyz", check=False, timeout=60)
    assert res.returncode != 0
    with pytest.raises(AssertionError, match="command exited"):
        run_tool("no-such-tool-xyz", timeout=60)
