"""Hooks end to end: dd_post -> RabbitMQ -> dd_subscribe with on_message and
on_file hooks (external commands, Python classes, built-ins), and a
set_complete trigger shared by two subscriber instances.

The classes below are the Python hooks the subscriber processes load by
dotted name (``tests.integration.test_hooks:FailFor``).
"""
from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import wait_for
from tests.integration.flowkit import (codes_by_relpath, declare, dd_post, files_under, qname,
                                       queue_consumers, stop, sub_config, taps)

__all__ = ["taps"]


class FailFor:
    """on_file: raise for files whose relpath contains WORD; PASS the others."""

    def __init__(self, cfg, word: str):
        self.word = word

    def on_file(self, msg):
        if self.word in msg.relpath:
            raise RuntimeError(f"no luck with {msg.relpath}")
        return "PASS"


class SkipFor:
    """on_file: SKIP files whose relpath contains WORD."""

    def __init__(self, cfg, word: str):
        self.word = word

    def on_file(self, msg):
        return self.word not in msg.relpath


def write_files(root: Path, rels: list[str]) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode() * 50)


def test_hook_chains_skip_record_fail_and_go_on(sarra_home, unique, procs, taps, tmp_path):
    """on_message exec SKIPs two files (not downloaded, not reported); the
    on_file chain records SARRA_FILE (exec, PASS), raises for one file
    (reported 503, the next files still downloaded and reported 201),
    SKIPs one (still 201), and logs what went through it all."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    record, passed = tmp_path / "record.txt", tmp_path / "passed.log"
    rels = ["d/f1.dat", "d/f2_skip.dat", "d/f3_boom.dat", "d/f4.dat", "d/f5_quiet.dat",
            "d/f6_skip.dat", "d/f7.dat", "e/f8.dat"]
    write_files(src, rels)
    ex, xr, name = f"xh_{unique}", f"xhr_{unique}", f"hooks_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra=(
        "on_message exec /bin/sh -c 'case \"$SARRA_RELPATH\" in *_skip*) exit 1;; esac; "
        "test -z \"$SARRA_FILE\"'\n"
        f"on_file exec /bin/sh -c 'echo \"$SARRA_FILE\" >> \"$0\"' {record}\n"
        "on_file tests.integration.test_hooks:FailFor boom\n"
        "on_file tests.integration.test_hooks.SkipFor quiet\n"
        f"on_file log {passed}\n"))
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    sub = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    dd_post(ex, f"file:{src}/", src, src)

    wanted = [r for r in rels if "_skip" not in r]
    got = reports.wait(lambda ms: len(ms) >= len(wanted), 20, f"{len(wanted)} log messages")
    reports.settle(0.5)
    codes = {rel: sorted(c.elements()) for rel, c in codes_by_relpath(got).items()}
    assert codes == {r: [503 if "boom" in r else 201] for r in wanted}
    boom = next(m for m in got if "boom" in m.relpath)
    assert "on_file hook 'tests.integration.test_hooks:FailFor boom' failed: " \
           "RuntimeError: no luck with d/f3_boom.dat" in boom.report.message
    assert sorted(files_under(dst)) == wanted              # boom downloaded all the same
    assert sorted(record.read_text().split("\n")[:-1]) == sorted(str(dst / r) for r in wanted)
    through = [line.split("\t")[2] for line in passed.read_text().splitlines()]
    assert sorted(through) == ["d/f1.dat", "d/f4.dat", "d/f7.dat", "e/f8.dat"]

    text = stop(sub)
    assert re.search(r"\[ERROR\] .*on_file hook 'tests.integration.test_hooks:FailFor boom' "
                     r"failed on d/f3_boom.dat", text), text[-2000:]
    assert "Traceback" not in text                        # at DEBUG only


def test_set_complete_fires_once_per_day_with_two_instances(sarra_home, unique, procs, taps,
                                                            tmp_path):
    """Per-node daily captures, 3 nodes x 2 days, consumed by two instances
    of one subscriber: each day's command runs exactly once, with the day's
    three local files."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    fired = tmp_path / "fired.txt"
    days = ["2026-11-24", "2026-11-25"]
    rels = [f"results-lab/{day}/node{n:02d}/capture.pcap" for day in days for n in (1, 2, 3)]
    write_files(src, rels)
    ex, xr, name = f"xs_{unique}", f"xsr_{unique}", f"sets_{unique}"
    reports = taps(xr)
    sub_config(sarra_home, name, ex, dst, xr, extra=(
        "prefetch 1\n"
        r"on_file set_complete 'results-[^/]+/(?P<set>\d{4}-\d\d-\d\d)/node\d\d/' 3 "
        "exec /bin/sh -c 'echo \"$SARRA_SET $(echo \"$SARRA_SET_FILES\" | wc -l)\" >> \"$0\"' "
        f"{fired}\n"))
    declare(name)
    queue = qname(sarra_home, name)
    taps.queues.append(queue)
    subs = [procs.start_tool("subscribe", "foreground", name, log=tmp_path / f"sub{i}.log",
                             env={"SARRA_INSTANCE": str(i)}) for i in (1, 2)]
    wait_for(lambda: queue_consumers(queue) == 2, timeout=10, what="both instances consuming")
    dd_post(ex, f"file:{src}/", src, src)

    got = reports.wait(lambda ms: len(ms) >= len(rels), 20, f"{len(rels)} log messages")
    assert sorted(m.report.code for m in got) == [201] * len(rels)
    wait_for(lambda: fired.exists() and len(fired.read_text().splitlines()) >= 2, timeout=10,
             what="both days to fire")
    reports.settle(0.5)
    assert sorted(fired.read_text().splitlines()) == [f"{day} 3" for day in days]
    assert sorted(files_under(dst)) == sorted(rels)
    handled = [int(re.search(r"summary: (\d+) messages handled", stop(sub)).group(1))
               for sub in subs]
    assert sum(handled) == len(rels) and min(handled) > 0, handled   # both instances worked
