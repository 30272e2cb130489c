"""sr3's options that act, against the real RabbitMQ (127.0.0.1:5672):
``delete`` removes each source once its download is verified (not one whose
bytes do not match the announced sum); ``post_exchange_split`` puts each post
on one of exchange00..exchangeNN, the same one for the same content."""
from __future__ import annotations

import hashlib
import time

from sarra.flow.publish import split_index
from tests.helpers import wait_for
from tests.integration.flowkit import (assert_logs_clean, dd_post, declare, files_under,
                                       publish_raw, qname, stop, sub_config, taps)

__all__ = ["taps"]


def test_delete_removes_each_source_once_its_download_is_verified(sarra_home, unique, procs,
                                                                  taps, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    for rel in ("a.txt", "sub/b.bin"):
        (src / rel).write_bytes(rel.encode() * 500)
    (src / "bad.txt").write_text("these bytes are not the ones announced\n")
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"del_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra="delete on\nattempts 1\nretry_max 1\n")
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    res = dd_post(ex, f"file:{src}/", src, src / "a.txt", src / "sub")
    assert "posted 2 of 2 files" in res.stdout, res.stdout + res.stderr
    wrong = hashlib.sha512(b"something else").hexdigest()
    publish_raw(ex, "v02.post.bad.txt", f"20261203120000.000 file:{src}/ bad.txt",
                {"sum": f"s,{wrong}", "parts": "1,39,1,0,0", "source": "guest"})
    got = reports.wait(lambda ms: len({m.relpath for m in ms}) >= 3, 40, "3 log messages")
    text = {m.relpath: (m.report.code, m.report.message) for m in got}
    assert text["a.txt"] == (201, "Downloaded; source deleted"), text
    assert text["sub/b.bin"] == (201, "Downloaded; source deleted"), text
    assert text["bad.txt"][0] != 201, text
    assert (dst / "a.txt").read_bytes() == b"a.txt" * 500
    assert (dst / "sub/b.bin").read_bytes() == b"sub/b.bin" * 500
    assert not (src / "a.txt").exists() and not (src / "sub/b.bin").exists()
    assert (src / "bad.txt").exists(), "a source whose bytes do not match is kept"
    assert sorted(files_under(dst)) == ["a.txt", "sub/b.bin"]
    log_text = stop(proc)
    assert f"a.txt: deleted at the source file:{src}/a.txt" in log_text
    assert_logs_clean(proc.log)


def test_post_exchange_split_spreads_posts_by_checksum(sarra_home, unique, taps, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(12):
        (src / f"f{n:02d}.txt").write_text(f"content {n}\n" * (n + 1))
    (src / "twin.txt").write_text("content 3\n" * 4)       # f03's content, another name
    base = f"xt_{unique}_"
    seen = [taps(f"{base}{i:02d}", "v02.post.#") for i in range(3)]
    res = dd_post(base, f"file:{src}/", src, src, extra=("--post_exchange_split", "3"))
    assert res.returncode == 0 and "posted 13 of 13 files" in res.stdout, res.stderr
    assert f"to {base}00,{base}01,{base}02" in res.stdout
    wait_for(lambda: sum(len(t.poll()) for t in seen) >= 13, timeout=20)
    where = {m.relpath: i for i, t in enumerate(seen) for m in t.settle(0.5)}
    assert len(where) == 13 and sum(len(t.messages) for t in seen) == 13   # each once
    for i, t in enumerate(seen):
        for m in t.messages:
            assert split_index(m, 3) == i
    assert where["twin.txt"] == where["f03.txt"]            # same content, same exchange
    assert len(set(where.values())) == 3, where              # all three used


def test_foreground_on_a_terminal_shows_a_progress_line(sarra_home, unique, taps, tmp_path):
    """dd_subscribe foreground with its standard error on a terminal (a pty):
    a line redrawn in place after each batch, cleared before each log line;
    the per-file log line (log_events' default, after_work) is whole."""
    import os
    import pty
    import select
    import signal
    import subprocess

    from tests.helpers import tool_command, tool_env
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for n in range(3):
        (src / f"p{n}.txt").write_text(f"progress {n}\n" * 100)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"tty_{unique}"
    sub_config(sarra_home, name, ex, dst, xr)
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    master, slave = pty.openpty()
    proc = subprocess.Popen(tool_command("subscribe", "foreground", name), env=tool_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    seen = b""

    def read(until: bytes, timeout: float) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while until not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    return
    try:
        read(b"bound to", 30)
        dd_post(ex, f"file:{src}/", src, src)
        read(b"3 files (", 30)
        proc.send_signal(signal.SIGTERM)
        read(b"summary:", 20)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "\r3 files (0.0 MB) in " in text and "\x1b[K" in text, text[-2000:]
    lines = text.replace("\r\n", "\n").split("\n")
    filed = [ln for ln in lines if "on_file: p" in ln]
    assert len(filed) == 3, text[-2000:]
    assert all(ln.startswith(("\r\x1b[K20", "20")) for ln in filed), filed   # whole lines
