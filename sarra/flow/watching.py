"""dd_watch's gather stage: changes in watched trees become posts.

A watcher thread (sarra.watch.observer) queues ``Change`` values; ``get``
drains them and decides what is ready to announce:

* a file is announced once complete: at once when it is closed after
  writing (OS events), else when nothing happened to it for ``settle``
  seconds (polling; hard links and files moved in from outside); with
  ``inflight N`` (a number) only when it has been unchanged for N seconds;
* names matching a temporary pattern (``temp_pattern``, the ``inflight``
  suffix) are never announced; a move from such a name is a new file;
* a deletion or a rename of an announced file is announced at once (a
  rename as the two posts of doc/protocol.md §2.6: the old name with ``R`` and
  ``newname``, the new name with ``oldname`` and the sum it already had);
* what was announced (path, size, mtime, sum) is kept in a small database
  in the state directory; the changes of a batch are committed only when
  its posts are confirmed (``ack``), so a restart re-announces what was
  not confirmed and nothing that did not change;
* with a lease (``vip``: sarra/broker/lease.py), only the instance holding
  it watches; another that takes it over starts as a restart does, from
  the record the last holder committed (the state directory is the
  configuration's: instances on two machines share it as they share the
  tree), so it announces what came meanwhile and nothing twice.
"""
import fnmatch
import logging
import os
import queue
import re
import stat
import time
from dataclasses import dataclass

from ..config import paths
from ..errors import ConfigError, MessageError
from ..message import Message
from ..watch.observer import start_watcher
from ..watch.snapshot import CLOSED, CREATED, DELETED, MODIFIED, MOVED, Change, rows
from ..watch.state import Posted, WatchState
from .announce import delete_message, file_messages, relpath_for
from .contracts import Malformed
from .filter import choose
from .recorded import RecordedBatches

log = logging.getLogger(__name__)

SETTLE = 1.0          # seconds without news before a file nobody closed is complete
MAX_HASHED = 500      # files checksummed per batch (deletes and renames are not limited)


@dataclass
class Pending:
    last: float               # monotonic time of the last change seen
    closed: bool = False      # closed after writing, nothing since
    wrote: bool = False       # written since the last close: wait for the close


def temp_globs(cfg) -> list[str]:
    """Basename patterns never announced: ``temp_pattern`` and the inflight name."""
    globs = list(cfg.temp_pattern)
    inflight = str(cfg.inflight or "")
    if inflight == ".":
        globs.append(".*")
    elif inflight and inflight.upper() != "NONE" and _number(inflight) is None \
            and not inflight.endswith("/"):
        globs.append("*" + inflight)
    return globs


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class WatchSource(RecordedBatches):
    """The gather stage of dd_watch (a contracts.Source; ack and rewind:
    RecordedBatches)."""
    broker = None
    done = False           # a watch never ends by itself

    def __init__(self, cfg, tool: str = "watch", lease=None):
        self.cfg = cfg
        self.lease = lease
        if not cfg.path:
            raise ConfigError("nothing to watch: give one or more 'path DIR'", option="path")
        self.roots = [os.path.abspath(p) for p in cfg.path]
        for root in self.roots:
            if not os.path.isdir(root):
                raise ConfigError(f"{root} is not a directory", option="path")
        self.events = set(cfg.events.split("|"))
        self.globs = temp_globs(cfg)
        # one expression for them all: judged for every file of the tree at start
        self._glob = re.compile("|".join(fnmatch.translate(g) for g in self.globs)).match \
            if self.globs else (lambda name: None)
        inflight = str(cfg.inflight or "")
        self.temp_dir = inflight.rstrip("/") if inflight.endswith("/") else None
        self.min_age = _number(str(cfg.inflight)) or 0.0
        self.interval = cfg.sleep or 1.0
        self._follow = bool(cfg.follow_symlinks or cfg.realpath_post)   # links followed
        self.state_file = paths.state_path(tool, cfg.key, "watch.db")
        self.changes: queue.Queue[Change] = queue.Queue()
        self.pending: dict[str, Pending] = {}
        self.ready: list[Message] = []     # built, not yet handed out (deletes, renames)
        self.batch: list[Message] = []     # handed out, not yet acknowledged
        self.state: WatchState | None = None
        self.watcher = None
        self.stats = {"ignored": 0, "unchanged": 0}

    # -- life cycle ----------------------------------------------------------
    def connect(self) -> None:
        """Start watching (once: a broker reconnect does not restart it);
        with a lease, once it is held (``get``)."""
        if self.lease is None:
            self._start()

    def _start(self) -> None:
        if self.watcher is None:
            self.state = WatchState(self.state_file)
            self.watcher = start_watcher(self.roots, self.changes, self.cfg.force_polling,
                                         self.interval, self._follow)
            self.settle = max(SETTLE, 1.5 * self.interval) if self.polling else SETTLE
            log.info("watching %s with %s", ", ".join(self.roots), self.watcher.name)
            self._catch_up()

    def exchanges(self) -> list[str]:
        return []

    @property
    def polling(self) -> bool:
        return self.watcher is not None and self.watcher.name == "polling"

    def close(self) -> None:
        self._stop()
        if self.lease is not None:
            self.lease.close()

    def _stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.state is not None:
            self.state.rollback()   # what was not confirmed is announced again next time
            self.state.close()
            self.state = None
        self.changes = queue.Queue()
        self.pending, self.ready, self.batch = {}, [], []

    def _active(self, timeout: float) -> bool:
        """Whether this instance watches now: it holds the lease (or there is
        none). Taking the lease starts the watch as a restart would; losing
        it stops it, what was not confirmed left to the next holder."""
        if self.lease is None:
            return True
        if self.lease.held(0.0 if self.watcher is not None else min(timeout, 1.0)):
            if self.watcher is None:
                self._start()
            return True
        if self.watcher is not None:
            log.warning("the lease is lost: not watching; what was not confirmed is left "
                        "to the instance that holds it")
            self._stop()
        return False

    def _catch_up(self) -> None:
        """Compare the tree with what was announced before: on a first run
        record it (or announce it all with post_on_start); on a restart
        announce what changed, appeared or vanished meanwhile."""
        first_run = not self.state.started
        announce = self.cfg.post_on_start or not first_run
        listing = rows(self.roots, self._follow, self._glob, self.temp_dir)
        if not announce:
            # a first start: what is there is the baseline, recorded as it
            # is walked (an empty record: nothing to compare, nothing gone)
            files, ignored = self.state.record_listing(listing)
            self.stats["ignored"] += ignored
            self.state.commit()
            self.state.mark_started()
            log.info("%d files in the tree, %d to announce, %d announced before",
                     files, len(self.pending) + len(self.ready), len(self.state))
            return
        # the listing goes to SQLite as it is walked: a tree of 100,000 files
        # is compared with the record there, never held in memory
        files, ignored = self.state.load_listing(listing)
        self.stats["ignored"] += ignored
        due = time.monotonic() - self.settle
        for path in self.state.changed():
            self.pending[path] = Pending(due)
        self.state.commit()            # (nothing posted yet)
        self.state.mark_started()
        for root in self.roots:        # deletions: committed when their posts are (ack)
            for path, row in self.state.vanished(root):
                self._deleted(path, row)
        self.state.drop_listing()
        log.info("%d files in the tree, %d to announce, %d announced before",
                 files, len(self.pending) + len(self.ready), len(self.state))

    # -- the Flow's source interface --------------------------------------------
    def get(self, timeout: float) -> tuple[list[Message], list[Malformed]]:
        if not self._active(timeout):
            return [], []
        deadline = time.monotonic() + timeout
        out: list[Message] = []
        while True:
            self._drain(0.0)
            out = self.ready + self._build_due()
            self.ready = []
            now = time.monotonic()
            if out or now >= deadline:
                break
            self._drain(min(deadline, self._next_due()) - now)
        self.batch = out
        return out, []

    # -- taking changes in ------------------------------------------------------
    def _drain(self, wait: float) -> None:
        try:
            change = self.changes.get(timeout=wait) if wait > 0 else self.changes.get_nowait()
        except queue.Empty:
            return
        while True:
            self._take(change)
            try:
                change = self.changes.get_nowait()
            except queue.Empty:
                return

    def _take(self, c: Change) -> None:
        if c.kind == MOVED:
            if c.is_dir:
                for path, row in self.state.under(c.path):
                    self._moved(path, c.dest + path[len(c.path):], row)
            else:
                self._moved(c.path, c.dest, self.state.get(c.path))
        elif c.kind == DELETED:
            if c.is_dir:
                for path, row in self.state.under(c.path):
                    self._deleted(path, row)
                prefix = c.path.rstrip("/") + "/"
                for path in [p for p in self.pending if p.startswith(prefix)]:
                    del self.pending[path]
            else:
                self._deleted(c.path, self.state.get(c.path))
        elif not c.is_dir and not self._ignored(c.path):
            self._touched(c.path, c.kind)

    def _touched(self, path: str, kind: str) -> None:
        p = self.pending.get(path)
        if p is None:
            p = self.pending[path] = Pending(time.monotonic())
        p.last = time.monotonic()
        if kind == CLOSED:
            p.closed, p.wrote = True, False
        elif kind == MODIFIED:
            p.closed, p.wrote = False, not self.polling
        elif kind == CREATED:
            p.closed = False

    def _deleted(self, path: str, row: Posted | None) -> None:
        self.pending.pop(path, None)
        if row is None:
            return
        self.state.remove(path)
        if row.sum and "delete" in self.events and self._accepted(path):
            self.ready.append(delete_message(self.cfg, path))

    def _moved(self, src: str, dst: str, row: Posted | None) -> None:
        pend = self.pending.pop(src, None)
        if self._ignored(dst):
            self._deleted(src, row)
            return
        announced = row is not None and row.sum and not self._ignored(src)
        if not announced or "delete" not in self.events:
            if row is not None:
                self.state.remove(src)
            # a file new to the readers: complete, since it was renamed into place
            self.pending[dst] = Pending(time.monotonic(), closed=not (pend and pend.wrote),
                                        wrote=bool(pend and pend.wrote))
            return
        try:
            st = os.lstat(dst)
        except FileNotFoundError:
            self._deleted(src, row)
            return
        same = (st.st_size, st.st_mtime_ns) == (row.size, row.mtime_ns)
        if not self._accepted(dst):
            self._deleted(src, row)
            return
        try:   # a whole file keeps its sum; blocks are hashed again (row has one sum)
            new = file_messages(self.cfg, dst, known_sum=row.sum if same else None)
            if len(new) > 1:
                new = file_messages(self.cfg, dst)
        except (OSError, MessageError) as exc:
            log.warning("cannot announce %s: %s", dst, exc)
            self._deleted(src, row)
            return
        old = delete_message(self.cfg, src)
        old.headers["newname"] = new[0].relpath
        for m in new:
            m.headers["oldname"] = old.relpath
        self.state.remove(src)
        self._record(dst, st, new[0])
        self.ready += ([old] if self._accepted(src) else []) + new
        if pend is not None and pend.wrote:
            self.pending[dst] = pend

    # -- deciding and building --------------------------------------------------
    def _ignored(self, path: str) -> bool:
        head, _, name = path.rpartition("/")
        if (self._glob(name) is not None
                or (self.temp_dir and head.rpartition("/")[2] == self.temp_dir)):
            self.stats["ignored"] += 1
            return True
        return False

    def _accepted(self, path: str) -> bool:
        """accept/reject clauses, on the URL the file would be announced with."""
        if not self.cfg.masks:
            return True
        try:
            rel = relpath_for(path, self.cfg.post_base_dir, self.cfg.post_base_url or "")
        except MessageError as exc:
            log.warning("not announced: %s", exc)
            return False
        probe = Message("", self.cfg.post_base_url or "", rel)
        return choose(probe, self.cfg.masks, self.cfg.accept_unmatch is not False, None)[0]

    def _is_due(self, p: Pending, now: float) -> bool:
        if self.min_age:
            return now - p.last >= self.min_age
        if p.closed:
            return True
        return not p.wrote and now - p.last >= self.settle

    def _next_due(self) -> float:
        """When the next pending file may become due (for waiting)."""
        later = time.monotonic() + 1.0
        wait = self.min_age or self.settle
        for p in self.pending.values():
            if not p.wrote or self.min_age:
                later = min(later, p.last + wait)
        return later

    def _build_due(self) -> list[Message]:
        now = time.monotonic()
        due = [path for path, p in self.pending.items() if self._is_due(p, now)]
        out: list[Message] = []
        for path in due[:MAX_HASHED]:
            out += self._build(path)
        return out

    def _build(self, path: str) -> list[Message]:
        """The posts for a complete file (one, or one per block), or none
        (gone, unchanged, changing)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.pending.pop(path, None)
            return []
        row = self.state.get(path)
        islink = stat.S_ISLNK(st.st_mode)
        if (not islink and not stat.S_ISREG(st.st_mode)) or self._unchanged(path, st, row):
            self.pending.pop(path, None)
            return []
        if self.min_age and time.time() - st.st_mtime < self.min_age:
            self.pending[path].last = time.monotonic()
            return []
        event = "link" if islink else "create" if row is None or not row.sum else "modify"
        if event not in self.events or not self._accepted(path):
            self.pending.pop(path, None)
            return []
        try:
            msgs = file_messages(self.cfg, path)
            after = os.lstat(path)
        except (OSError, MessageError) as exc:
            log.warning("cannot announce %s: %s", path, exc)
            self.pending.pop(path, None)
            return []
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            self.pending[path] = Pending(time.monotonic())   # written while we hashed it
            return []
        self.pending.pop(path, None)
        self._record(path, st, msgs[0])
        return msgs

    def _unchanged(self, path: str, st: os.stat_result, row: Posted | None) -> bool:
        if row is None:
            return False
        if stat.S_ISLNK(st.st_mode):
            try:
                return row.link == os.readlink(path)
            except OSError:
                return False
        if (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns):
            self.stats["unchanged"] += 1
            return True
        return False

    def _record(self, path: str, st: os.stat_result, msg: Message) -> None:
        self.state.put(path, st.st_size, st.st_mtime_ns, msg.headers["sum"],
                       msg.headers.get("link"))
