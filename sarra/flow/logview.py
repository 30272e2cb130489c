"""dd_log's Poster: each log message the flow passes on becomes a line.

The flow of dd_log reads the user's ``xr_<user>`` queue and, doing no work,
passes on every message it accepts; ``LogPrinter`` (a contracts.Poster
with no broker) writes those that are log messages to its stream, as a
table (``format table``) or JSON lines (``format json``), and keeps them in
its ledger (sarra/flow/ledger.py), committed before the batch is
acknowledged. ``ledger_lines`` shows what the ledger knows of a file.
"""
import json
import sys
import time
from typing import TextIO

from ..message import Message
from .ledger import Ledger

COLUMNS = "{when:19s}  {took:>8}  {code:>4}  {who:30s}  {relpath}  ({message})"


def log_line(m: Message, fmt: str) -> str:
    r = m.report
    if fmt == "json":
        return json.dumps({"pubtime": m.pubtime, "base_url": m.base_url,
                           "relpath": m.relpath, "code": r.code, "host": r.host,
                           "user": r.user, "duration": r.duration, "message": r.message,
                           "source": m.headers.get("source"),
                           "from_cluster": m.headers.get("from_cluster")},
                          ensure_ascii=False)
    t = m.pubtime
    when = f"{t[0:4]}-{t[4:6]}-{t[6:8]} {t[8:10]}:{t[10:12]}:{t[12:14]}"
    return COLUMNS.format(when=when, took=f"{r.duration:.3f}s", code=r.code,
                          who=f"{r.user}@{r.host}", relpath=m.relpath, message=r.message)


LEDGER_COLUMNS = ("{posted:19s}  {seen:19s}  {code:>4}  {who:30s}  {switch:16s}  {took:>8}  "
                  "{relpath}  ({message})")


def _utc(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) if t is not None else "?"


def ledger_lines(rows: list[dict], fmt: str) -> list[str]:
    """The ledger's rows (``Ledger.find``) as dd_log shows them."""
    if fmt == "json":
        return [json.dumps(r, ensure_ascii=False) for r in rows]
    lines = [LEDGER_COLUMNS.format(posted="POSTED (UTC)", seen="LOGGED (UTC)", code="CODE",
                                   who="WHO GOT IT", switch="SWITCH", took="TOOK",
                                   relpath="FILE", message="MESSAGE")]
    for r in rows:
        lines.append(LEDGER_COLUMNS.format(
            posted=_utc(r["time"]), seen=_utc(r["seen"]), code=r["code"],
            who=f"{r['user']}@{r['host']}", switch=r["cluster"] or "-",
            took=f"{r['duration']:.3f}s", relpath=r["relpath"], message=r["message"]))
    return lines


class LogPrinter:
    broker = None
    exchange = "stdout"

    def __init__(self, fmt: str, out: TextIO | None = None, ledger: Ledger | None = None,
                 show: bool = True):
        self.fmt = fmt
        self._out = out
        self.ledger = ledger
        self.show = show        # off: into the ledger only (dd_log --file)
        self.shown = 0
        self._headed = False

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def declare(self) -> None:
        """The table's heading, once."""
        if self.show and self.fmt == "table" and not self._headed:
            print(COLUMNS.format(when="POSTED (UTC)", took="TOOK", code="CODE",
                                 who="WHO GOT IT", relpath="FILE", message="MESSAGE"),
                  file=self.out)
            self._headed = True

    def publish(self, msg: Message) -> None:
        if msg.report is None:      # a post on the log exchange: not ours to show
            return
        if self.ledger is not None:
            self.ledger.add(msg)
        if self.show:
            print(log_line(msg, self.fmt), file=self.out)
            self.shown += 1

    def mark(self) -> int:
        return self.shown

    def flush(self, timeout: float = 60.0, since: int | None = None) -> None:
        if self.ledger is not None:
            self.ledger.commit()
        self.out.flush()
