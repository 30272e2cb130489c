"""dd_log's Poster: each log message the flow passes on becomes a line.

The flow of dd_log reads the user's ``xr_<user>`` queue and, doing no work,
passes on every message it accepts; ``LogPrinter`` (a contracts.Poster
with no broker) writes those that are log messages to its stream, as a
table (``format table``) or JSON lines (``format json``).
"""
import json
import sys
from typing import TextIO

from ..message import Message

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


class LogPrinter:
    broker = None
    exchange = "stdout"

    def __init__(self, fmt: str, out: TextIO | None = None):
        self.fmt = fmt
        self._out = out
        self.shown = 0
        self._headed = False

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def declare(self) -> None:
        """The table's heading, once."""
        if self.fmt == "table" and not self._headed:
            print(COLUMNS.format(when="POSTED (UTC)", took="TOOK", code="CODE",
                                 who="WHO GOT IT", relpath="FILE", message="MESSAGE"),
                  file=self.out)
            self._headed = True

    def publish(self, msg: Message) -> None:
        if msg.report is not None:      # a post on the log exchange: not ours to show
            print(log_line(msg, self.fmt), file=self.out)
            self.shown += 1

    def flush(self, timeout: float = 60.0) -> None:
        self.out.flush()
