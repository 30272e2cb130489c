"""dd_log's ledger: the log messages it read, kept in a small SQLite file
in its state directory (``<state_dir>/log/<config>/ledger.sqlite3``), so
that ``dd_log CONFIG --file PATH`` (and the web console) can say who
received a file, when, on which switch, with which status: every log
message about it, failures and retries included.

A row is one log message: the pubtime of the post it is about, when dd_log
read it (``seen``), the file (base URL, relpath), the code, who (user,
host), how long it took, the text, the post's source and the switch
(its ``from_cluster``, else the broker dd_log read from). The same log
message read twice (delivered again after a crash) is one row. Rows
older than ``ledger_max_age`` (by when they were read) are deleted as new
ones come. Rows are written as the flow passes the messages on and
committed at ``commit``, before the batch is acknowledged (LogPrinter.flush).
"""
import os
import sqlite3
import time

from ..message import Message, pubtime_seconds

FILE = "ledger.sqlite3"
PURGE_EVERY = 60.0        # seconds between two deletions of old rows
COLUMNS = ("time", "seen", "base_url", "relpath", "code", "user", "host", "duration",
           "message", "source", "cluster")
GLOB_CHARS = "*?["


class Ledger:
    def __init__(self, path: str, max_age: float, switch: str = "",
                 readonly: bool = False):
        self.path, self.max_age, self.switch = path, max_age, switch
        if readonly:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            self._db = sqlite3.connect(path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS log (time REAL, seen REAL, base_url TEXT, "
                "relpath TEXT, code INTEGER, user TEXT, host TEXT, duration REAL, "
                "message TEXT, source TEXT, cluster TEXT, UNIQUE (time, base_url, relpath, "
                "code, user, host, duration, message))")
            self._db.execute("CREATE INDEX IF NOT EXISTS by_relpath ON log (relpath)")
            self._db.execute("CREATE INDEX IF NOT EXISTS by_seen ON log (seen)")
            self._db.commit()
        self._purged = 0.0

    def add(self, msg: Message, now: float | None = None) -> None:
        """One log message (not yet committed)."""
        r = msg.report
        if r is None:
            return
        self._db.execute(
            "INSERT OR IGNORE INTO log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pubtime_seconds(msg.pubtime), time.time() if now is None else now,
             *map(_text, (msg.base_url, msg.relpath)), r.code,
             *map(_text, (r.user, r.host)), r.duration,
             *map(_text, (r.message, msg.headers.get("source"),
                          msg.headers.get("from_cluster") or self.switch))))

    def commit(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.max_age > 0 and now - self._purged >= PURGE_EVERY:
            self._db.execute("DELETE FROM log WHERE seen < ?", (now - self.max_age,))
            self._purged = now
        self._db.commit()

    def find(self, pattern: str, limit: int = 1000) -> list[dict]:
        """The log messages about the files ``pattern`` names, oldest first:
        a relpath (a leading '/' or none), or a glob (* ? [...]); one
        without a '/' names a file in any directory."""
        wanted = pattern.strip().lstrip("/")
        if any(c in wanted for c in GLOB_CHARS):
            where, args = "relpath GLOB ?", [wanted]
            if "/" not in wanted:
                where, args = "(relpath GLOB ? OR relpath GLOB ?)", [wanted, "*/" + wanted]
        elif "/" in wanted:
            where, args = "relpath = ?", [wanted]
        else:   # a file name: anywhere (GLOB with its characters escaped: none here)
            where, args = "(relpath = ? OR relpath GLOB ?)", [wanted, "*/" + wanted]
        rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM log WHERE {where} "
                                "ORDER BY seen, time LIMIT ?", (*args, limit)).fetchall()
        return [dict(zip(COLUMNS, row)) for row in rows]

    def close(self) -> None:
        self._db.close()


def _text(value):
    """A text SQLite can hold: a lone surrogate (a hostile message's) escaped."""
    if not isinstance(value, str):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def find_in(ledgers: list[tuple[str, str]], pattern: str) -> list[dict]:
    """``find`` over several ledgers (name, path), each row with the name of
    the ledger it came from (``ledger``), in the order they were read; a
    ledger that is not there (or cannot be read) gives nothing."""
    rows = []
    for name, path in ledgers:
        if not os.path.isfile(path):
            continue
        try:
            ledger = Ledger(path, 0, readonly=True)
            try:
                rows += [dict(r, ledger=name) for r in ledger.find(pattern)]
            finally:
                ledger.close()
        except sqlite3.Error:
            continue
    rows.sort(key=lambda r: (r["seen"] or 0, r["time"] or 0))
    return rows
