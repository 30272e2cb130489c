"""Built-in ``set_complete``: run a command once, when every file of a set is in.

``on_file set_complete REGEX COUNT exec COMMAND ARGS...``: REGEX, searched
in each file's relpath, names the set the file belongs to with its group
``(?P<set>...)``; a set is complete when COUNT distinct files (relpaths) of
it have arrived. The arrival of the COUNTth runs the command once, with
SARRA_SET (the set's name) and SARRA_SET_FILES (the members' local paths,
one per line) added to the usual environment.

Exactly once, across the instances of the configuration and restarts: the
membership lives in a small SQLite file in the configuration's state
directory, and each arrival is one transaction (BEGIN IMMEDIATE: the
instances take turns). The transaction that completes a set keeps its lock
while the command runs and records the set as fired only when the command
succeeds: the other instances wait for it, then see the set fired. A
command that fails leaves the set complete but not fired: the next arrival
of one of its files (sent again) runs it again. A crash while it runs means
the message is not acknowledged, comes again, and the command runs again.
"""
import hashlib
import os
import re
import sqlite3
import time

from ..config import paths
from ..errors import PluginError
from ..message import Message
from .command import Exec

SCHEMA = """
CREATE TABLE IF NOT EXISTS members (set_name TEXT NOT NULL, member TEXT NOT NULL,
                                    path TEXT NOT NULL, PRIMARY KEY (set_name, member));
CREATE TABLE IF NOT EXISTS sets (set_name TEXT PRIMARY KEY, fired_at REAL NOT NULL);
"""


class SetComplete:
    """See the module's docstring."""
    USAGE = "set_complete REGEX COUNT exec COMMAND [ARGS...]"

    def __init__(self, cfg, regex: str, count: str, keyword: str = "", *command: str):
        try:
            self.regex = re.compile(regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression '{regex}': {exc}") from None
        if "set" not in self.regex.groupindex:
            raise ValueError(f"'{regex}' has no group (?P<set>...) naming the set")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"COUNT '{count}' is not a positive integer")
        self.count = int(count)
        if keyword != "exec" or not command:
            raise ValueError("usage: set_complete REGEX COUNT exec COMMAND [ARGS...]")
        self.command = Exec(cfg, *command)
        key = hashlib.sha1(f"{regex}\0{count}".encode()).hexdigest()[:10]
        self.path = paths.state_path(cfg.tool, cfg.key, f"set_complete.{key}.sqlite3")
        # waiting for another instance's command is part of the deal
        self.busy_timeout = (self.command.timeout or 3600.0) + 60.0
        self._db: sqlite3.Connection | None = None
        self._pid = 0

    def db(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():   # one connection per process
            self._db = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                       isolation_level=None)
            self._pid = os.getpid()
            self._db.executescript(SCHEMA)
        return self._db

    def on_file(self, msg: Message) -> bool:
        found = self.regex.search(msg.relpath)
        name = found.group("set") if found else None
        local = msg.local_path
        if name is None or msg.operation != "file" or not local:
            return True
        try:
            why = self._arrived(name, msg.relpath, local, msg)
        except sqlite3.Error as exc:
            raise PluginError(f"set state {self.path}: {exc}") from exc
        if why is not None:
            raise PluginError(f"set {name} complete, but {why}")
        return True

    def _arrived(self, name: str, member: str, local: str, msg: Message) -> str | None:
        """One transaction: record the member, fire when it completes the set.
        None, or why the command failed."""
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        why = None
        try:
            members = self._add(db, name, member, local)
            if members is not None and len(members) >= self.count:
                why = self._fire(db, name, msg, members)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")      # a failed command: the membership stays, the set has not fired
        return why

    @staticmethod
    def _add(db: sqlite3.Connection, name: str, member: str, local: str) -> list[str] | None:
        """Record the arrival; the members' local paths, or None when the
        set has fired already."""
        if db.execute("SELECT 1 FROM sets WHERE set_name = ?", (name,)).fetchone():
            return None
        db.execute("INSERT OR REPLACE INTO members (set_name, member, path) VALUES (?, ?, ?)",
                   (name, member, local))
        rows = db.execute("SELECT path FROM members WHERE set_name = ? ORDER BY member",
                          (name,)).fetchall()
        return [r[0] for r in rows]

    def _fire(self, db: sqlite3.Connection, name: str, msg: Message,
              members: list[str]) -> str | None:
        """Run the command (the lock held); record the set as fired when it
        succeeds. None, or why it did not."""
        try:
            why = self.command.failed("on_file", msg, {"SARRA_SET": name,
                                                       "SARRA_SET_FILES": "\n".join(members)})
        except PluginError as exc:      # could not start, or timed out
            why = str(exc)
        if why is None:
            db.execute("INSERT INTO sets (set_name, fired_at) VALUES (?, ?)", (name, time.time()))
            db.execute("DELETE FROM members WHERE set_name = ?", (name,))
        return why

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None
