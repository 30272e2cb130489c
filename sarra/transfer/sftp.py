"""SFTP transfers. Schemes: sftp. Capabilities: byte ranges (seek, with
windowed prefetch), upload (``put``: an inflight name, renamed into place
with posix-rename, directories created, chmod and utime), remove, rename,
symlink, mkdir, rmdir; directory listings for dd_poll (``scan``).
Requires: paramiko (the only module importing it).

URLs are ``sftp://user@host[:port]/path``: the path is absolute on the
server, and ``/~/path`` is relative to the user's home directory. Paths are
used as written (message URLs are already decoded: no %-escapes).

Authentication comes from credentials.conf: a password
(``sftp://user:password@host/``) or a private key
(``sftp://user@host/ ssh_keyfile=/path/to/key``); with neither, the ssh
agent and the keys in ~/.ssh are tried.

Host keys: on first contact a server's host key is accepted and remembered
in the ``known_hosts`` file the caller gives (for the flows,
``sarra.transfer.sftp_transfer`` gives ``config.paths.known_hosts()``,
``<state_dir>/known_hosts``, unless they name one); from then on a different key is refused (not
recoverable) until its line is removed from that file. Without a file, a
host key is remembered for the transfer's life only (and written nowhere).

Connections are kept per (user, host, port) and reused, at most
``POOL_SIZE`` of them (the least recently used is closed first).

Errors: authentication refused, host key changed, no such file, permission
denied are not recoverable (code 499); a connection refused, lost or timed
out is (the connection is dropped and made again at the next transfer).
"""
import base64
import fcntl
import hashlib
import logging
import os
import posixpath
import stat
import threading
import time
from collections import OrderedDict
from typing import Callable, Iterator
from urllib.parse import unquote

import paramiko

from ..errors import TransferError
from .base import RATE_MIN, Limits, copy, host_port

log = logging.getLogger(__name__)

POOL_SIZE = 8              # connections kept open, one per (user, host, port)
WINDOW = 32 << 20          # bytes asked for ahead of the reader (prefetch)
PIECE = 32768              # paramiko's largest read request
KNOWN_DIRS = 10000         # remote directories remembered as existing, per connection


class _Place:
    """A parsed sftp URL: who, where, and the path on the server."""

    def __init__(self, url: str):
        scheme, sep, rest = url.partition("://")
        if scheme.lower() != "sftp" or not sep:
            raise TransferError("not an sftp:// URL", code=503, recoverable=False)
        authority, _slash, path = rest.partition("/")
        userinfo, at, hostport = authority.rpartition("@")
        user, colon, password = userinfo.partition(":")
        self.user = unquote(user) if at and user else None
        self.password = unquote(password) if at and colon else None
        self.host, self.port = host_port(hostport, 22, "sftp")
        # what credentials.conf is searched with (never holds a password)
        self.account = f"sftp://{user + '@' if at and user else ''}{hostport}/"
        path = "/" + path
        if path == "/~" or path.startswith("/~/"):
            path = path[3:] or "."        # relative to the home directory
        self.path = path

    def label(self, path: str | None = None) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{self.port}:{self.path if path is None else path}"


# what says the connection itself is gone or hung (rather than one request refused)
_CONNECTION_ERRORS = (TimeoutError, ConnectionError, EOFError, paramiko.SSHException)


class _Remember(paramiko.MissingHostKeyPolicy):
    """Accept a host key never seen before and append it to the known_hosts
    file ``path``; with no file, to ``met`` (the transfer's memory)."""

    def __init__(self, path: str | None, met: paramiko.HostKeys):
        self.path, self.met = path, met

    def missing_host_key(self, client, hostname, key) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        if self.path is None:
            self.met.add(hostname, key.get_name(), key)
            log.info("%s: first contact, %s host key SHA256:%s accepted (no known_hosts "
                     "file: remembered until the end of this run only)", hostname,
                     key.get_name(), digest)
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)    # instances meeting a host at once
            os.write(fd, f"{hostname} {key.get_name()} {key.get_base64()}\n".encode())
        finally:
            os.close(fd)
        log.info("%s: first contact, %s host key SHA256:%s accepted and remembered in %s",
                 hostname, key.get_name(), digest, self.path)


class _Conn:
    """One SSH connection and its SFTP session."""

    def __init__(self, client: paramiko.SSHClient, sftp: paramiko.SFTPClient):
        self.client, self.sftp = client, sftp
        self.dirs: set[str] = set()      # remote directories known to exist

    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:     # closing a dead connection: nothing to do
            pass


def _error(exc: BaseException, what: str) -> TransferError:
    """The TransferError for a paramiko or socket exception."""
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        return TransferError(f"{what}: the server's host key changed (remove its line from "
                             f"the known_hosts file if that is expected)", recoverable=False)
    if isinstance(exc, paramiko.AuthenticationException):
        return TransferError(f"{what}: authentication failed: {exc}", recoverable=False)
    if isinstance(exc, FileNotFoundError):
        return TransferError(f"{what}: no such file", recoverable=False)
    if isinstance(exc, PermissionError):
        return TransferError(f"{what}: permission denied", recoverable=False)
    if isinstance(exc, TimeoutError):
        return TransferError(f"{what}: timed out")
    text = str(exc) or exc.__class__.__name__
    return TransferError(f"{what}: {exc.__class__.__name__}: {text}")


class _RemoteFile:
    """A byte range of a remote file, asked for ``WINDOW`` bytes ahead of the
    reader (prefetch: many requests in flight, not one round trip each).
    ``read`` returns early (fewer bytes) after a second, so that the copy
    loop judges a slow server's rate; each answer waits at most ``timeout``."""

    def __init__(self, owner: "SftpTransfer", conn: _Conn, f, offset: int, end: int,
                 label: str):
        self._owner, self._conn, self._f, self._label = owner, conn, f, label
        self._pos, self._end, self._asked = offset, end, offset

    def read(self, n: int) -> bytes:
        n = min(n, self._end - self._pos)
        if n <= 0:
            return b""
        pieces: list[bytes] = []
        got = 0
        try:
            if self._pos >= self._asked:
                self._asked = min(self._end, self._pos + WINDOW)
                self._f.prefetch(self._asked)
            n = min(n, self._asked - self._pos)
            start = time.monotonic()
            while got < n:
                piece = self._f.read(min(PIECE, n - got))
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
                if time.monotonic() - start >= 1.0:
                    break       # slow: let the copy loop see the rate
        except Exception as exc:
            raise self._owner._failed(self._conn, exc, f"reading {self._label}") from exc
        self._pos += got
        return b"".join(pieces)

    def close(self) -> None:
        try:
            self._f.close()
        except Exception:     # the connection died: the pool notices at next use
            pass


class SftpTransfer:
    """``known_hosts``: the file of the host keys remembered (see the
    module); None: remembered in memory, for this transfer's life."""

    def __init__(self, timeout: float = 30.0, credentials=None, known_hosts: str | None = None,
                 transfer_rate_min: float = RATE_MIN, **_options):
        self._timeout = timeout
        self._put_limits = Limits(window=timeout, rate_min=transfer_rate_min)
        self._credentials = credentials
        self._known_hosts = known_hosts or None
        self._met = paramiko.HostKeys()      # first contacts, when there is no file
        self._pool: OrderedDict[tuple, _Conn] = OrderedDict()
        self._lock = threading.Lock()

    # -- connections ---------------------------------------------------------
    def _login(self, place: _Place) -> tuple[str, str | None, str | None]:
        """(user, password, key file) for ``place``, from credentials.conf."""
        password, keyfile = place.password, None
        if self._credentials is not None:
            if password is None:
                full = _Place(self._credentials.lookup(place.account))
                password = full.password
            keyfile = self._credentials.details(place.account).get("ssh_keyfile")
        if keyfile:
            keyfile = os.path.expanduser(keyfile)
            if not os.access(keyfile, os.R_OK):
                raise TransferError(f"ssh_keyfile {keyfile} (for {place.label('')}) cannot "
                                    f"be read", recoverable=False)
        return place.user or _local_user(), password, keyfile

    def _connect(self, place: _Place) -> _Conn:
        user, password, keyfile = self._login(place)
        client = paramiko.SSHClient()
        known = client.get_host_keys()
        if self._known_hosts is None:
            for host in self._met.keys():
                for kind, key in self._met[host].items():
                    known.add(host, kind, key)
        elif os.path.exists(self._known_hosts):
            known.load(self._known_hosts)
        client.set_missing_host_key_policy(_Remember(self._known_hosts, self._met))
        anything = not password and not keyfile
        try:
            client.connect(place.host, place.port, username=user, password=password,
                           key_filename=keyfile, timeout=self._timeout,
                           banner_timeout=self._timeout, auth_timeout=self._timeout,
                           allow_agent=anything, look_for_keys=anything)
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self._timeout)
        except Exception as exc:
            client.close()
            raise _error(exc, f"connecting to {user}@{place.host}:{place.port}") from exc
        log.debug("connected to %s@%s:%d", user, place.host, place.port)
        return _Conn(client, sftp)

    def _get(self, place: _Place) -> tuple[_Conn, bool]:
        """A connection for ``place`` (and whether it was made just now)."""
        key = (place.user, place.host, place.port, place.password)
        with self._lock:
            conn = self._pool.pop(key, None)
            if conn is not None and conn.alive():
                self._pool[key] = conn
                return conn, False
        if conn is not None:
            conn.close()
        conn = self._connect(place)
        with self._lock:
            old = self._pool.pop(key, None)
            self._pool[key] = conn
            while len(self._pool) > POOL_SIZE:
                _key, lru = self._pool.popitem(last=False)
                lru.close()
        if old is not None:
            old.close()
        return conn, True

    def _failed(self, conn: _Conn, exc: BaseException, what: str) -> TransferError:
        """Convert ``exc``; a connection that died or stopped answering is
        dropped from the pool (an SFTP error status keeps it)."""
        if not conn.alive() or isinstance(exc, _CONNECTION_ERRORS):
            with self._lock:
                for key, c in list(self._pool.items()):
                    if c is conn:
                        del self._pool[key]
            conn.close()
        return _error(exc, what)

    def _run(self, url: str, what: str, action: Callable[[_Conn, _Place], object]):
        """``action(conn, place)`` on a pooled connection; a connection that
        turns out dead (closed by the server while idle) is replaced once."""
        place = _Place(url)
        while True:
            conn, fresh = self._get(place)
            try:
                return action(conn, place)
            except Exception as exc:
                err = self._failed(conn, exc, f"{what} {place.label()}")
                if fresh or conn.alive() or isinstance(exc, TransferError):
                    raise err from exc
                log.debug("%s: pooled connection lost (%s); connecting again", place.label(),
                          err)

    def close(self) -> None:
        with self._lock:
            conns = list(self._pool.values())
            self._pool.clear()
        for conn in conns:
            conn.close()

    # -- download ------------------------------------------------------------
    def open(self, url: str, offset: int = 0, length: int | None = None) -> _RemoteFile:
        def start(conn: _Conn, place: _Place) -> _RemoteFile:
            f = conn.sftp.open(place.path, "rb")
            try:
                end = offset + length if length is not None else f.stat().st_size
                f.seek(offset)
            except BaseException:
                f.close()
                raise
            return _RemoteFile(self, conn, f, offset, end, place.label())
        return self._run(url, "open", start)

    # -- listings (dd_poll) ---------------------------------------------------
    def scan(self, url: str) -> Iterator[tuple[str, int, float, str]]:
        """(name, size, mtime, kind) of each name in the directory ``url``,
        as the server sends them (read ahead, never all held): kind is 'f'
        a regular file, 'd' a directory, 'l' a symbolic link, '-' anything
        else. Not followed: links are listed as links."""
        place = _Place(url)
        conn, _fresh = self._get(place)
        try:
            for a in conn.sftp.listdir_iter(place.path, read_aheads=16):
                mode = a.st_mode or 0
                kind = "f" if stat.S_ISREG(mode) else "d" if stat.S_ISDIR(mode) \
                    else "l" if stat.S_ISLNK(mode) else "-"
                yield a.filename, a.st_size or 0, float(a.st_mtime or 0), kind
        except Exception as exc:
            raise self._failed(conn, exc, f"listing {place.label()}") from exc

    # -- upload and remote operations (dd_sender) ---------------------------------
    def put(self, local_path: str, url: str, inflight: str | None = None,
            mode: int | None = None, times: tuple[float, float] | None = None,
            dir_mode: int = 0o755, bufsize: int = 1 << 20, summers: list | None = None,
            verify: Callable[[int], None] | None = None,
            tick: Callable[[int], None] | None = None, throttle=None) -> int:
        """Send the local file to ``url``; return the bytes sent.

        Written first to ``inflight`` (a URL on the same server; None: the
        final name), with ``mode`` and ``times`` (atime, mtime) applied, then
        renamed over the final name (posix-rename: atomic, replaces). Missing
        directories are created with ``dir_mode``. ``summers`` see every byte
        sent; ``verify(nbytes)`` may raise to abandon the file before the
        rename. A local file that cannot be read is not recoverable. A put
        slower than ``transfer_rate_min`` (bytes/s, over each ``timeout``
        seconds; given to the constructor) is cut off, worth retrying.
        """
        try:
            src = open(local_path, "rb")
        except OSError as exc:
            raise TransferError(f"{local_path}: {exc.strerror}", recoverable=False) from exc

        def send(conn: _Conn, place: _Place) -> int:
            if src.tell():   # the pooled connection died mid-way: summers saw bytes
                raise TransferError(f"put {place.label()}: connection lost while sending")
            tmp = _Place(inflight).path if inflight else place.path
            self._makedirs(conn, posixpath.dirname(tmp), dir_mode)
            if posixpath.dirname(tmp) != posixpath.dirname(place.path):
                self._makedirs(conn, posixpath.dirname(place.path), dir_mode)
            try:
                with conn.sftp.open(tmp, "wb") as out:
                    out.set_pipelined(True)
                    sent = copy(src, out, None, list(summers or []), bufsize, tick, throttle,
                                self._put_limits)
                if verify is not None:
                    verify(sent)
                if mode is not None:
                    conn.sftp.chmod(tmp, mode)
                if times is not None:
                    conn.sftp.utime(tmp, times)
                if tmp != place.path:
                    conn.sftp.posix_rename(tmp, place.path)
            except BaseException:
                if tmp != place.path and conn.alive():
                    _remove_quietly(conn, tmp)
                raise
            return sent

        with src:
            return self._run(url, "put", send)

    def remove(self, url: str) -> bool:
        """Remove the remote file (or symlink); False when it was not there."""
        return self._run(url, "remove",
                         lambda conn, place: _done(conn.sftp.remove, place.path))

    def rename(self, url: str, new_url: str, dir_mode: int = 0o755) -> bool:
        """Rename the remote file to ``new_url`` (same server), replacing
        what is there; False when there was nothing to rename."""
        new_path = _Place(new_url).path

        def mv(conn: _Conn, place: _Place) -> bool:
            self._makedirs(conn, posixpath.dirname(new_path), dir_mode)
            return _done(conn.sftp.posix_rename, place.path, new_path)
        return self._run(url, "rename", mv)

    def symlink(self, url: str, link: str, dir_mode: int = 0o755) -> None:
        """Make the remote path a symlink to ``link``, replacing what is there."""
        def ln(conn: _Conn, place: _Place) -> None:
            self._makedirs(conn, posixpath.dirname(place.path), dir_mode)
            tmp = f"{place.path}.{os.getpid()}.lnk"
            _remove_quietly(conn, tmp)
            conn.sftp.symlink(link, tmp)
            conn.sftp.posix_rename(tmp, place.path)
        self._run(url, "symlink", ln)

    def mkdir(self, url: str, dir_mode: int = 0o755) -> bool:
        """Create the remote directory (and its parents); False if it existed."""
        def md(conn: _Conn, place: _Place) -> bool:
            existed = _is_dir(conn, place.path)
            self._makedirs(conn, place.path, dir_mode)
            return not existed
        return self._run(url, "mkdir", md)

    def rmdir(self, url: str) -> bool:
        """Remove the (empty) remote directory; False when it was not there."""
        def rd(conn: _Conn, place: _Place) -> bool:
            conn.dirs.discard(place.path)
            return _done(conn.sftp.rmdir, place.path)
        return self._run(url, "rmdir", rd)

    @staticmethod
    def _makedirs(conn: _Conn, path: str, mode: int) -> None:
        if path in ("", "/", ".") or path in conn.dirs:
            return
        if not _is_dir(conn, path):
            SftpTransfer._makedirs(conn, posixpath.dirname(path), mode)
            try:
                conn.sftp.mkdir(path, mode)
            except OSError:
                if not _is_dir(conn, path):    # made meanwhile by another writer?
                    raise
        if len(conn.dirs) >= KNOWN_DIRS:
            conn.dirs.clear()
        conn.dirs.add(path)


def _is_dir(conn: _Conn, path: str) -> bool:
    try:
        return stat.S_ISDIR(conn.sftp.stat(path).st_mode or 0)
    except FileNotFoundError:
        return False


def _remove_quietly(conn: _Conn, path: str) -> None:
    try:
        conn.sftp.remove(path)
    except Exception as exc:     # noqa: BLE001 - best effort, after another error
        if not isinstance(exc, FileNotFoundError):
            log.warning("could not remove %s: %s", path, exc)


def _local_user() -> str:
    import getpass
    return getpass.getuser()


def _done(call, *paths: str) -> bool:
    """``call(*paths)``; False when its path was not there (nothing to do)."""
    try:
        call(*paths)
    except FileNotFoundError:
        return False
    return True
