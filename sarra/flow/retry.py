"""A small persistent queue of messages whose work failed, tried again later.

One file per instance in the state directory, JSON lines of the message's
fields plus the number of tries, when the next one is due and when the
message first failed. Written (and fsynced, with its directory: the
``fsync`` option) before the broker message is acknowledged, so a failure survives a crash or a restart. An entry taken
out for another try stays in the file until that try is settled
(``settle``): a crash or a lost connection in between costs a repeat,
never the message. Entries older than ``ttl`` are dropped, with an error.
"""
import json
import logging
import os
import time
from dataclasses import dataclass, field

from .. import codec
from ..errors import MessageError
from ..message import Message
from ..worklist import Job
from .durable import replace_synced

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Entry:
    """One queued message (its fields as JSON: whatever it holds can be
    written, a lone surrogate or a header too long for the wire included)
    and its history."""
    message: dict         # pubtime, base_url, relpath, headers, topic, exchange, extras
    tries: int            # attempts so far
    due: float            # when the next one may happen
    first: float          # when it first failed
    rounds: int = 1       # times it came to this queue
    taken: bool = field(default=False, compare=False)   # being tried (never saved)

    @classmethod
    def of(cls, m: Message, tries: int, due: float, first: float, rounds: int) -> "Entry":
        fields = {"pubtime": m.pubtime, "base_url": m.base_url, "relpath": m.relpath,
                  "headers": dict(m.headers), "topic": m.topic, "exchange": m.exchange,
                  "extras": m.extras}
        return cls(fields, tries, due, first, rounds)

    @classmethod
    def from_json(cls, d: dict) -> "Entry":
        fields = d.get("message")
        if fields is None:   # the v02 wire form of earlier versions
            m = codec.decode(d["topic"], d["headers"], d["body"], None, d.get("exchange", ""))
            fields = cls.of(m, 0, 0, 0, 0).message
        return cls(fields, int(d.get("tries", 1)), float(d["due"]),
                   float(d.get("first", d["due"])), int(d.get("rounds", 1)))

    def to_json(self) -> str:
        # not asdict(): it copies the fields recursively, and a v03 field nested
        # 500 deep (which the decoder accepts) raised RecursionError
        d = {"message": self.message, "tries": self.tries, "due": self.due,
             "first": self.first, "rounds": self.rounds}
        return json.dumps(d)   # ASCII: a lone surrogate is written as \ud800

    def to_message(self) -> Message:
        f = self.message
        return Message(f["pubtime"], f["base_url"], f["relpath"], dict(f["headers"]),
                       topic=f.get("topic", ""), exchange=f.get("exchange", ""),
                       extras=dict(f.get("extras") or {}))


class RetryQueue:
    """The queue's entries, and the changes of the batch being handled:
    ``put`` and ``settle`` are applied by ``save`` (after the batch's posts
    and log messages are confirmed, before it is acknowledged) or undone by
    ``release`` (the batch comes again)."""

    def __init__(self, path: str, ttl: float = 0.0, base_delay: float = 5.0,
                 max_delay: float = 600.0, max_tries: int = 0, fsync: bool = True):
        self.path = path
        self.fsync = fsync
        self.ttl, self.max_tries = ttl, max_tries
        self.base_delay, self.max_delay = base_delay, max_delay
        self._items: list[Entry] = self._load()
        self._added: list[Entry] = []      # this batch's failures
        self._done: list[Entry] = []       # entries this batch settled
        self._dirty = False                # _items differs from the file

    def _load(self) -> list[Entry]:
        items = []
        try:
            with open(self.path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    try:
                        items.append(Entry.from_json(json.loads(line)))
                    except (ValueError, KeyError, TypeError, MessageError) as exc:
                        log.error("%s:%d: unreadable retry entry skipped: %s", self.path, n, exc)
        except FileNotFoundError:
            pass
        return items

    def _write(self) -> None:
        def write(f):
            for it in self._items:
                f.write(it.to_json() + "\n")
        replace_synced(self.path, write, self.fsync)

    def __len__(self) -> int:
        """Entries queued, this batch's changes included."""
        return len(self._items) - len(self._done) + len(self._added)

    def adopt(self, path: str) -> int:
        """Take over the entries of another queue's file (an instance that
        is no more, after ``instances`` was lowered), saved here before that
        file is removed: a crash in between repeats them, never loses them.
        Returns how many were taken."""
        other = RetryQueue(path)._items
        if other:
            self._items.extend(other)
            self._dirty = True
            self.save()             # its directory synced: the new name is on disk first
            log.warning("%s: took over %d retry entries of %s (an instance that is no "
                        "more)", self.path, len(other), path)
        os.unlink(path)
        return len(other)

    def put(self, jobs: list[Job]) -> list[Job]:
        """Queue jobs whose work failed (``job.tries`` attempts so far);
        returns those given up (older than ``ttl``, or tried ``max_tries``
        times)."""
        now = time.time()
        given_up = []
        for job in jobs:
            m, n, old = job.msg, max(job.tries, 1), job.retry
            first = old.first if old else now
            if (self.ttl and now - first > self.ttl) or (self.max_tries and n >= self.max_tries):
                log.error("%s: still failing after %d tries in %.0fs: given up",
                          m.relpath, n, now - first)
                given_up.append(job)
                continue
            rounds = (old.rounds if old else 0) + 1   # times it came here
            delay = min(self.base_delay * 2 ** (rounds - 1), self.max_delay)
            entry = Entry.of(m, n, now + delay, first, rounds)
            entry.to_json()   # what cannot be written fails here, for this message alone
            self._added.append(entry)
        self.settle(jobs)
        return given_up

    def take_due(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs due for another try (their entries stay
        queued until ``settle`` and ``save``)."""
        now = time.time()
        due = [it for it in self._items if it.due <= now and not it.taken][:limit]
        jobs = []
        for it in due:
            m = it.to_message()
            m.received = now
            it.taken = True
            jobs.append(Job(m, tries=it.tries, retry=it))
        return jobs

    def settle(self, jobs: list[Job]) -> None:
        """These jobs are done with (succeeded, refused, or queued again by
        ``put``): their entries go at ``save``."""
        self._done += [j.retry for j in jobs if j.retry is not None]

    def save(self) -> None:
        """Apply this batch's changes and write the queue if it changed
        (fsynced: call before acknowledging)."""
        if self._done or self._added:
            gone = self._done
            self._items = [it for it in self._items if not any(it is g for g in gone)]
            self._items += self._added
            self._done, self._added = [], []
            self._dirty = True
        if self._dirty:
            self._write()
            self._dirty = False

    def release(self) -> None:
        """The batch is over: entries not settled may be taken again. Changes
        not saved (the batch comes again: lost connection) are undone."""
        self._done, self._added = [], []
        for it in self._items:
            it.taken = False
