"""sarra.checksum: known digests, streaming vs one-shot, verify_method."""
import hashlib
import os
import re

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from sarra import checksum
from sarra.errors import ChecksumError

ONE_SHOT = {"d": hashlib.md5, "s": hashlib.sha512,
            "x": lambda data=b"": xxhash.xxh3_128(data)}


def one_shot(method: str, data: bytes) -> str:
    return f"{method},{ONE_SHOT[method](data).hexdigest()}"


@pytest.fixture()
def data_file(tmp_path):
    data = os.urandom(300_001)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return str(path), data


def test_protocol_derived_vector_md5_name():
    # doc/protocol.md §13.6: md5("foo") -> sum n,... for a file named foo
    assert checksum.sum_name("n", "foo") == "n,acbd18db4cc2f85cedef654fccc4a4d8"
    assert checksum.sum_name("n", "some/dir/foo") == "n,acbd18db4cc2f85cedef654fccc4a4d8"


def test_sum_file_n_uses_basename(tmp_path):
    path = tmp_path / "foo"
    path.write_bytes(b"content is ignored")
    assert checksum.sum_file(str(path), "n") == "n,acbd18db4cc2f85cedef654fccc4a4d8"


def test_known_content_digests(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"foo")
    assert checksum.sum_file(str(path), "d") == "d,acbd18db4cc2f85cedef654fccc4a4d8"
    assert checksum.sum_file(str(path), "s") == "s," + hashlib.sha512(b"foo").hexdigest()
    assert checksum.sum_file(str(path), "x") == "x," + xxhash.xxh3_128_hexdigest(b"foo")


def test_name_sums_match_captured_sr3_vectors():
    # v02_directory.json / v02_delete.json: sha512 of the basename
    assert checksum.sum_name("m", "d01").startswith("m,624f4513d7e94d6d9b86")
    assert checksum.sum_name("R", "lat0003.dat").startswith("R,569cdf876c757e996662")
    assert checksum.sum_name("R", "/srv/demo/watchsrc/lat0003.dat") == \
        checksum.sum_name("R", "lat0003.dat")
    assert checksum.sum_name("r", "d01/") == "r" + checksum.sum_name("m", "d01")[1:]
    # L hashes the whole target string, not its basename
    assert checksum.sum_name("L", "../a/b") == "L," + hashlib.sha512(b"../a/b").hexdigest()


def test_sum_file_link(tmp_path):
    link = tmp_path / "lnk"
    os.symlink("target/file.dat", link)
    assert checksum.sum_file(str(link), "L") == checksum.sum_name("L", "target/file.dat")


def test_random_method(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    for _ in range(20):
        assert re.fullmatch(r"0,\d{4}", checksum.sum_file(str(path), "0"))


@pytest.mark.parametrize("method", ["d", "s", "x"])
@pytest.mark.parametrize("offset,length", [
    (0, None), (0, 0), (0, 1), (1, None), (7, 100_000), (65_536, 65_536),
    (299_999, None), (299_999, 10), (300_001, None), (400_000, 5),
])
def test_streaming_equals_one_shot(data_file, method, offset, length):
    path, data = data_file
    end = None if length is None else offset + length
    expected = one_shot(method, data[offset:end])
    for bufsize in (1, 4096, 65_537, 1 << 20):
        if bufsize == 1 and (length is None or length > 4096):
            continue  # byte-at-a-time is slow; small ranges are enough
        got = checksum.sum_file(path, method, offset, length, bufsize=bufsize)
        assert got == expected, (bufsize, offset, length)


@settings(max_examples=40, deadline=None, database=None)
@given(data=st.binary(max_size=5000), chunks=st.lists(st.integers(0, 700), max_size=12))
def test_summer_incremental(data, chunks):
    for method in ("d", "s", "x"):
        summer = checksum.new(method)
        pos = 0
        for size in chunks:
            summer.update(memoryview(data)[pos:pos + size])
            pos += size
        summer.update(data[pos:])
        assert summer.method == method
        assert summer.header == one_shot(method, data)
        assert summer.hexdigest() == summer.header.split(",", 1)[1]


def test_x_is_xxh3_128_lower_hex():
    summer = checksum.new("x")
    summer.update(b"hello world")
    assert summer.hexdigest() == xxhash.xxh3_128(b"hello world").hexdigest()
    assert summer.hexdigest() == summer.hexdigest().lower()
    assert len(summer.hexdigest()) == 32


@pytest.mark.parametrize("method", ["n", "0", "a", "z", "R", "L", "m", "r", "q", "", "ds"])
def test_new_refuses_non_content_methods(method):
    with pytest.raises(ChecksumError):
        checksum.new(method)


@pytest.mark.parametrize("method", ["a", "z", "q", "sha1"])
def test_sum_file_refuses_uncomputable(tmp_path, method):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ChecksumError):
        checksum.sum_file(str(path), method)


def test_sum_name_refuses_content_letters():
    for method in ("d", "s", "x", "0", "a", "z", "?"):
        with pytest.raises(ChecksumError):
            checksum.sum_name(method, "foo")


def test_known():
    for method in "dsxn0azRLmr":
        assert checksum.known(method)
    for method in ("q", "", "sha512", "D"):
        assert not checksum.known(method)
    assert checksum.CONTENT_METHODS == frozenset(
        ("d", "s", "x", "sha256", "sha384", "sha3-256", "sha3-384", "sha3-512"))


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        checksum.sum_file(str(tmp_path / "nope"), "s")


@pytest.mark.parametrize("header,expected", [
    ("s,abcdef", "s"), ("d,0123", "d"), ("x,00ff", "x"),
    ("z,s", "s"), ("z,d", "d"), ("z,x", "x"), ("z,q", None), ("z,", None),
    ("n,acbd18db4cc2f85cedef654fccc4a4d8", None), ("0,1234", None),
    ("a,whatever", None), ("R,abc", None), ("L,abc", None), ("m,abc", None),
    ("r,abc", None), ("q,abc", None), ("sha1,abc", None), ("sha256,abc", "sha256"), ("s", None), ("", None),
])
def test_verify_method(header, expected):
    assert checksum.verify_method(header) == expected
