"""The transfer contract: one set of tests run against every URL scheme.

Each test gets ``backend`` (parametrised: ``file`` on the local disk,
``http`` through a private nginx, ``https`` through one with TLS (a
certificate from a test CA, named by ``ca_file`` in credentials.conf),
``sftp`` through a private sshd, ``ftp``
and ``ftps`` through private vsftpd servers) serving
the same tree of files, and reads it through the scheme's transfer as the
subscriber does (``SCHEMES.get(scheme)(timeout=..., credentials=...)``,
``open(url, offset, length)``, ``read``/``close``). The assertions are the
same for every scheme.

The last tests are SFTP only, then FTP/FTPS only: uploads (dd_sender's
side), host keys and certificates, and the errors worth retrying or not.
"""
from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from sarra.config import Credentials
from sarra.errors import TransferError
from sarra.transfer import SCHEMES, scheme_of
from tests.helpers import free_port

BACKENDS = ["file", "http", "https", "sftp", "ftp", "ftps"]
NAMES = ["plain.bin", "with space/a b#c.bin", "unicodé/ü.bin", "empty.bin"]
SIZE = 300_000          # several prefetch requests, several copy buffers


class Backend:
    """A tree served by one scheme: ``url(rel)`` and a ``transfer``."""

    def __init__(self, kind: str, root: Path, base_url: str, credentials: Credentials,
                 known_hosts: Path):
        self.kind, self.root, self.base_url = kind, root, base_url
        cls = SCHEMES.get(kind)
        options = {"known_hosts": str(known_hosts)} if kind == "sftp" else {}
        self.transfer = cls(timeout=10, credentials=credentials, **options)

    def url(self, rel: str) -> str:
        return self.base_url + rel

    def read(self, rel: str, offset: int = 0, length: int | None = None,
             bufsize: int = 65536) -> bytes:
        stream = self.transfer.open(self.url(rel), offset, length)
        chunks = []
        try:
            while True:
                chunk = stream.read(bufsize)
                if not chunk:
                    break
                assert len(chunk) <= bufsize
                chunks.append(chunk)
        finally:
            stream.close()
        return b"".join(chunks)


@pytest.fixture
def tree(tmp_path) -> dict[str, bytes]:
    rng = random.Random(7)
    content = {}
    for i, rel in enumerate(NAMES):
        data = b"" if rel == "empty.bin" else rng.randbytes(SIZE + i)
        path = tmp_path / "served" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        content[rel] = data
    return content


@pytest.fixture
def https_site(nginx, test_ca):
    """Factory: ``https_site(root) -> (base URL, CA file)``, nginx serving
    ``root`` over TLS (and its index pages), its certificate from the
    session's test CA (tests/conftest.py)."""
    def start(root: Path) -> tuple[str, Path]:
        server = nginx(root, workers=1, extra="location / { autoindex on; }", https=True)
        return server.url, test_ca.ca_file
    return start


@pytest.fixture(params=BACKENDS)
def backend(request, tree, tmp_path) -> Backend:
    root = tmp_path / "served"
    kind = request.param
    creds = Credentials.from_text("")
    if kind == "file":
        base = f"file:{root}/"
    elif kind == "http":
        base = request.getfixturevalue("nginx")(root, workers=1).url
    elif kind == "https":
        base, ca = request.getfixturevalue("https_site")(root)
        creds = Credentials.from_text(f"{base} ca_file={ca}")
    elif kind == "sftp":
        sshd = request.getfixturevalue("sshd")
        creds = Credentials.from_text(sshd.credentials)
        base = f"{sshd.url}{root}/"
    else:       # the server is chrooted: the tree is copied into its root
        server = request.getfixturevalue("ftpd" if kind == "ftp" else "ftpsd")
        creds = Credentials.from_text(server.credentials)
        mine = server.root / tmp_path.name
        shutil.copytree(root, mine)
        root = mine
        base = f"{server.url}{tmp_path.name}/"
    b = Backend(kind, root, base, creds, tmp_path / "known_hosts")
    assert scheme_of(b.url("x")) == kind
    yield b
    b.transfer.close()


# -- the contract ------------------------------------------------------------

def test_reads_whole_files(backend, tree):
    for rel, data in tree.items():
        assert backend.read(rel) == data, rel
        assert backend.read(rel, 0, len(data)) == data, rel


def test_reads_byte_ranges(backend, tree):
    data = tree["with space/a b#c.bin"]
    for offset, length in ((0, 1), (1000, 70_000), (SIZE - 10, 10), (123_457, SIZE - 123_457)):
        got = backend.read("with space/a b#c.bin", offset, length, bufsize=8192)
        assert got == data[offset:offset + length], (offset, length)


def test_reads_from_an_offset_to_the_end(backend, tree):
    data = tree["plain.bin"]
    assert backend.read("plain.bin", 250_000) == data[250_000:]


def test_one_transfer_serves_many_files_in_turn(backend, tree):
    for _ in range(3):
        for rel, data in tree.items():
            assert backend.read(rel, 0, len(data)) == data


def test_a_missing_file_is_not_worth_retrying(backend):
    with pytest.raises(TransferError) as info:
        backend.read("no/such/file.bin", 0, 10)
    assert info.value.code == 499
    assert info.value.recoverable is False


# -- SFTP only ---------------------------------------------------------------

@pytest.fixture
def sftp(sshd, tmp_path):
    transfer = SCHEMES.get("sftp")(timeout=10, credentials=Credentials.from_text(sshd.credentials),
                                   known_hosts=str(tmp_path / "known_hosts"))
    yield transfer
    transfer.close()


def test_sftp_put_writes_an_inflight_name_then_renames_with_mode_and_times(sshd, sftp, tmp_path):
    src = tmp_path / "local.bin"
    data = os.urandom(200_000)
    src.write_bytes(data)
    remote = tmp_path / "remote"
    url = f"{sshd.url}{remote}/new/dirs/file#1 x.bin"
    seen = []

    def verify(sent: int) -> None:   # called before the rename: only the inflight name exists
        seen.append(sorted(p.name for p in (remote / "new" / "dirs").iterdir()))
        assert sent == len(data)

    sent = sftp.put(str(src), url, inflight=url + ".tmp", mode=0o640,
                    times=(1_500_000_000.0, 1_600_000_000.0), dir_mode=0o750, verify=verify)
    assert sent == len(data)
    assert seen == [["file#1 x.bin.tmp"]]
    final = remote / "new" / "dirs" / "file#1 x.bin"
    assert final.read_bytes() == data
    st = final.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and int(st.st_mtime) == 1_600_000_000
    assert stat.S_IMODE((remote / "new").stat().st_mode) == 0o750
    assert sorted(p.name for p in final.parent.iterdir()) == ["file#1 x.bin"]

    # again over the existing file (posix-rename replaces it), in place (no inflight)
    src.write_bytes(b"second")
    sftp.put(str(src), url, inflight=url + ".tmp")
    assert final.read_bytes() == b"second"
    src.write_bytes(b"third")
    sftp.put(str(src), url)
    assert final.read_bytes() == b"third"
    assert sorted(p.name for p in final.parent.iterdir()) == ["file#1 x.bin"]


def test_sftp_put_abandoned_by_verify_leaves_nothing(sshd, sftp, tmp_path):
    src = tmp_path / "local.bin"
    src.write_bytes(b"x" * 1000)
    url = f"{sshd.url}{tmp_path}/remote/f.bin"

    def refuse(_sent: int) -> None:
        raise TransferError("checksum mismatch", recoverable=False)

    with pytest.raises(TransferError, match="checksum mismatch"):
        sftp.put(str(src), url, inflight=url + ".tmp", verify=refuse)
    assert list((tmp_path / "remote").iterdir()) == []
    with pytest.raises(TransferError) as info:   # a local file that is not there
        sftp.put(str(tmp_path / "gone.bin"), url)
    assert info.value.recoverable is False


def test_sftp_remote_operations(sshd, sftp, tmp_path):
    remote = tmp_path / "remote"
    base = f"{sshd.url}{remote}"
    assert sftp.mkdir(f"{base}/a/b") is True
    assert sftp.mkdir(f"{base}/a/b") is False
    (remote / "a" / "f").write_bytes(b"1")
    assert sftp.rename(f"{base}/a/f", f"{base}/c/g") is True
    assert (remote / "c" / "g").read_bytes() == b"1"
    assert sftp.rename(f"{base}/a/f", f"{base}/c/g") is False
    sftp.symlink(f"{base}/c/link", "g")
    sftp.symlink(f"{base}/c/link", "../a")      # replaces the link
    assert os.readlink(remote / "c" / "link") == "../a"
    assert sftp.remove(f"{base}/c/g") is True
    assert sftp.remove(f"{base}/c/g") is False
    assert sftp.rmdir(f"{base}/a/b") is True
    assert sftp.rmdir(f"{base}/a/b") is False


def test_sftp_host_key_remembered_on_first_contact_and_checked_after(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    creds = Credentials.from_text(sshd.credentials)
    (tmp_path / "f").write_bytes(b"abc")
    url = f"{sshd.url}{tmp_path}/f"
    first = SCHEMES.get("sftp")(timeout=10, credentials=creds, known_hosts=str(known))
    assert first.open(url).read(10) == b"abc"
    first.close()
    lines = known.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")

    # another key for the same host: refused, not worth retrying
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True, capture_output=True)
    fake = (f"[127.0.0.1]:{sshd.port} " + " ".join(
        (tmp_path / "other_key.pub").read_text().split()[:2]) + "\n")
    known.write_text(fake)
    second = SCHEMES.get("sftp")(timeout=10, credentials=creds, known_hosts=str(known))
    with pytest.raises(TransferError, match="host key changed") as info:
        second.open(url)
    assert info.value.recoverable is False and info.value.code == 499
    second.close()


def test_sftp_host_keys_go_where_the_caller_says(sshd, tmp_path, monkeypatch, caplog):
    """The flows' transfers (SCHEMES, PUSHERS) remember host keys in the
    state directory unless told otherwise; the transfer itself, given no
    file, remembers them for its own life and writes nothing."""
    import logging

    from sarra.transfer import PUSHERS
    from sarra.transfer.sftp import SftpTransfer
    state = tmp_path / "state"
    monkeypatch.setenv("SARRA_STATE_DIR", str(state))
    creds = Credentials.from_text(sshd.credentials)
    (tmp_path / "f").write_bytes(b"abc")
    url = f"{sshd.url}{tmp_path}/f"
    for registry in (SCHEMES, PUSHERS):
        (state / "known_hosts").unlink(missing_ok=True)
        t = registry.get("sftp")(timeout=10, credentials=creds)
        assert t.open(url).read(10) == b"abc"
        t.close()
        assert (state / "known_hosts").read_text().startswith(f"[127.0.0.1]:{sshd.port} ")
    (state / "known_hosts").unlink()

    caplog.set_level(logging.INFO, logger="sarra.transfer.sftp")
    caplog.clear()                       # (the registries' first contacts, if logged)
    alone = SftpTransfer(timeout=10, credentials=creds)
    assert alone.open(url).read(10) == b"abc"
    alone.close()                        # the connection goes; the key it met stays
    assert alone.open(url).read(10) == b"abc"
    alone.close()
    firsts = [r.getMessage() for r in caplog.records if "first contact" in r.getMessage()]
    assert len(firsts) == 1 and "remembered until the end of this run only" in firsts[0]
    assert not state.exists() or not any(state.iterdir()), "a file written without being asked"
    again = SftpTransfer(timeout=10, credentials=creds)     # another run: first contact again
    assert again.open(url).read(10) == b"abc"
    again.close()
    assert len([r for r in caplog.records if "first contact" in r.getMessage()]) == 2


def test_sftp_errors_say_whether_to_retry(sshd, tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    other = tmp_path / "not_authorized"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True, capture_output=True)
    kh = str(tmp_path / "known_hosts")

    def transfer(cred_line: str):
        return SCHEMES.get("sftp")(timeout=5, credentials=Credentials.from_text(cred_line),
                                   known_hosts=kh)

    refused = transfer(f"{sshd.url}/ ssh_keyfile={other}")
    with pytest.raises(TransferError, match="authentication failed") as info:
        refused.open(f"{sshd.url}{tmp_path}/f")
    assert info.value.recoverable is False and info.value.code == 499

    port = free_port()
    nobody = transfer(f"sftp://{sshd.user}@127.0.0.1:{port}/ ssh_keyfile={sshd.keyfile}")
    with pytest.raises(TransferError) as info:
        nobody.open(f"sftp://{sshd.user}@127.0.0.1:{port}{tmp_path}/f")
    assert info.value.recoverable is True

    good = transfer(sshd.credentials)
    stream = good.open(f"{sshd.url}{tmp_path}/f")
    stream.close()
    # the pooled connection dies: the next open connects again
    for conn in list(good._pool.values()):
        conn.client.get_transport().close()
    assert good.open(f"{sshd.url}{tmp_path}/f").read(10) == b"abc"
    good.close()


# -- FTP and FTPS only ----------------------------------------------------------

@pytest.fixture(params=["ftp", "ftps"])
def ftp_server(request):
    return request.getfixturevalue("ftpd" if request.param == "ftp" else "ftpsd")


def test_ftp_put_writes_an_inflight_name_then_renames(ftp_server, tmp_path, caplog):
    """dd_sender's side: the temporary name, the rename over an existing file,
    directories made; the mode by SITE CHMOD is refused by this server (vsftpd,
    anonymous), which is said once and is no error; the time is set (MDTM)."""
    import logging
    ftp = SCHEMES.get(ftp_server.scheme)(timeout=10,
                                         credentials=Credentials.from_text(ftp_server.credentials))
    mine = ftp_server.writable(ftp_server.root / f"put-{tmp_path.name}")
    src = tmp_path / "local.bin"
    data = os.urandom(200_000)
    src.write_bytes(data)
    url = f"{ftp_server.url}{mine.name}/new/dirs/file#1 x é.bin"
    seen = []

    def verify(sent: int) -> None:
        seen.append(sorted(p.name for p in (mine / "new" / "dirs").iterdir()))
        assert sent == len(data)

    caplog.set_level(logging.WARNING, logger="sarra.transfer.ftp")
    for _ in range(2):      # the second time over the file already there
        assert ftp.put(str(src), url, inflight=url + ".tmp", mode=0o640,
                       times=(1_500_000_000.0, 1_600_000_000.0), verify=verify) == len(data)
    assert seen == [["file#1 x é.bin.tmp"], ["file#1 x é.bin", "file#1 x é.bin.tmp"]]
    final = mine / "new" / "dirs" / "file#1 x é.bin"
    assert final.read_bytes() == data and int(final.stat().st_mtime) == 1_600_000_000
    assert sorted(p.name for p in final.parent.iterdir()) == ["file#1 x é.bin"]
    refusals = [r.getMessage() for r in caplog.records if "SITE CHMOD" in r.getMessage()]
    assert len(refusals) == 1 and "refuses SITE CHMOD" in refusals[0]

    def refuse(_sent: int) -> None:
        raise TransferError("checksum mismatch", recoverable=False)
    with pytest.raises(TransferError, match="checksum mismatch"):
        ftp.put(str(src), f"{ftp_server.url}{mine.name}/g.bin",
                inflight=f"{ftp_server.url}{mine.name}/g.bin.tmp", verify=refuse)
    assert not (mine / "g.bin").exists() and not (mine / "g.bin.tmp").exists()

    base = f"{ftp_server.url}{mine.name}"
    assert ftp.mkdir(f"{base}/a/b") is True and ftp.mkdir(f"{base}/a/b") is False
    assert ftp.rename(f"{base}/new/dirs/file#1 x é.bin", f"{base}/c/g") is True
    assert (mine / "c" / "g").read_bytes() == data
    assert ftp.rename(f"{base}/new/dirs/file#1 x é.bin", f"{base}/c/g") is False
    assert ftp.remove(f"{base}/c/g") is True and ftp.remove(f"{base}/c/g") is False
    assert ftp.rmdir(f"{base}/a/b") is True and ftp.rmdir(f"{base}/a/b") is False
    with pytest.raises(TransferError, match="no symbolic links"):
        ftp.symlink(f"{base}/l", "c")
    with pytest.raises(TransferError, match="line break") as info:
        ftp.open(f"{base}/x\r\nDELE c")
    assert info.value.recoverable is False

    class Cut:                   # a put cut off mid-way (too slow, say)
        def consume(self, _n):
            raise TransferError("cut off")
    with pytest.raises(TransferError, match="cut off"):
        ftp.put(str(src), f"{base}/cut.bin", inflight=f"{base}/cut.bin.tmp", throttle=Cut())
    assert not (mine / "cut.bin").exists()
    assert ftp.put(str(src), f"{base}/after.bin") == len(data)   # a fresh connection
    assert (mine / "after.bin").read_bytes() == data
    ftp.close()


def test_ftp_errors_say_whether_to_retry(ftp_server, tmp_path):
    (ftp_server.root / f"e-{tmp_path.name}").write_bytes(b"abc")
    url = f"{ftp_server.url}e-{tmp_path.name}"
    wrong = ftp_server.credentials.replace(ftp_server.password, "not-the-password")
    refused = SCHEMES.get(ftp_server.scheme)(timeout=5, credentials=Credentials.from_text(wrong))
    with pytest.raises(TransferError, match="login refused") as info:
        refused.open(url)
    assert info.value.recoverable is False and ftp_server.password not in str(info.value)

    nobody = SCHEMES.get(ftp_server.scheme)(timeout=5, credentials=Credentials.from_text(""))
    with pytest.raises(TransferError) as info:
        nobody.open(f"{ftp_server.scheme}://anonymous@127.0.0.1:{free_port()}/f")
    assert info.value.recoverable is True

    good = SCHEMES.get(ftp_server.scheme)(timeout=5,
                                          credentials=Credentials.from_text(ftp_server.credentials))
    assert good.open(url).read(10) == b"abc"
    for conns in good._pool.values():       # the pooled connection dies: connect again
        for conn in conns:
            conn.ftp.sock.close()
    stream = good.open(url)
    assert stream.read(10) == b"abc"
    stream.close()
    good.close()


def test_ftp_listing_then_downloads_on_the_same_connection(ftp_server, tmp_path):
    """dd_poll's listing (in ASCII mode) leaves the pooled connection in
    binary mode: a file of line ends comes byte for byte (the server
    converts them in ASCII mode)."""
    mine = ftp_server.root / f"l-{tmp_path.name}"
    mine.mkdir()
    data = b"one\ntwo\r\nthree\n" * 1000
    (mine / "lines.txt").write_bytes(data)
    ftp = SCHEMES.get(ftp_server.scheme)(timeout=10,
                                         credentials=Credentials.from_text(ftp_server.credentials))
    lines: list[str] = []
    assert ftp.listing(f"{ftp_server.url}{mine.name}/", lines.append) == "list"
    assert len(lines) == 1 and lines[0].endswith(" lines.txt")
    stream = ftp.open(f"{ftp_server.url}{mine.name}/lines.txt")
    got = b""
    while chunk := stream.read(65536):
        got += chunk
    stream.close()
    assert got == data and len(ftp._pool) == 1
    ftp.close()


def test_ftps_verifies_the_certificate(ftpsd, tmp_path):
    """Without the test CA (ca_file), the server's certificate is refused,
    not worth retrying; plain FTP to the FTPS-only server is refused too."""
    (ftpsd.root / f"c-{tmp_path.name}").write_bytes(b"abc")
    no_ca = ftpsd.credentials.split(" ca_file=")[0]
    t = SCHEMES.get("ftps")(timeout=5, credentials=Credentials.from_text(no_ca))
    with pytest.raises(TransferError, match="certificate does not verify") as info:
        t.open(f"{ftpsd.url}c-{tmp_path.name}")
    assert info.value.recoverable is False
    plain = SCHEMES.get("ftp")(timeout=5, credentials=Credentials.from_text(
        no_ca.replace("ftps://", "ftp://")))
    with pytest.raises(TransferError, match="login refused"):
        plain.open(f"ftp://anonymous@127.0.0.1:{ftpsd.port}/c-{tmp_path.name}")


# -- HTTPS only -----------------------------------------------------------------

def test_https_index_pages_are_listed_and_the_certificate_verified(https_site, tmp_path):
    """dd_poll's HTTP listing over TLS: with the test CA (ca_file) the entries
    of the index page; without it, a certificate refused, not worth retrying."""
    from sarra.poll import LISTERS, Entry
    root = tmp_path / "site"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "a b#1.txt").write_bytes(b"12345")
    base, ca = https_site(root)
    lister = LISTERS.get("https")(timeout=5, credentials=Credentials.from_text(
        f"{base} ca_file={ca}"))
    found = {e.name: e for e in lister.entries(base + "d/")}
    assert set(found) == {"a b#1.txt", "sub"}
    assert found["a b#1.txt"][:2] == ("a b#1.txt", 5) and found["sub"].is_dir
    assert isinstance(found["sub"], Entry)
    lister.close()
    bare = LISTERS.get("https")(timeout=5, credentials=Credentials.from_text(""))
    with pytest.raises(TransferError, match="certificate does not verify") as info:
        list(bare.entries(base + "d/"))
    assert info.value.recoverable is False
    bare.close()


def test_http_downloads_keep_one_connection_and_recover_a_dropped_one(nginx, tree, tmp_path):
    """Plain-http GETs go on one kept connection (sarra/transfer/httpconn.py);
    a body left unread drops it (the next answer is never the rest of the
    last one); a connection the server closed meanwhile is opened anew for
    the same request; a redirection is followed (requests)."""
    root = tmp_path / "kept"
    for rel, data in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    web = nginx(root, workers=1, extra="location = /moved { return 302 /plain.bin; }")
    t = SCHEMES.get("http")(timeout=10, credentials=None)
    site = Backend.__new__(Backend)
    site.kind, site.root, site.base_url, site.transfer = "http", root, web.url, t

    def local_port():
        (conn,) = t._kept._conns.values()
        return conn.sock.getsockname()[1]
    assert site.read("plain.bin") == tree["plain.bin"]
    first = local_port()
    assert site.read("with space/a b#c.bin") == tree["with space/a b#c.bin"]
    assert site.read("plain.bin", 1000, 5000) == tree["plain.bin"][1000:6000]
    assert local_port() == first                          # one TCP connection
    half = t.open(web.url + "plain.bin")
    assert half.read(100) == tree["plain.bin"][:100]
    half.close()                                          # the rest unread: dropped
    assert not t._kept._conns
    assert site.read("unicodé/ü.bin") == tree["unicodé/ü.bin"]
    web.stop()
    web.start_again()                                     # the kept connection is dead
    assert site.read("plain.bin") == tree["plain.bin"]
    assert site.read("moved") == tree["plain.bin"]
    t.close()
