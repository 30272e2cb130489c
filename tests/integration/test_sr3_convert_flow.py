"""A tree of sr3 configurations converted by ``sarra convert`` runs for real
(RabbitMQ on 127.0.0.1:5672): the subscriber written in sr3's style (its
broker from an environment variable, camelCase names, ``callback log``, a
time pattern, and no topic prefix: sr3's v03) receives v03 posts into
today's (UTC) directory and logs each file."""
from __future__ import annotations

import time

from tests.helpers import run_tool, wait_for
from tests.integration.flowkit import (assert_logs_clean, dd_post, declare, files_under,
                                       qname, stop, taps)

__all__ = ["taps"]


def test_converted_sr3_configuration_runs_a_flow(sarra_home, unique, procs, taps, tmp_path,
                                                 monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "obs").mkdir(parents=True)
    for n in range(3):
        (src / "obs" / f"f{n}.txt").write_text(f"observation {n}\n" * 50)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"conv_{unique}"
    sr3 = tmp_path / "home" / ".config" / "sr3"
    (sr3 / "subscribe").mkdir(parents=True)
    (sr3 / "subscribe" / f"{name}.conf").write_text(
        "broker amqp://${FLOWBROKER}/\n"
        f"exchange {ex}\n"
        "subtopic #\n"
        "expire 10m\n"
        f"reportExchange {xr}\n"
        "callback log\n"
        "batch 10\n"
        "directory ${DATA_ROOT}/${%Y%m%d}\n"
        "acceptUnmatched off\n"
        "accept .*\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLOWBROKER", "guest@127.0.0.1")
    monkeypatch.setenv("DATA_ROOT", str(dst))
    res = run_tool("sarra", "convert", timeout=60)
    assert f"written {sarra_home.config_dir}/subscribe/{name}.conf" in res.stdout, res.stdout
    assert "added: topic_prefix v03" in res.stdout
    reports = taps(xr)
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    day = time.strftime("%Y%m%d", time.gmtime())
    res = dd_post(ex, f"file:{src}/", src, src, extra=("--post_topic_prefix", "v03"))
    assert "posted 3 of 3 files" in res.stdout, res.stdout + res.stderr
    reports.wait_count(3, 30)
    wait_for(lambda: len(files_under(dst)) == 3, timeout=20)
    days = {day, time.strftime("%Y%m%d", time.gmtime())}
    got = files_under(dst)
    assert all(f.split("/")[0] in days and f.endswith(".txt") for f in got), got
    for f in got:
        assert (dst / f).read_text() == (src / "obs" / f.split("/")[-1]).read_text()
    log_text = stop(proc)
    assert "on_file: " in log_text and "f1.txt" in log_text          # callback log
    assert "\x1b[K" not in log_text and "\r" not in log_text    # no progress line off a tty
    assert_logs_clean(proc.log)
