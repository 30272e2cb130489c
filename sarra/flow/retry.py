"""A small persistent queue of messages whose work failed, tried again later.

One file per instance in the state directory, JSON lines of the v02 wire
form plus the number of tries, when the next one is due and when the
message first failed. Written (and fsynced) before the broker message is
acknowledged, so a failure survives a crash or a restart. An entry taken
out for another try stays in the file until that try is settled
(``settle``): a crash or a lost connection in between costs a repeat,
never the message. Entries older than ``ttl`` are dropped, with an error.
"""
import json
import logging
import os
import time

from .. import codec
from ..errors import MessageError
from ..message import Message

log = logging.getLogger(__name__)


class RetryQueue:
    def __init__(self, path: str, ttl: float = 0.0, base_delay: float = 5.0,
                 max_delay: float = 600.0, max_tries: int = 0):
        self.path = path
        self.ttl, self.max_tries = ttl, max_tries
        self._dirty = False
        self.base_delay, self.max_delay = base_delay, max_delay
        self._items: list[dict] = self._load()
        self._taken: dict[int, dict] = {}   # id(message) -> its entry, while being tried

    def _load(self) -> list[dict]:
        items = []
        try:
            with open(self.path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    try:
                        items.append(json.loads(line))
                    except ValueError:
                        log.error("%s:%d: unreadable retry entry skipped", self.path, n)
        except FileNotFoundError:
            pass
        return items

    def _save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for it in self._items:
                f.write(json.dumps(it) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self._items)

    def adopt(self, path: str) -> int:
        """Take over the entries of another queue's file (an instance that
        is no more, after ``instances`` was lowered), saved here before that
        file is removed: a crash in between repeats them, never loses them.
        Returns how many were taken."""
        other = RetryQueue(path)._items
        if other:
            self._items.extend(other)
            self._dirty = True
            self.save()
            fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
            try:
                os.fsync(fd)        # the saved file's new name is on disk first
            finally:
                os.close(fd)
            log.warning("%s: took over %d retry entries of %s (an instance that is no "
                        "more)", self.path, len(other), path)
        os.unlink(path)
        return len(other)

    def put(self, msgs: list[Message], tries: dict[int, int]) -> list[Message]:
        """Queue messages whose work failed (each after ``tries`` attempts);
        returns those given up (older than ``ttl``, or tried ``max_tries``
        times). ``save`` writes the queue."""
        now = time.time()
        given_up = []
        for m in msgs:
            n = tries.get(id(m), 1)
            old = self._taken.get(id(m))
            first = old.get("first", now) if old else now
            if (self.ttl and now - first > self.ttl) or (self.max_tries and n >= self.max_tries):
                log.error("%s: still failing after %d tries in %.0fs: given up",
                          m.relpath, n, now - first)
                given_up.append(m)
                continue
            topic, headers, body, _ctype = codec.encode(m, "v02.post")
            rounds = (old.get("rounds", 0) if old else 0) + 1   # times it came here
            delay = min(self.base_delay * 2 ** (rounds - 1), self.max_delay)
            self._items.append({"topic": topic, "headers": headers, "body": body,
                                "exchange": m.exchange, "tries": n, "due": now + delay,
                                "first": first, "rounds": rounds})
        self._remove_taken({id(m) for m in msgs})
        self._dirty = True
        return given_up

    def take_due(self, limit: int) -> tuple[list[Message], dict[int, int]]:
        """Up to ``limit`` entries due for another try (they stay queued
        until ``settle``)."""
        now = time.time()
        busy = {id(it) for it in self._taken.values()}
        due = [it for it in self._items if it["due"] <= now and id(it) not in busy][:limit]
        msgs, tries = [], {}
        for it in due:
            try:
                m = codec.decode(it["topic"], it["headers"], it["body"], None, it["exchange"])
            except MessageError as exc:
                log.error("%s: undecodable retry entry dropped: %s", self.path, exc)
                self._items.remove(it)
                self._dirty = True
                continue
            m.received = now
            msgs.append(m)
            tries[id(m)] = it["tries"]
            self._taken[id(m)] = it
        return msgs, tries

    def settle(self, msgs: list[Message]) -> None:
        """These taken messages are done with (succeeded, refused, or queued
        again by ``put``): remove their old entries (``save`` writes it)."""
        if self._remove_taken({id(m) for m in msgs}):
            self._dirty = True

    def save(self) -> None:
        """Write the queue if it changed (fsynced: call before acknowledging)."""
        if self._dirty:
            self._save()
            self._dirty = False

    def release(self) -> None:
        """The tries did not happen (lost connection, stop): keep the entries."""
        self._taken.clear()

    def _remove_taken(self, which: set[int] | None = None) -> bool:
        keys = [k for k in self._taken if which is None or k in which]
        gone = {id(self._taken.pop(k)) for k in keys}
        if gone:
            self._items = [it for it in self._items if id(it) not in gone]
        return bool(gone)
