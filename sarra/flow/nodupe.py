"""Duplicate suppression ("fingerprint winnowing", doc/protocol.md §4.6).

A message's fingerprint is its sum and parts with, by ``nodupe_basis``, its
relpath (``path``), its file name (``name``) or nothing (``data``). The
fingerprints seen in the last ``nodupe_ttl`` seconds are kept in a small
SQLite file in the configuration's state directory, shared by its instances.

Nothing may be lost by a crash: a fingerprint is first recorded *pending*
(committed at once, so other instances see it), then *done* when the batch
is acknowledged; a batch that is not (lost connection) takes its pending
fingerprints back. A message the broker delivers again (``redelivered``) is
not a duplicate of its own pending fingerprint: its first taker died.
"""
import os
import sqlite3
import time

from ..message import Message
from .durable import sqlite_many

PENDING, DONE = 0, 1


def fingerprint(msg: Message, basis: str) -> str:
    rel = msg.headers.get("newname") or msg.relpath
    who = {"path": rel, "name": os.path.basename(rel), "data": ""}[basis]
    return f"{who}\n{msg.headers.get('sum', '')}\n{msg.headers.get('parts', '')}"


class DuplicateCache:
    def __init__(self, path: str, ttl: float, basis: str = "path"):
        self.ttl, self.basis = ttl, basis
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, "
                         "time REAL, state INTEGER)")

    def admit(self, msg: Message) -> str | None:
        """Record ``msg``'s fingerprint as pending and return it; None when
        ``msg`` is a recent duplicate. The caller keeps the fingerprint
        (``Job.fingerprint``) for ``settle``."""
        return self.admit_many([msg])[0]

    def admit_many(self, msgs: list[Message]) -> list[str | None]:
        """``admit`` for each of ``msgs`` in turn (a later one may be the
        duplicate of an earlier one), in one transaction: committed, so
        seen by the other instances, before any of them is worked on."""
        now = time.time()
        db = self._db
        out: list[str | None] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for msg in msgs:
                key = fingerprint(msg, self.basis)
                row = db.execute("SELECT time, state FROM seen WHERE key = ?",
                                 (key,)).fetchone()
                fresh = row is not None and now - row[0] < self.ttl
                if fresh and not (row[1] == PENDING and msg.redelivered):
                    out.append(None)
                    continue
                db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?, ?)", (key, now, PENDING))
                out.append(key)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    def settle(self, done: list[str], undone: list[str] = ()) -> None:
        """The batch is acknowledged: the fingerprints ``done`` are for good;
        those ``undone`` (left by a stop: their messages come again) are
        forgotten."""
        if done:        # one transaction each (autocommit would make one a row)
            sqlite_many(self._db, "UPDATE seen SET state = ? WHERE key = ?",
                        [(DONE, k) for k in done])
        self.release(undone)

    def release(self, keys: list[str]) -> None:
        """Their messages come again (lost connection): forget these pending
        fingerprints."""
        if keys:
            sqlite_many(self._db, "DELETE FROM seen WHERE key = ? AND state = ?",
                        [(k, PENDING) for k in keys])

    def purge(self) -> int:
        """Forget what is older than the lifetime; returns how many."""
        cur = self._db.execute("DELETE FROM seen WHERE time < ?", (time.time() - self.ttl,))
        return cur.rowcount

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM seen").fetchone()[0]

    def close(self) -> None:
        self._db.close()
