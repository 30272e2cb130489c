"""FTP and FTPS end to end: dd_sender pushing a posted tree to the private
vsftpd servers (plain and TLS) at once, and a subscriber downloading a file
announced in blocks from the FTP server (REST for each block).

Real RabbitMQ, the ``ftpd``/``ftpsd`` fixtures (tools/localftp.py); the
tools run as subprocesses.
"""
from __future__ import annotations

import os
import re

from tests.helpers import make_tree, run_tool
from tests.integration.flowkit import (BROKER, assert_logs_clean, declare, dd_post, qname, stop,
                                       sub_config, taps, tmp_files, wait_same_tree)

__all__ = ["taps"]


def test_sender_pushes_to_ftp_and_ftps_and_a_subscriber_downloads_blocks_from_ftp(
        sarra_home, unique, procs, taps, ftpd, ftpsd, tmp_path):
    src = tmp_path / "src"
    rels = make_tree(src, 12, depth=2, size=30_000, seed=41)
    (src / "a b #1.bin").write_bytes(os.urandom(5000))
    sarra_home.add_credentials(ftpd.credentials, ftpsd.credentials)
    ex, xr = f"xf_{unique}", f"xfr_{unique}"
    reports = taps(xr)
    remotes, senders = {}, []
    for server in (ftpd, ftpsd):
        remote = server.writable(server.root / f"in-{unique}")
        remotes[server.scheme] = remote
        name = f"fpush_{server.scheme}_{unique}"
        sarra_home.write_config("sender", name, (
            f"broker {BROKER}\nexchange {ex}\nsubtopic #\nexpire 10m\n"
            f"report_exchange {xr}\nbase_dir {src}\n"
            f"destination {server.url}{remote.name}/\naccept .*\n"))
        run_tool("sender", "declare", name, timeout=60)
        taps.queues.append(next((sarra_home.state_dir / "sender" / name).glob("*.qname"))
                           .read_text().strip())
        senders.append(procs.start_tool("sender", "foreground", name,
                                        log=tmp_path / f"{server.scheme}.log"))

    # blocks: a file in the FTP server's tree, posted in 64 KiB blocks
    served = ftpd.root / f"blocks-{unique}"
    served.mkdir()
    big = os.urandom(300_000)
    (served / "big.bin").write_bytes(big)
    dst = tmp_path / "dst"
    sub = f"fsub_{unique}"
    sub_config(sarra_home, sub, f"xfb_{unique}", dst, xr)
    declare(sub)
    taps.queues.append(qname(sarra_home, sub))
    subscriber = procs.start_tool("subscribe", "foreground", sub, log=tmp_path / "sub.log")

    dd_post(ex, "http://switch.example.com/data/", src, src)
    dd_post(f"xfb_{unique}", f"{ftpd.url}{served.name}/", served, served / "big.bin",
            extra=["--blocksize", "64k"])
    for scheme, remote in remotes.items():
        wait_same_tree(src, remote, timeout=30, proc=senders[0 if scheme == "ftp" else 1])
        assert tmp_files(remote) == [], "inflight names left on the server"
        for rel in rels[:3]:          # the time set by MDTM, to the second
            assert int((src / rel).stat().st_mtime) == int((remote / rel).stat().st_mtime)
    wait_same_tree(served, dst, timeout=30, proc=subscriber)
    assert (dst / "big.bin").read_bytes() == big
    offsets = {int(m) for m in re.findall(r'"REST (\d+)"', ftpd.log.read_text())}
    assert {65536 * i for i in range(1, 5)} <= offsets, "blocks fetched from their offsets"

    reports.settle(1)
    codes = {(r.relpath, r.report.code) for r in reports.messages}
    assert {c for _, c in codes} == {201}
    for proc in senders + [subscriber]:
        stop(proc)
        assert_logs_clean(proc.log)
        assert ftpd.password not in proc.log.read_text()
        assert ftpsd.password not in proc.log.read_text()
    assert "refuses SITE CHMOD" in (tmp_path / "ftp.log").read_text()
