"""What a poller has announced, and what it is waiting for: a small SQLite
file in the state directory, so that a listing of 100,000 names costs disk,
not memory.

``announced``: remote path -> the Key (size, time as listed) it was
announced with. ``waiting``: files seen new or changed that are not
announced yet (file_age_min), with since when. Changes are made in a
transaction the poller commits once the posts they record are confirmed
by the broker (``commit``), or rolls back when they must be done again.
The names listed in the current directory are noted (``seen``) so that
those no longer there are forgotten (``forget_unseen``): a file that comes
back is new again.
"""
import sqlite3

from .base import Key, Waiting


class PollState:
    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level="DEFERRED")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA temp_store=FILE")
        self._db.execute("CREATE TABLE IF NOT EXISTS announced (path TEXT PRIMARY KEY, "
                         "size INTEGER, mtime_ns INTEGER)")
        self._db.execute("CREATE TABLE IF NOT EXISTS waiting (path TEXT PRIMARY KEY, "
                         "size INTEGER, mtime_ns INTEGER, since REAL)")
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY)")
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM announced").fetchone()[0]

    def announced(self, path: str) -> Key | None:
        row = self._db.execute("SELECT size, mtime_ns FROM announced WHERE path = ?",
                               (path,)).fetchone()
        return Key(*row) if row else None

    def waiting(self, path: str) -> Waiting | None:
        row = self._db.execute("SELECT size, mtime_ns, since FROM waiting WHERE path = ?",
                               (path,)).fetchone()
        return Waiting(Key(row[0], row[1]), row[2]) if row else None

    def announce(self, path: str, key: Key) -> None:
        self._db.execute("INSERT OR REPLACE INTO announced VALUES (?, ?, ?)", (path, *key))
        self._db.execute("DELETE FROM waiting WHERE path = ?", (path,))

    def wait(self, path: str, w: Waiting | None) -> None:
        if w is None:
            self._db.execute("DELETE FROM waiting WHERE path = ?", (path,))
        else:
            self._db.execute("INSERT OR REPLACE INTO waiting VALUES (?, ?, ?, ?)",
                             (path, *w.key, w.since))

    def see(self, path: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (path,))

    def forget_unseen(self, directory: str) -> int:
        """Forget the files of ``directory`` (its direct children) that its
        listing did not name; how many were forgotten. Clears ``seen``."""
        prefix = directory.rstrip("/") + "/"
        gone = 0
        for table in ("announced", "waiting"):
            gone += self._db.execute(
                f"DELETE FROM {table} WHERE path >= ? AND path < ? "   # noqa: S608 - fixed names
                f"AND instr(substr(path, ?), '/') = 0 "
                f"AND path NOT IN (SELECT path FROM seen)",
                (prefix, prefix[:-1] + "0", len(prefix) + 1)).rowcount
        self._db.execute("DELETE FROM seen")
        return gone

    def commit(self) -> None:
        self._db.commit()

    def rollback(self) -> None:
        self._db.rollback()

    def close(self) -> None:
        self._db.rollback()
        self._db.close()
