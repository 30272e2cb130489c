"""The subscriber's work: apply one message to the local tree.

A file is downloaded to an inflight name, checksummed while it streams,
checked for size and sum, given its mode and mtime, and only then renamed to
its final name. Deletes, symlinks and directories are applied directly.
Every path goes through ``safe_join`` when the target is computed, and is
resolved again right before each operation (sarra/containment.py): nothing
lands outside the directory, and links obey the link rule there, so that no
later link, rename or delete makes a path of the tree resolve outside it.
An OSError of the local side becomes a LocalError (500, or 507 when the
disk is full), retried; the transfer's own failures stay the source's
(TransferError, 499...). Only inflight files this configuration made and
recorded (flow/inflight.py) are ever swept as stale.
"""
import logging
import os
import shutil
import stat
import time
from .. import checksum, containment
from ..config import mask, paths, url_user
from ..errors import (ChecksumError, ConfigError, LocalError, MessageError, TransferError,
                      UnsafePathError)
from ..message import Message, parse_time, safe_join
from ..parts import Parts, part_suffix
from ..transfer import SCHEMES, copy, open_inflight, remove_quietly, scheme_of
from ..transfer.base import Limits
from .assembly import Record, State, file_end, older, version_of
from .contracts import Done, Target
from .durable import Pending
from .filter import Placement, placed_relpath, resolve
from .inflight import InflightFiles

log = logging.getLogger(__name__)

AHEAD_MAX = 1 << 20     # bytes: files up to this size are asked for ahead of their turn


def inflight_name(path: str, inflight: str | None) -> str:
    """Where a file is written before it is complete (doc/user-guide.md §6)."""
    if not inflight or inflight.upper() == "NONE":
        return path
    head, tail = os.path.split(path)
    if inflight == ".":
        return os.path.join(head, "." + tail)
    if inflight.endswith("/"):
        return os.path.join(head, inflight, tail)
    return path + inflight


def verify(msg: Message, summer, got: int, size: int | None) -> None:
    """``got`` bytes came with this checksum: as announced? (TransferError on
    the size, ChecksumError on the sum)."""
    if size is not None and got != size:
        raise TransferError(f"size {got} differs from announced {size}")
    if summer is None:
        return
    method, value = msg.sum
    if method != "z" and summer.hexdigest() != value.lower():
        raise ChecksumError(f"checksum mismatch ({method}): announced {value[:16]}..., "
                            f"received {summer.hexdigest()[:16]}...")


class Downloader:
    """Work stage of subscribe and sara. ConfigError (option ``directory``)
    when a destination directory cannot be made or written into."""

    def __init__(self, cfg, tick=None, throttle=None):
        self.cfg = cfg
        self._tick = tick
        self._throttle = throttle     # byte rate, shared by the instances
        self._transfers: dict[str, object] = {}
        for directory in dict.fromkeys([cfg.directory, *(m.directory for m in cfg.masks)]):
            check_directory(directory)
        self._ours = InflightFiles(lambda: _record_path(cfg))   # ours, for the sweep
        # what the batch changed, synced before its messages are acknowledged
        self.pending = Pending(cfg.fsync)

    def ahead(self, msgs: list[Message]) -> None:
        """The batch's downloads about to be made, in order: small whole
        files over http(s) are asked for ahead of their turn on the kept
        connections (HttpTransfer.plan), the server working on the next
        answers while this one is read. A hint only: a file then skipped
        (already there, refused) costs its connection, never a wrong answer."""
        gets: dict[str, list] = {}
        for m in msgs:
            try:
                if m.operation != "file":
                    continue
                p = m.parts
                if p is not None and not p.is_whole:
                    continue
                size = p.file_size if p is not None else None
                if size is None or size > AHEAD_MAX:
                    continue
                gets.setdefault(scheme_of(m.url), []).append((m.url, 0, size))
            except (MessageError, ValueError):
                continue                # (its own work says what is wrong)
        # every transfer's plan replaced, an empty one too (the last batch's
        # is over), and one failing is only that plan lost
        for scheme in dict.fromkeys([*gets, *self._transfers]):
            try:
                plan = getattr(self.transfer(scheme + ":")._transfer, "plan", None)
                if plan is not None:
                    plan(gets.get(scheme, []))
            except Exception as exc:
                log.debug("%s: not asked for ahead: %s", scheme, exc)

    def sync(self) -> None:
        """Put what the batch changed on stable storage (flow/durable.py):
        the flow calls it once a batch, before posting and acknowledging."""
        self.pending.sync()

    def close(self) -> None:
        for t in self._transfers.values():
            t.close()
        self._transfers.clear()
        self._ours.close()

    def transfer(self, url: str):
        scheme = scheme_of(url)
        if scheme not in self._transfers:
            cls = SCHEMES.get(scheme) if scheme in SCHEMES else None
            if cls is None:
                raise TransferError(f"unsupported URL scheme '{scheme}'", code=503,
                                    recoverable=False)
            self._transfers[scheme] = cls(timeout=self.cfg.timeout,
                                          credentials=self.cfg.credentials, tls=self.cfg.tls,
                                          **self._as_user(scheme))
        return _Source(self._transfers[scheme])

    def _as_user(self, scheme: str) -> dict:
        """http(s): the broker user, whose credentials.conf line for the
        server (if any) fetches URLs that name no user (transfer/http.py)."""
        if scheme not in ("http", "https"):
            return {}
        urls = self.cfg.resolve_urls("broker") if self.cfg.broker else []
        return {"user": url_user(urls[0])} if urls else {}

    def target(self, msg: Message, placement: Placement) -> Target:
        """Where ``msg`` goes (UnsafePathError if that is outside the directory)."""
        placement = resolve(placement, msg, self.cfg)
        root = placement.directory
        return Target(root, safe_join(root, placed_relpath(msg, placement)))

    def apply(self, msg: Message, target: Target) -> Done:
        """Do what ``msg`` announces at ``target``.

        Raises MessageError (bad message: not worth retrying; UnsafePathError,
        a path or link that would lead outside the directory, now), TransferError
        or ChecksumError (worth retrying when ``recoverable``); a failure of
        the local side is a LocalError (a TransferError: 500, 507 disk full).
        """
        try:
            return self._apply(msg, target)
        except OSError as exc:
            raise LocalError.of(exc, target.path) from exc

    def _apply(self, msg: Message, target: Target) -> Done:
        op, tree = msg.operation, containment.Tree(target.root)
        local = tree.resolve(target.path)   # now, not when the target was computed
        if op == "file":
            # checked against what was announced (not a sum computed on download)
            verified = checksum.verify_method(msg.headers.get("sum", "")) is not None \
                and msg.sum[0] != "z"
            done = self._file(msg, local, tree)
            return self._delete_source(msg, done) if self.cfg.delete and verified else done
        if op == "delete":
            if target.rename_to is not None and os.path.lexists(local):
                return self._rename(tree, local, target.rename_to)
            return self._delete(local)
        if op == "link":
            return self._link(msg, tree, local)
        if op == "mkdir":
            existed = os.path.isdir(local)
            tree.make_dirs(local, self.cfg.default_dir_mode)
            if existed:
                return Done(202, "Accepted: directory exists")
            self.pending.add(local)
            return Done(201, "Created")
        if op == "rmdir":
            try:
                os.rmdir(local)
            except FileNotFoundError:
                return Done(202, "Accepted: directory already absent")
            except OSError as exc:
                raise MessageError(f"cannot remove directory: {exc.strerror}", "relpath")
            self.pending.add(local)
            return Done(201, "Removed")
        raise MessageError(f"unknown operation {op}", "sum")

    # -- operations ------------------------------------------------------
    def _file(self, msg: Message, local: str, tree: containment.Tree) -> Done:
        parts = msg.parts
        if parts is not None and not parts.is_whole:
            return self._block(msg, local, parts, tree)
        method = checksum.verify_method(msg.headers.get("sum", ""))
        seen = _stat(local)
        if not self.cfg.overwrite and self._same(local, seen, msg, method):
            return Done(304, "Not modified: identical file already present")
        size = parts.file_size if parts is not None else None
        tmp = self._inflight(tree, local)
        summer = checksum.new(method) if method else None
        with open_inflight(tmp, self.cfg.timeout) as out:
            if tmp != local:
                self._ours.made(tmp, out.fileno())
            stream = None
            try:
                # another instance may have put it in place while we waited
                now = _stat(local)
                if (not self.cfg.overwrite and now != seen
                        and self._same(local, now, msg, method)):
                    if tmp != local:
                        self._discard(tree, tmp, out.fileno())
                        self._ours.gone(tmp)
                    return Done(304, "Not modified: identical file already present")
                stream = self.transfer(msg.url).open(msg.url, 0, size)
                got = copy(stream, out, size, [summer] if summer else [],
                           self.cfg.bufsize, self._tick, self._throttle,
                           Limits.of(self.cfg, out.fileno(), sized=size is not None))
                out.flush()
                verify(msg, summer, got, size)
                self._set_metadata(msg, tmp, out.fileno())   # the file written, wherever
                if tmp != local:
                    final = tree.resolve(local)   # checked again, now
                    os.replace(tmp, final)   # still locked: a waiting writer starts over
                    self._ours.gone(tmp, final)
                    self.pending.add(final)
                else:
                    self.pending.add(tmp)
            except BaseException:
                if tmp != local:
                    self._discard(tree, tmp, out.fileno())
                    self._ours.gone(tmp)
                raise
            finally:
                if stream is not None:
                    stream.close()
        if summer is not None and msg.sum[0] == "z":
            msg.headers["sum"] = summer.header  # checksum on download: tell downstream
        if method is None:
            return Done(201, f"Downloaded (not verified: sum method {msg.sum[0]})")
        return Done(201, "Downloaded")

    def _delete_source(self, msg: Message, done: Done) -> Done:
        """The ``delete`` option: the file at its source is removed once the
        local copy is known to hold exactly what was announced (its sum
        checked: a whole file downloaded or found identical, or the block
        that completed it). A failed removal is told (a warning, and in the
        log message's text); the download stands."""
        parts = msg.parts
        whole = parts is None or parts.is_whole
        if not ((whole and done.code in (201, 304)) or (done.completed and done.code == 201)):
            return done
        try:
            removed = self.transfer(msg.url).remove(msg.url)
        except TransferError as exc:
            log.warning("%s: source not deleted: %s", msg.relpath, exc)
            return done._replace(text=f"{done.text}; source not deleted: {exc}")
        log.info("%s: deleted at the source %s", msg.relpath, mask(msg.url))
        return done._replace(text=f"{done.text}; source deleted" if removed else
                             f"{done.text}; source already gone")

    # -- blocks ------------------------------------------------------------
    def _block(self, msg: Message, local: str, p: Parts, tree: containment.Tree) -> Done:
        """Fetch one block into the inflight file at its offset, verify it,
        record it; the writer of the last missing block puts the file in
        place (its ``Done.completed`` says so, for on_file and re-posts)."""
        method = checksum.verify_method(msg.headers.get("sum", ""))
        label = f"block {p.bno + 1}/{p.blktot}"
        if not self.cfg.overwrite and self._same_block(local, msg, p, method):
            return self._already_whole(msg, label)
        tmp = self._inflight(tree, local)
        record_path = tmp + ".blocks" if tmp != local else local + ".blocks"
        version = version_of(msg, p)
        with Record(record_path) as rec:
            state = rec.read()
            if state is None and self._same_block(local, msg, p, method):
                rec.remove()     # the file was completed while we looked
                return self._already_whole(msg, label)
            if state is not None and state.version != version and \
                    older(version, state.version):
                raise TransferError(f"{label} of an older version than the one being "
                                    f"put together: dropped", code=409, recoverable=False)
            if state is None or state.version != version or len(state.done) != p.blktot:
                state = State(version, [False] * p.blktot)   # a new file, or a new version
                if tmp != local:
                    remove_quietly(tmp)
                    self._ours.gone(tmp)
                rec.write(state)
            elif state.done[p.bno]:
                return Done(304, f"Not modified: {label} already received")
        summer = checksum.new(method) if method else None
        offset = p.offset if p.method != "p" else 0   # a 'p' post names the part file itself
        if self.cfg.inplace:
            fd = os.open(tree.resolve(tmp), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            try:
                if tmp != local:
                    self._ours.made(tmp, fd)
                got = self._fetch(msg, offset, p.length, _At(fd, p.offset), summer)
            finally:
                os.close(fd)
            verify(msg, summer, got, p.length)
            self.pending.add(tmp)
        else:   # a part file of its own, under its inflight name until verified
            part = local + part_suffix(p, msg.sum[0])
            part_tmp = inflight_name(part, self.cfg.inflight)
            with open_inflight(tree.resolve(part_tmp), self.cfg.timeout) as out:
                if part_tmp != part:
                    self._ours.made(part_tmp, out.fileno())
                try:
                    got = self._fetch(msg, offset, p.length, out, summer)
                    out.flush()
                    verify(msg, summer, got, p.length)
                    if part_tmp != part:
                        os.replace(part_tmp, tree.resolve(part))
                        self._ours.gone(part_tmp)
                    self.pending.add(part)
                except BaseException:
                    self._discard(tree, part_tmp, out.fileno())
                    self._ours.gone(part_tmp)
                    raise
        return self._block_done(msg, local, tmp, record_path, version, p, label, tree)

    def _fetch(self, msg: Message, offset: int, length: int, out, summer) -> int:
        stream = self.transfer(msg.url).open(msg.url, offset, length)
        try:
            disk = out._fd if isinstance(out, _At) else out.fileno()
            return copy(stream, out, length, [summer] if summer else [],
                        self.cfg.bufsize, self._tick, self._throttle,
                        Limits.of(self.cfg, disk))
        finally:
            stream.close()

    def _join_parts(self, local: str, tmp: str, msg: Message, p: Parts,
                    tree: containment.Tree) -> None:
        """Put the part files of a complete file together into ``tmp``
        (every path resolved in the tree now: its directory may have been
        swapped for a link since the first block)."""
        parts = [tree.resolve(local + part_suffix(Parts(p.method, p.bsz, p.blktot, p.brem, n),
                                                  msg.sum[0]))
                 for n in range(p.blktot)]
        tmp = tree.resolve(tmp)
        remove_quietly(tmp)     # a symlink planted there is removed, never written through
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        if tmp != local:
            self._ours.made(tmp, fd)
        with os.fdopen(fd, "wb") as out:
            for n, path in enumerate(parts):
                with open(path, "rb") as f:
                    out.seek(n * p.bsz)
                    shutil.copyfileobj(f, out, self.cfg.bufsize)
        for path in parts:
            remove_quietly(path)

    @staticmethod
    def _already_whole(msg: Message, label: str) -> Done:
        """The final file already holds this block. When the broker gives the
        message again, the post that announced the whole file may have been
        lost with its batch: count it as completing, so it is announced again."""
        return Done(304, f"Not modified: {label} already in the file",
                    completed=msg.redelivered)

    def _block_done(self, msg: Message, local: str, tmp: str, record_path: str,
                    version: str, p: Parts, label: str, tree: containment.Tree) -> Done:
        # resolved now: the directory may have been swapped for a link out of
        # the tree while the block was fetched (never a record read, a file
        # truncated or given a mode outside it)
        with Record(tree.resolve(record_path)) as rec:
            state = rec.read()
            if state is None or state.version != version:
                raise TransferError(f"{label}: another version of the file started "
                                    f"meanwhile", recoverable=False, code=409)
            state.done[p.bno] = True
            state.end = file_end(p) or state.end
            if not state.complete:
                rec.write(state)
                if not self.cfg.inplace:
                    return Done(307, f"Insertion deferred: {label} kept as a part file")
                return Done(201, f"Inserted {label}")
            if not self.cfg.inplace:
                self._join_parts(local, tmp, msg, p, tree)
            fd = os.open(tree.resolve(tmp), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if state.end:
                    os.ftruncate(fd, state.end)
                self._set_metadata(msg, tmp, fd)
            finally:
                os.close(fd)
            if tmp != local:
                final = tree.resolve(local)   # checked again, now
                os.replace(tmp, final)
                self._ours.gone(tmp, final)
            self.pending.add(local)
            rec.remove()
        return Done(201, f"Downloaded: {label} completed the file", completed=True)

    def _same_block(self, local: str, msg: Message, p: Parts, method: str | None) -> bool:
        """The final file is already there with this block's bytes."""
        st = _stat(local)
        if method is None or st is None or not stat.S_ISREG(st.st_mode):
            return False
        if self.cfg.preserve_time and msg.headers.get("mtime"):
            try:   # the same version: another one of the same size differs elsewhere
                if abs(st.st_mtime - parse_time(msg.headers["mtime"], "mtime")) > 0.002:
                    return False
            except MessageError:
                return False
        end = file_end(p)
        if (end is not None and st.st_size != end) or st.st_size < p.offset + p.length:
            return False
        want = f"{method},{msg.sum[1].lower()}"
        return checksum.sum_file(local, method, p.offset, p.length, self.cfg.bufsize) == want

    def _inflight(self, tree: containment.Tree, local: str) -> str:
        """The inflight name of ``local`` (resolved just now), its directory
        made in the tree."""
        tmp = inflight_name(local, self.cfg.inflight)
        folder = os.path.dirname(tmp)
        where = tree.make_dirs(folder, self.cfg.default_dir_mode,
                               resolved=folder == os.path.dirname(local))
        return os.path.join(where, os.path.basename(tmp))

    def clean_stale(self, age: float) -> int:
        """Remove the inflight files this configuration made and recorded
        (flow/inflight.py: this process's, and those a killed process of the
        configuration left) that are older than ``age`` seconds and that no
        writer holds. Nothing else: a delivered file named like an inflight
        file is never touched. A file being put together from blocks (its
        ``.blocks`` record beside it) is not stale."""
        removed = self._ours.sweep(age, keep=lambda path: os.path.exists(path + ".blocks"))
        if removed:
            log.info("removed %d stale inflight files", removed)
        return removed

    @staticmethod
    def _same(local: str, st: os.stat_result | None, msg: Message,
              method: str | None) -> bool:
        """True when ``local`` (whose lstat is ``st``) already holds exactly
        the announced content."""
        if method is None or msg.sum[0] == "z" or st is None:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        if msg.size is not None and st.st_size != msg.size:
            return False
        return checksum.sum_file(local, method) == f"{method},{msg.sum[1].lower()}"

    @staticmethod
    def _discard(tree: containment.Tree, tmp: str, fd: int) -> None:
        """Remove the inflight file ``tmp`` that failed, open on ``fd``: at
        the name it has now (the directory it was made in may have been
        moved, and ``tmp`` replaced by a link since), if that is still in
        the tree; otherwise it is left where it is (to the stale sweep,
        which removes only the very file it recorded), and nothing outside
        the tree is removed for it."""
        where = tmp
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
        if where.endswith(" (deleted)"):
            return
        try:
            where = tree.resolve(where)
        except UnsafePathError:
            log.warning("%s not removed: it resolves outside %s now", tmp, tree)
            return
        remove_quietly(where)

    def _set_metadata(self, msg: Message, path: str, fd: int | None = None) -> None:
        """The post's mode and times given to the file at ``path``, or when
        it is open, to the file on ``fd`` (never to what the path names
        meanwhile: its directory may have been replaced by a link)."""
        h = msg.headers
        if fd is not None:
            path = fd
        if self.cfg.preserve_mode and h.get("mode"):
            try:
                os.chmod(path, int(h["mode"], 8) & 0o777)
            except ValueError:
                log.warning("%s: ignoring bad mode header '%s'", msg.relpath, h["mode"])
        elif self.cfg.default_mode:
            os.chmod(path, self.cfg.default_mode)
        if self.cfg.preserve_time and h.get("mtime"):
            try:
                mtime = parse_time(h["mtime"], "mtime")
                atime = parse_time(h["atime"], "atime") if h.get("atime") else mtime
            except MessageError as exc:
                log.warning("%s: ignoring %s", msg.relpath, exc)
            else:
                os.utime(path, (atime, mtime))

    def _delete(self, local: str) -> Done:
        try:
            if os.path.isdir(local) and not os.path.islink(local):
                raise MessageError("a remove (R) names a directory", "sum")
            os.unlink(local)
        except FileNotFoundError:
            return Done(202, "Accepted: already absent")
        self.pending.add(local)
        return Done(201, "Deleted")

    def _rename(self, tree: containment.Tree, local: str, new: str) -> Done:
        """Move ``local`` to ``new``. A symbolic link is moved only if it
        obeys the link rule at its new place (else UnsafePathError, and it
        stays where it was)."""
        st = os.lstat(local)
        if stat.S_ISDIR(st.st_mode):
            raise MessageError("a rename (R with newname) names a directory", "sum")
        where = tree.make_dirs(os.path.dirname(new), self.cfg.default_dir_mode)
        name = os.path.basename(new)
        self.pending.add(local)
        self.pending.add(os.path.join(where, name))
        if not stat.S_ISLNK(st.st_mode):
            os.replace(local, os.path.join(where, name))
            return Done(201, "Renamed")
        fd = containment.open_dir(where)     # the directory the link lands in, held
        try:
            tree.check_link(where, os.readlink(local))
            os.replace(local, name, dst_dir_fd=fd)
        finally:
            os.close(fd)
        return Done(201, "Renamed")

    def _link(self, msg: Message, tree: containment.Tree, local: str) -> Done:
        """Make the symbolic link ``local`` -> the ``link`` header, if it
        obeys the link rule (sarra/containment.py) in the real directory it
        is made in, and resolves inside the tree."""
        link = msg.headers.get("link")
        if not link:
            raise MessageError("a symlink post (sum L) without a link header", "link")
        where = tree.make_dirs(os.path.dirname(local), self.cfg.default_dir_mode,
                               resolved=True)
        name = os.path.basename(local)
        fd = containment.open_dir(where)     # made and replaced in that very directory
        try:
            tree.check_link(where, link)
            tmp = f"{name}.{os.getpid()}.{time.monotonic_ns()}.lnk"
            os.symlink(link, tmp, dir_fd=fd)
            try:   # replaces the link itself, never what it points to
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                os.unlink(tmp, dir_fd=fd)
                raise
        finally:
            os.close(fd)
        self.pending.add(os.path.join(where, name))
        return Done(201, "Linked")


def check_directory(directory: str) -> None:
    """ConfigError (option ``directory``) unless ``directory`` (its part
    before any ``${...}``) can be written into: it is a directory we may
    write into, or the first of its ancestors that exists is."""
    head = directory.split("${", 1)[0]
    if head != directory:           # the directory the variable's component is in
        head = head[:head.rfind("/") + 1] if "/" in head else ""
    path = os.path.abspath(head or ".")
    probe = path
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "a dangling symbolic link" if os.path.islink(probe) else "not a directory"
        raise ConfigError(f"'{directory}' cannot be made: {probe} is {what}",
                          option="directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        made = "" if probe == path else f" (to make {path})"
        raise ConfigError(f"'{directory}': cannot write into {probe}{made}",
                          option="directory")


def _record_path(cfg) -> str:
    """This instance's record of inflight files, in the configuration's state
    directory (flow/inflight.py)."""
    return paths.state_path(cfg.tool, cfg.key, f"inflight.{paths.instance():02d}.list")


def _shown(exc: TransferError, cause: BaseException | None = None) -> TransferError:
    """``exc`` with no password in its text (it is logged and sent back in
    log messages, and a source's posted URL may hold one); then its causes,
    which may show it too, are not chained to it."""
    text = str(exc)
    if mask(text) == text:
        if cause is not None:
            exc.__cause__ = cause
        return exc
    out = TransferError(mask(text), exc.code, exc.recoverable)
    out.__cause__, out.__suppress_context__ = None, True
    return out


class _Source:
    """A transfer whose failures to read are the source's: TransferError
    (499, retried), never an OSError, which the Downloader takes for a
    failure of the local side (LocalError); no password in their texts."""

    def __init__(self, transfer):
        self._transfer = transfer

    def open(self, url: str, offset: int = 0, length: int | None = None):
        try:
            return _SourceStream(self._transfer.open(url, offset, length), url)
        except TransferError as exc:
            raise _shown(exc)
        except OSError as exc:
            raise _shown(TransferError(f"{url}: {exc}"), exc)

    def remove(self, url: str) -> bool:
        try:
            return self._transfer.remove(url)
        except TransferError as exc:
            raise _shown(exc)
        except OSError as exc:
            raise _shown(TransferError(f"{url}: {exc}"), exc)

    def close(self) -> None:
        self._transfer.close()


class _SourceStream:
    def __init__(self, stream, url: str):
        self._stream, self._url = stream, url

    @property
    def size(self):
        return getattr(self._stream, "size", None)

    def read(self, n: int) -> bytes:
        try:
            return self._stream.read(n)
        except TransferError as exc:
            raise _shown(exc)
        except OSError as exc:
            raise _shown(TransferError(f"reading {self._url}: {exc}"), exc)

    def close(self) -> None:
        self._stream.close()


class _At:
    """A file-like writer at a fixed offset of a file descriptor (pwrite):
    several writers fill different blocks of one file at once."""

    def __init__(self, fd: int, offset: int):
        self._fd, self._pos = fd, offset

    def write(self, data) -> int:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, self._pos)
            self._pos += n
            view = view[n:]
        return len(data)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
