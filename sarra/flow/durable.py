"""On stable storage before the acknowledgement (the ``fsync`` option).

A file renamed into place is in the page cache, not yet on the disk: were
its message acknowledged then, a power cut would lose the file while the
broker forgets the message. So what a batch changes in the local tree is
noted (``Pending.add``: the path of each file placed, block written, link,
directory, rename or removal), and the flow calls ``Pending.sync`` once per
batch, after the work and before anything is posted or acknowledged: one
syncfs(2) per file system the batch touched, which writes the data of the
files and the directory entries of their renames together (far cheaper
than an fdatasync per file: bench/bench_perfile.py). Where there is no
syncfs, each path noted and its directory are fsynced instead.

The state files written before an acknowledgement (the retry queue, the
quarantine, a stream's position) use ``replace_synced``: written, fsynced,
renamed into place, and their directory fsynced.

With ``fsync off`` (a scratch target, whose loss in a power cut costs
nothing) none of this happens.
"""
import os

_syncfs = None          # libc's syncfs, once looked up (False: there is none)


def syncfs(fd: int) -> bool:
    """Write the file system of ``fd`` to stable storage; False when this
    system has no syncfs (OSError when it fails)."""
    global _syncfs
    if _syncfs is None:
        try:
            import ctypes
            _syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            _syncfs = False
    if _syncfs is False:
        return False
    if _syncfs(fd) != 0:
        import ctypes
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")
    return True


def fsync_path(path: str) -> None:
    """fsync the file or directory ``path`` (a symbolic link: its directory
    holds all there is of it; a path gone since: nothing to keep)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        if os.path.islink(path):
            return
        raise exc
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Pending:
    """What a batch changed in a local tree, until it is on stable storage.
    ``enabled`` False (``fsync off``): nothing is noted, ``sync`` is free."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._dirs: dict[str, None] = {}    # directories changed, in order
        self._paths: list[str] = []         # for systems without syncfs
        self.syncs = 0                      # file-system syncs done (figures, tests)

    def add(self, path: str) -> None:
        """``path`` was written, renamed into place, made or removed."""
        if self.enabled:
            self._dirs[os.path.dirname(path) or "."] = None
            self._paths.append(path)

    def __len__(self) -> int:
        return len(self._paths)

    def sync(self) -> None:
        """Put what was noted on stable storage (OSError when that fails:
        then none of it may be taken as there)."""
        dirs, paths = self._dirs, self._paths
        self._dirs, self._paths = {}, []
        devices: set[int] = set()
        fallback: list[str] = []
        for d in dirs:
            try:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue                    # removed by the batch itself (rmdir)
            try:
                dev = os.fstat(fd).st_dev
                if dev in devices:
                    continue
                if syncfs(fd):
                    devices.add(dev)
                    self.syncs += 1
                else:
                    fallback.append(d)
            finally:
                os.close(fd)
        if fallback:
            inside = set(fallback)
            for p in paths:
                if (os.path.dirname(p) or ".") in inside:
                    fsync_path(p)
            for d in fallback:
                fsync_path(d)
            self.syncs += 1


def replace_synced(path: str, write, sync: bool = True, encoding: str = "utf-8") -> None:
    """Write a state file: ``write(f)`` fills ``path``'s temporary twin,
    which is then fsynced (``sync``), renamed to ``path``, and its directory
    fsynced: after a crash, the old content or the new, whole."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding=encoding) as f:
            write(f)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync:
        fsync_path(os.path.dirname(path) or ".")


def sqlite_many(db, sql: str, rows: list) -> None:
    """``executemany`` in one transaction on a connection in autocommit mode
    (``isolation_level=None``: the state databases), where each row would
    otherwise be a transaction of its own, its WAL frames written and its
    locks taken once a row."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(sql, rows)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
