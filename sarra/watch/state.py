"""What a watcher has posted: path -> size, mtime, sum (and link target).

A small SQLite file in the state directory, so a tree of 100,000 files
costs disk, not memory. Changes are made inside a transaction that the
watcher commits only once the posts they record are confirmed by the
broker (``commit``), or rolls back when the batch must be done again.
A row with no sum is a baseline: a file that was there when watching
began and was never announced.
"""
import sqlite3
from typing import Iterable, Iterator, NamedTuple


class Posted(NamedTuple):
    size: int
    mtime_ns: int
    sum: str | None
    link: str | None


def _tallied(entries: Iterable[tuple[str, int, int, bool]],
             counts: list[int]) -> Iterator[tuple[str, int, int, bool]]:
    """``entries`` as they come, ``counts`` [rows, ignored] kept up to date."""
    for row in entries:
        counts[0] += 1
        if row[3]:
            counts[1] += 1
        yield row


class WatchState:
    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level="DEFERRED")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, "
                         "size INTEGER, mtime_ns INTEGER, sum TEXT, link TEXT)")
        self._db.commit()

    @property
    def started(self) -> bool:
        """Whether a start recorded the tree already, even an empty one (a
        start after that announces what appeared meanwhile)."""
        return self._db.execute("PRAGMA user_version").fetchone()[0] > 0 or len(self) > 0

    def mark_started(self) -> None:
        self._db.execute("PRAGMA user_version = 1")
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM files").fetchone()[0]

    def get(self, path: str) -> Posted | None:
        row = self._db.execute("SELECT size, mtime_ns, sum, link FROM files WHERE path = ?",
                               (path,)).fetchone()
        return Posted(*row) if row else None

    def put(self, path: str, size: int, mtime_ns: int, sum_: str | None,
            link: str | None = None) -> None:
        self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                         (path, size, mtime_ns, sum_, link))

    def remove(self, path: str) -> None:
        self._db.execute("DELETE FROM files WHERE path = ?", (path,))

    def under(self, directory: str) -> Iterator[tuple[str, Posted]]:
        """Rows for paths below ``directory`` (a snapshot: safe to modify while iterating)."""
        prefix = directory.rstrip("/") + "/"
        rows = self._db.execute("SELECT path, size, mtime_ns, sum, link FROM files "
                                "WHERE path >= ? AND path < ? ORDER BY path",
                                (prefix, prefix[:-1] + "0")).fetchall()
        for path, *rest in rows:
            yield path, Posted(*rest)

    # -- the tree as found at start, compared in SQLite, not in memory ----------
    def load_listing(self, entries: Iterable[tuple[str, int, int, bool]]) -> tuple[int, int]:
        """Keep a listing of the tree, (path, size, mtime_ns, ignored) rows,
        in a temporary table (on disk, not in memory) for ``changed`` and
        ``vanished``; how many rows, how many ignored."""
        self.drop_listing()
        self._db.execute("CREATE TEMP TABLE seen (path TEXT, size INTEGER, mtime_ns INTEGER, "
                         "ignored INTEGER)")
        counts = [0, 0]
        self._db.executemany("INSERT INTO seen VALUES (?, ?, ?, ?)", _tallied(entries, counts))
        # indexed once filled: one sort, not a B-tree insert per row (a path
        # twice, from roots that overlap, is harmless to the queries below)
        self._db.execute("CREATE INDEX temp.seen_path ON seen (path)")
        return counts[0], counts[1]

    def record_listing(self, entries: Iterable[tuple[str, int, int, bool]]) -> tuple[int, int]:
        """A first start's baseline: the files of a listing (path, size,
        mtime_ns, ignored), but the ignored ones, recorded as they come (no
        sum: never announced); how many files, how many ignored."""
        counts = [0, 0]
        self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, NULL, NULL)",
                             ((path, size, mtime_ns) for path, size, mtime_ns, ignored
                              in _tallied(entries, counts) if not ignored))
        return counts[0], counts[1]

    _CHANGED = ("FROM seen s LEFT JOIN files f ON f.path = s.path WHERE s.ignored = 0 "
                "AND (f.path IS NULL OR f.size != s.size OR f.mtime_ns != s.mtime_ns)")

    def changed(self) -> Iterator[str]:
        """The listing's paths (not ignored) that the record lacks or holds
        with another size or mtime."""
        for (path,) in self._db.execute(f"SELECT s.path {self._CHANGED}"):
            yield path

    def vanished(self, directory: str) -> Iterator[tuple[str, Posted]]:
        """Rows below ``directory`` whose path the listing does not hold (a
        snapshot: safe to modify while iterating)."""
        prefix = directory.rstrip("/") + "/"
        rows = self._db.execute(
            "SELECT f.path, f.size, f.mtime_ns, f.sum, f.link FROM files f LEFT JOIN seen s "
            "ON s.path = f.path WHERE s.path IS NULL AND f.path >= ? AND f.path < ? "
            "ORDER BY f.path", (prefix, prefix[:-1] + "0")).fetchall()
        for path, *rest in rows:
            yield path, Posted(*rest)

    def drop_listing(self) -> None:
        self._db.execute("DROP TABLE IF EXISTS seen")

    def commit(self) -> None:
        self._db.commit()

    def rollback(self) -> None:
        self._db.rollback()

    def close(self) -> None:
        self._db.commit()
        self._db.close()
