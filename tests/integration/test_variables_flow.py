"""An sr3-style configuration run for real: a dd_subscribe (RabbitMQ on
127.0.0.1:5672) whose broker comes from an environment variable and whose
directories are sr3 time patterns puts each file in today's (UTC) dated
directory, or yesterday's with an offset, and a group of the accept
pattern names a directory: nothing is left with a literal ``${...}``."""
from __future__ import annotations

import time

from tests.helpers import wait_for
from tests.integration.flowkit import (assert_logs_clean, declare, dd_post, files_under, qname,
                                       stop, taps)

__all__ = ["taps"]


def _days() -> tuple[str, str]:
    now = time.time()
    return (time.strftime("%Y%m%d", time.gmtime(now)),
            time.strftime("%Y%m%d", time.gmtime(now - 86400)))


def test_sr3_time_patterns_and_groups_place_the_files(sarra_home, unique, procs, taps,
                                                      tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for rel in ("new/a.txt", "old/b.txt", "misc/c.txt"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel * 10)
    ex, xr, name = f"xt_{unique}", f"xr_{unique}", f"vars_{unique}"
    monkeypatch.setenv("FLOWBROKER", "guest@127.0.0.1")      # the tools inherit it
    monkeypatch.setenv("DATA_ROOT", str(dst))
    reports = taps(xr)
    sarra_home.write_config("subscribe", name, (
        "broker amqp://${FLOWBROKER}/\n"
        f"exchange {ex}\n"
        "topicPrefix v02.post\n"
        "subtopic #\n"
        "expire 10m\n"
        f"reportExchange {xr}\n"
        "callback log\n"
        "directory ${DATA_ROOT}/${%o-1d%Y%m%d}\n"
        "accept .*/old/.*\n"
        "directory ${DATA_ROOT}/${%Y%m%d}/${1}\n"
        "accept .*/(new|misc)/[^/]*$\n"))
    before = _days()
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    res = dd_post(ex, f"file:{src}/", src, src)
    assert "posted 3 of 3 files" in res.stdout, res.stdout
    reports.wait_count(3, 30)
    after = _days()

    def placed() -> list[str]:
        return files_under(dst)
    wait_for(lambda: len(placed()) == 3, timeout=20)
    got = placed()
    today = {before[0], after[0]}
    yesterday = {before[1], after[1]}
    assert any(f"{d}/new/a.txt" in got for d in today), got
    assert any(f"{d}/misc/c.txt" in got for d in today), got
    assert any(f"{d}/b.txt" in got for d in yesterday), got
    assert not any("$" in f for f in got), got
    log_text = stop(proc)
    assert "on_file: " in log_text and "new/a.txt" in log_text      # callback log
    assert_logs_clean(proc.log)
