"""Messages kept aside, so that no message can stop a process.

A message whose handling raised what the flow does not expect (a bug, or
input nobody foresaw), or that cannot even be decoded, is logged, reported
when a log message can be formed, acknowledged, and kept here: one JSON
file per message in ``<state_dir>/<tool>/<config>/quarantine/``, holding
what came off the wire (exchange, topic, headers, body) or, for a message
made here or taken from the retry queue, its fields; the stage and the
reason. ``sarra quarantine`` lists them; ``retry`` marks some to be taken
again by a running instance (the file is renamed ``<id>.retry``, then
``<id>.claimed-<pid>`` while an instance has it), ``drop`` removes them.

A message in hand when its process died (killed by the kernel, a crash of
the interpreter) comes back from the broker, and would kill the next one
too. The keys of the messages of each batch are written to a small SQLite
file with the pid that holds them, and removed when the batch is over
(acknowledged, or given back after a lost connection). A message that comes
again while its row names a process that is no more counts one death; at
``quarantine_deaths`` deaths it is kept aside instead of handled again.
"""
import base64
import glob
import hashlib
import json
import logging
import os
import sqlite3
import time
from typing import Any

from .. import codec
from ..errors import MessageError
from ..message import Message
from ..worklist import Job
from .durable import replace_synced, sqlite_many

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000        # beyond, a message is counted and logged, not kept
RETRY_EVERY = 5.0           # seconds between two looks for entries marked for retry


MAX_DEPTH = 64              # tables and arrays nested deeper (AMQP carries 800) are not kept


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A header value as JSON can hold it (bytes as {'$base64': ...}; what is
    nested beyond MAX_DEPTH as a note: copying it raised RecursionError)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (dict, list, tuple)) and depth >= MAX_DEPTH:
        return f"(nested deeper than {MAX_DEPTH} levels: not kept)"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    return repr(value)


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$base64"}:
            return base64.b64decode(value["$base64"])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def wire_record(delivery) -> dict:
    """What came off the wire, as JSON can hold it."""
    body = bytes(delivery.body) if not isinstance(delivery.body, str) else \
        delivery.body.encode("utf-8", "surrogateescape")
    return {"exchange": delivery.exchange, "topic": delivery.topic,
            "headers": _jsonable(delivery.headers or {}),
            "body": base64.b64encode(body).decode(), "content_type": delivery.content_type}


def fields_record(m: Message) -> dict:
    """A message that did not come off the wire as such: its fields."""
    return {"fields": {"pubtime": m.pubtime, "base_url": m.base_url, "relpath": m.relpath,
                       "headers": dict(m.headers), "topic": m.topic, "exchange": m.exchange,
                       "extras": _jsonable(m.extras)}}


def record_of(m: Message) -> dict:
    return wire_record(m.raw) if m.raw is not None else fields_record(m)


def key_of(record: dict) -> str:
    return hashlib.sha1(json.dumps(record, sort_keys=True).encode("ascii")).hexdigest()


def message_of(record: dict) -> Message:
    """The message a record holds again (MessageError if it does not decode)."""
    if "fields" in record:
        f = record["fields"]
        return Message(f["pubtime"], f["base_url"], f["relpath"], dict(f["headers"]),
                       topic=f.get("topic", ""), exchange=f.get("exchange", ""),
                       extras=_unjson(f.get("extras") or {}))
    return codec.decode(record["topic"], _unjson(record["headers"]),
                        base64.b64decode(record["body"]), record.get("content_type"),
                        record["exchange"])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Quarantine:
    def __init__(self, folder: str, deaths_max: int = 3, fsync: bool = True):
        self.folder = folder
        self.fsync = fsync
        self.deaths_max = deaths_max
        os.makedirs(folder, exist_ok=True)
        self._db = sqlite3.connect(os.path.join(os.path.dirname(folder), "inhand.sqlite3"),
                                   timeout=30, isolation_level=None,
                                   check_same_thread=False)   # one thread at a time
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")   # a process's death keeps what it wrote
        self._db.execute("CREATE TABLE IF NOT EXISTS inhand (key TEXT PRIMARY KEY, "
                         "pid INTEGER, deaths INTEGER)")
        self._looked = 0.0
        self._recover_claims()

    # -- kept aside -----------------------------------------------------------
    def keep(self, record: dict, stage: str, reason: str, relpath: str = "") -> str | None:
        """Write a message aside (fsynced: it is acknowledged next); its id,
        or None when the quarantine is full."""
        ident = key_of(record)[:16]
        path = os.path.join(self.folder, f"{ident}.json")
        if not os.path.exists(path) and len(os.listdir(self.folder)) >= MAX_ENTRIES:
            log.error("quarantine %s is full (%d): %s not kept", self.folder, MAX_ENTRIES,
                      relpath or ident)
            return None
        entry = {"id": ident, "time": time.time(), "stage": stage, "reason": reason,
                 "relpath": relpath, "message": record}
        replace_synced(path, lambda f: json.dump(entry, f), self.fsync, "ascii")
        return ident

    def take_retries(self, limit: int) -> list[Job]:
        """Up to ``limit`` entries an operator marked for retry, claimed by
        this process (looked for every RETRY_EVERY seconds)."""
        now = time.monotonic()
        if limit <= 0 or now - self._looked < RETRY_EVERY:
            return []
        self._looked = now
        jobs = []
        for path in sorted(glob.glob(os.path.join(self.folder, "*.retry")))[:limit]:
            claimed = f"{path[:-len('.retry')]}.claimed-{os.getpid()}"
            try:
                os.rename(path, claimed)
                with open(claimed, encoding="ascii") as f:
                    entry = json.load(f)
                msg = message_of(entry["message"])
            except FileNotFoundError:
                continue            # another instance took it
            except (OSError, ValueError, KeyError, MessageError) as exc:
                log.error("quarantined %s cannot be taken again: %s", path, exc)
                self._restore(claimed, f"not taken again: {exc}")
                continue
            msg.received = time.time()
            jobs.append(Job(msg, claim=claimed))
            log.info("quarantined %s taken again, as the operator asked", msg.relpath)
        return jobs

    def settle(self, jobs: list[Job]) -> None:
        """These jobs are over (each done, queued for retry or kept aside
        again): their claimed entries go."""
        for j in jobs:
            if j.claim:
                _unlink(j.claim)

    def release(self, jobs: list[Job]) -> None:
        """Their batch comes again (lost connection): claims given back."""
        for j in jobs:
            if j.claim and os.path.exists(j.claim):
                os.replace(j.claim, j.claim.rsplit(".claimed-", 1)[0] + ".retry")

    def _recover_claims(self) -> None:
        """Entries claimed by a process that died: kept aside again (they
        may be what killed it), not marked for retry."""
        for path in glob.glob(os.path.join(self.folder, "*.claimed-*")):
            pid = path.rsplit("-", 1)[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                self._restore(path, f"in hand when process {pid} died, retried by the operator")

    def _restore(self, claimed: str, note: str) -> None:
        plain = claimed.split(".claimed-", 1)[0] + ".json"
        try:
            with open(claimed, encoding="ascii") as f:
                entry = json.load(f)
            entry["reason"] = f"{entry.get('reason', '')}; {note}"
            with open(claimed, "w", encoding="ascii") as f:
                json.dump(entry, f)
        except (OSError, ValueError):
            pass
        os.replace(claimed, plain)

    # -- deaths -----------------------------------------------------------------
    def in_hand(self, jobs: list[Job]) -> tuple[list[Job], bool]:
        """Record the broker messages of a batch as in this process's hand.
        Returns those that came again after ``deaths_max`` processes died
        with them in hand, and whether the batch holds suspects: messages
        that were in hand when a process died, but not often enough to be
        kept aside. A batch with suspects is handled one message at a time
        (``hold``, ``let_go``), so that the next death is charged to the
        message that caused it, not to those that shared its batch."""
        tracked = [j for j in jobs if j.msg.delivery_tag is not None]
        if not tracked:
            return [], False
        poisoned = []
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for j in tracked:
                j.key = key_of(record_of(j.msg))
                j.deaths = 0
                if j.msg.redelivered:
                    row = db.execute("SELECT pid, deaths FROM inhand WHERE key = ?",
                                     (j.key,)).fetchone()
                    if row is not None:   # pid 0: received, but not in hand
                        j.deaths = row[1] + (1 if row[0] and not _pid_alive(row[0]) else 0)
                if self.deaths_max and j.deaths >= self.deaths_max:
                    poisoned.append(j)
            careful = any(j.deaths for j in tracked if not any(j is p for p in poisoned))
            pid = 0 if careful else os.getpid()
            db.executemany("INSERT OR REPLACE INTO inhand VALUES (?, ?, ?)",
                           [(j.key, pid, j.deaths) for j in tracked])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return poisoned, careful

    def hold(self, job: Job) -> None:
        """``job`` alone is in this process's hand now (careful handling)."""
        if job.key:
            self._db.execute("UPDATE inhand SET pid = ? WHERE key = ?", (os.getpid(), job.key))

    def let_go(self, job: Job) -> None:
        """``job`` was handled (not acknowledged yet): a death now is not its."""
        if job.key:
            self._db.execute("UPDATE inhand SET pid = 0 WHERE key = ?", (job.key,))

    def out_of_hand(self, jobs: list[Job]) -> None:
        """The batch is over (acknowledged, or given back alive)."""
        keys = [(j.key,) for j in jobs if j.key]
        if keys:        # one transaction (autocommit would make one a row)
            sqlite_many(self._db, "DELETE FROM inhand WHERE key = ?", keys)

    def close(self) -> None:
        self._db.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- the operator's side (sarra quarantine) ------------------------------------

def entries(folder: str) -> list[dict]:
    """Every entry of a quarantine folder, oldest first, with its state:
    'kept', 'retry' (marked) or 'claimed' (an instance has it)."""
    out = []
    for path in glob.glob(os.path.join(folder, "*")):
        name = os.path.basename(path)
        state = "kept" if name.endswith(".json") else "retry" if name.endswith(".retry") \
            else "claimed" if ".claimed-" in name else None
        if state is None:
            continue
        try:
            with open(path, encoding="ascii") as f:
                entry = json.load(f)
        except (OSError, ValueError):
            continue
        entry["state"], entry["path"] = state, path
        out.append(entry)
    return sorted(out, key=lambda e: e.get("time", 0))


def mark(folder: str, ids: list[str], action: str) -> int:
    """``retry`` or ``drop`` the entries named (``all``: every one); how many."""
    done = 0
    for e in entries(folder):
        if (ids != ["all"] and e["id"] not in ids) or e["state"] == "claimed":
            continue
        if action == "drop":
            _unlink(e["path"])
        elif e["state"] == "kept":
            os.replace(e["path"], e["path"][:-len(".json")] + ".retry")
        done += 1
    return done
