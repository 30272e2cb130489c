"""FTP and FTPS transfers. Schemes: ftp, ftps. Capabilities: byte ranges
(``REST`` then ``RETR``, the transfer aborted after the range), upload
(``put``: an inflight name, renamed into place with RNFR/RNTO, directories
created with MKD; the modes of files and directories by ``SITE CHMOD`` and
the modification time where the server allows them), remove, rename,
mkdir, rmdir; directory listings for dd_poll (``listing``: MLSD when the
server offers it, LIST otherwise). No symbolic
links (FTP has none). Requires: the standard library's ftplib (the only
module importing it).

URLs are ``ftp://user@host[:port]/path`` and ``ftps://...``: the path is
absolute on the server (a chrooted server's root is its '/'). Paths are used
as written, in UTF-8 (message URLs are already decoded); one holding a line
break or a NUL is refused (it would end the FTP command).

Passive mode unless the credentials.conf line of the server says
``active``. ``ftps`` is explicit TLS (AUTH TLS on the FTP port, then PROT P:
the data connections are encrypted too, reusing the control connection's
TLS session as servers such as vsftpd require); ``ftp`` with the ``tls``
detail does the same. The server's certificate is verified, host name
included, as the configuration's TlsPolicy says (sarra/tls.py: the
``ca_file=/path/ca.pem`` detail of its credentials.conf line, else the
``ca_file`` option, else the system's trusted CAs; ``tls_verify off``:
nothing). The password comes from
credentials.conf (``ftp://user:password@host/``); with none, ``anonymous``
logs in with an empty password.

Connections are kept per (user, host, port), one transfer at a time each,
and reused; at most ``POOL_SIZE`` idle ones are kept.

Errors: a refused login (530), a certificate that does not verify, no such
file or permission denied (550) are not recoverable (code 499); a
connection refused, lost or timed out and the server's 4xx answers are
(the connection is dropped and made again at the next transfer).
"""
import ftplib
import logging
import posixpath
import socket
import ssl
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import unquote

from ..tls import TlsPolicy
from ..errors import ConfigError, TransferError
from .base import RATE_MIN, Limits, copy, host_port

log = logging.getLogger(__name__)

POOL_SIZE = 8
DEFAULT_PORT = 21


class _Place:
    """A parsed ftp(s) URL: who, where, and the path on the server."""

    def __init__(self, url: str):
        scheme, sep, rest = url.partition("://")
        self.scheme = scheme.lower()
        if self.scheme not in ("ftp", "ftps") or not sep:
            raise TransferError("not an ftp:// or ftps:// URL", code=503, recoverable=False)
        authority, _slash, path = rest.partition("/")
        userinfo, at, hostport = authority.rpartition("@")
        user, colon, password = userinfo.partition(":")
        self.user = unquote(user) if at and user else None
        self.password = unquote(password) if at and colon else None
        self.host, self.port = host_port(hostport, DEFAULT_PORT, self.scheme)
        # what credentials.conf is searched with (never holds a password)
        self.account = f"{self.scheme}://{user + '@' if at and user else ''}{hostport}/"
        self.path = safe_path("/" + path)

    def label(self, path: str | None = None) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{who}{self.host}:{self.port}{self.path if path is None else path}"


def safe_path(path: str) -> str:
    """``path`` unless it holds what would end an FTP command (CR, LF, NUL)."""
    if any(c in path for c in "\r\n\x00"):
        raise TransferError(f"{path!r}: a line break or NUL in an FTP path", code=403,
                            recoverable=False)
    return path


class _TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS
    session (vsftpd's require_ssl_reuse, the default there)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size


class _Conn:
    def __init__(self, ftp: ftplib.FTP, features: set[str]):
        self.ftp, self.features = ftp, features
        self.dirs: set[str] = set()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        try:
            self.ftp.close()
        except Exception:       # closing a dead connection: nothing to do
            pass


def _error(exc: BaseException, what: str) -> TransferError:
    """The TransferError for an ftplib, ssl or socket exception."""
    if isinstance(exc, TransferError):
        return exc
    text = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransferError(f"{what}: the server's certificate does not verify: "
                             f"{exc.verify_message}", recoverable=False)
    if isinstance(exc, ftplib.error_perm):
        if text.startswith("530"):
            return TransferError(f"{what}: login refused: {text}", recoverable=False)
        return TransferError(f"{what}: {text}", recoverable=False)
    if isinstance(exc, ftplib.error_temp):
        return TransferError(f"{what}: {text}")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return TransferError(f"{what}: timed out")
    return TransferError(f"{what}: {exc.__class__.__name__}: {text}")


# what says the connection itself is gone (rather than one request refused)
_CONNECTION_ERRORS = (OSError, EOFError, ftplib.error_reply, ftplib.error_proto)


class _Download:
    """The bytes of one RETR, up to ``length``; the connection goes back to
    the pool once the server confirmed the whole file (226), or after ABOR."""

    def __init__(self, owner: "FtpTransfer", conn: _Conn, key: tuple, sock, length,
                 label: str):
        self._owner, self._conn, self._key, self._sock = owner, conn, key, sock
        self._left, self._label = length, label
        self._eof = False

    def read(self, n: int) -> bytes:
        if self._left is not None:
            n = min(n, self._left)
            if n <= 0:
                return b""
        try:
            data = self._sock.recv(n)
        except Exception as exc:
            self._drop()
            raise _error(exc, f"reading {self._label}") from exc
        if not data:
            self._eof = True
        elif self._left is not None:
            self._left -= len(data)
        return data

    def _drop(self) -> None:
        if self._conn is not None:
            _close_data(self._sock)
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        whole = self._eof
        _close_data(self._sock)
        try:
            if whole:
                conn.ftp.voidresp()            # 226 Transfer complete
            else:
                _abort(conn.ftp)
        except Exception as exc:     # noqa: BLE001 - the bytes were read; drop the connection
            log.debug("%s: after the transfer: %s; connection dropped", self._label, exc)
            conn.close()
            return
        self._owner._release(self._key, conn)


def _close_data(sock) -> None:
    try:
        if isinstance(sock, ssl.SSLSocket):
            sock.unwrap()
    except (OSError, ValueError):
        pass
    try:
        sock.close()
    except OSError:
        pass


def _abort(ftp: ftplib.FTP) -> None:
    """ABOR a transfer whose data connection is closed: the server answers
    426 (transfer aborted) and/or 226, in some order."""
    ftp.putcmd("ABOR")
    for _ in range(2):
        resp = ftp.getmultiline()
        if resp[:3] in ("225", "226"):
            return
        if resp[:3] not in ("426", "450", "451"):
            raise ftplib.error_reply(resp)


class _Sink:
    """A data connection written to as a file (for the copy loop)."""

    def __init__(self, sock):
        self._sock = sock

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)


class FtpTransfer:
    def __init__(self, timeout: float = 30.0, credentials=None,
                 transfer_rate_min: float = RATE_MIN, tls: TlsPolicy | None = None,
                 **_options):
        self._timeout = timeout
        self._tls = tls or TlsPolicy(credentials=credentials)
        self._put_limits = Limits(window=timeout, rate_min=transfer_rate_min)
        self._credentials = credentials
        self._pool: OrderedDict[tuple, list[_Conn]] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: set[tuple] = set()

    # -- connections ---------------------------------------------------------
    def _connect(self, place: _Place) -> _Conn:
        password, details = place.password, {}
        if self._credentials is not None:
            if password is None:
                password = _Place(self._credentials.lookup(place.account)).password
            details = self._credentials.details(place.account)
        user = place.user or "anonymous"
        tls = place.scheme == "ftps" or details.get("tls", False)
        what = f"connecting to {place.label('/')}"
        if tls:
            try:
                context = self._tls.context(place.account)
            except ConfigError as exc:
                raise TransferError(f"{what}: {exc}", recoverable=False) from exc
            ftp: ftplib.FTP = _TLS(context=context, timeout=self._timeout)
        else:
            ftp = ftplib.FTP(timeout=self._timeout)
        try:
            ftp.connect(place.host, place.port)
            if tls:
                ftp.auth()
            ftp.login(user, password or "")
            if tls:
                ftp.prot_p()
            ftp.set_pasv(details.get("passive", True))
            features = _features(ftp)
            ftp.voidcmd("TYPE I")
        except Exception as exc:
            ftp.close()
            raise _error(exc, what) from exc
        log.debug("connected to %s (%s)", place.label("/"), ", ".join(sorted(features)))
        return _Conn(ftp, features)

    def _get(self, place: _Place) -> tuple[tuple, _Conn, bool]:
        key = (place.scheme, place.user, place.host, place.port, place.password)
        with self._lock:
            idle = self._pool.get(key)
            if idle:
                return key, idle.pop(), False
        return key, self._connect(place), True

    def _release(self, key: tuple, conn: _Conn) -> None:
        if conn.closed:         # dropped mid-transfer: its answers are out of step
            return
        with self._lock:
            self._pool.setdefault(key, []).append(conn)
            self._pool.move_to_end(key)
            while sum(len(v) for v in self._pool.values()) > POOL_SIZE:
                oldest = next(iter(self._pool))
                conns = self._pool[oldest]
                conns.pop(0).close()
                if not conns:
                    del self._pool[oldest]

    def _run(self, url: str, what: str, action: Callable[[_Conn, _Place], object]):
        """``action(conn, place)`` on a pooled connection; one that turns out
        dead (closed by the server while idle) is replaced once."""
        place = _Place(url)
        while True:
            key, conn, fresh = self._get(place)
            try:
                result = action(conn, place)
            except Exception as exc:
                lost = isinstance(exc, _CONNECTION_ERRORS) and not isinstance(exc, TransferError)
                if lost:
                    conn.close()
                else:
                    self._release(key, conn)
                if lost and not fresh:
                    log.debug("%s: pooled connection lost (%s); connecting again",
                              place.label(), exc)
                    continue
                raise _error(exc, f"{what} {place.label()}") from exc
            self._release(key, conn)
            return result

    def close(self) -> None:
        with self._lock:
            conns = [c for v in self._pool.values() for c in v]
            self._pool.clear()
        for conn in conns:
            try:
                conn.ftp.quit()
            except Exception:   # noqa: BLE001 - a dead connection: just close it
                pass
            conn.close()

    # -- download ------------------------------------------------------------
    def open(self, url: str, offset: int = 0, length: int | None = None) -> _Download:
        place = _Place(url)
        for _try in range(2):
            key, conn, fresh = self._get(place)
            try:
                sock, _size = conn.ftp.ntransfercmd(f"RETR {place.path}", offset or None)
            except ftplib.error_perm as exc:
                self._release(key, conn)
                raise _error(exc, f"RETR {place.label()}") from exc
            except Exception as exc:
                conn.close()
                if fresh or not isinstance(exc, _CONNECTION_ERRORS):
                    raise _error(exc, f"RETR {place.label()}") from exc
                continue
            return _Download(self, conn, key, sock, length, place.label())
        raise TransferError(f"RETR {place.label()}: connection lost")

    # -- listings (dd_poll) ---------------------------------------------------
    def listing(self, url: str, line: Callable[[str], None],
                restart: Callable[[], None] = lambda: None) -> str:
        """Each line of the listing of the directory ``url`` given to
        ``line``, as it arrives (``restart()`` before each attempt: a pooled
        connection found dead is replaced once); returns 'mlsd' when the
        server offers MLSD (and it was used), else 'list' (LIST)."""
        def ls(conn: _Conn, place: _Place) -> str:
            restart()
            if "MLST" in conn.features:
                _lines(conn.ftp, f"MLSD {place.path}", line)
                return "mlsd"
            conn.ftp.cwd(place.path)       # LIST of a path with blanks is not portable
            _lines(conn.ftp, "LIST", line)
            return "list"
        return self._run(url, "listing", ls)

    # -- upload and remote operations (dd_sender) ------------------------------
    def put(self, local_path: str, url: str, inflight: str | None = None,
            mode: int | None = None, times: tuple[float, float] | None = None,
            dir_mode: int = 0o755, bufsize: int = 1 << 20, summers: list | None = None,
            verify: Callable[[int], None] | None = None,
            tick: Callable[[int], None] | None = None, throttle=None) -> int:
        """Send the local file to ``url``; return the bytes sent (the
        arguments are those of SftpTransfer.put). Written to ``inflight``
        first, then renamed over the final name (a server that will not
        rename over a file has it deleted first); ``mode`` by SITE CHMOD
        and ``times`` by MFMT (or vsftpd's MDTM with a time) where the server
        allows them (a refusal is logged once per server, not an error)."""
        try:
            src = open(local_path, "rb")
        except OSError as exc:
            raise TransferError(f"{local_path}: {exc.strerror}", recoverable=False) from exc

        def send(conn: _Conn, place: _Place) -> int:
            if src.tell():   # the pooled connection died mid-way: summers saw bytes
                raise TransferError(f"put {place.label()}: connection lost while sending")
            tmp = safe_path(_Place(inflight).path) if inflight else place.path
            self._makedirs(conn, place, posixpath.dirname(tmp), dir_mode)
            if posixpath.dirname(tmp) != posixpath.dirname(place.path):
                self._makedirs(conn, place, posixpath.dirname(place.path), dir_mode)
            try:
                sock = conn.ftp.transfercmd(f"STOR {tmp}")
                try:
                    sent = copy(src, _Sink(sock), None, list(summers or []), bufsize, tick,
                                throttle, self._put_limits)
                except BaseException:
                    _close_data(sock)
                    conn.close()     # the server's answer to the cut STOR is pending
                    raise
                _close_data(sock)
                conn.ftp.voidresp()
                if verify is not None:
                    verify(sent)
                if mode is not None:
                    self._optional(conn, place, "SITE CHMOD", f"SITE CHMOD {mode:o} {tmp}")
                if times is not None:
                    self._set_mtime(conn, place, tmp, times[1])
                if tmp != place.path:
                    self._rename(conn, tmp, place.path)
            except BaseException:
                if tmp != place.path and not conn.closed:
                    _quietly(conn, f"DELE {tmp}")
                raise
            return sent

        with src:
            return self._run(url, "put", send)

    def _optional(self, conn: _Conn, place: _Place, what: str, cmd: str) -> bool:
        """``cmd``, which the server may refuse (logged once per server)."""
        try:
            conn.ftp.voidcmd(cmd)
            return True
        except ftplib.error_perm as exc:
            if (place.host, place.port, what) not in self._warned:
                self._warned.add((place.host, place.port, what))
                log.warning("%s: the server refuses %s (%s): not applied", place.label("/"),
                            what, str(exc).strip())
            return False

    def _set_mtime(self, conn: _Conn, place: _Place, path: str, mtime: float) -> None:
        stamp = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y%m%d%H%M%S")
        if "MFMT" in conn.features:
            self._optional(conn, place, "MFMT", f"MFMT {stamp} {path}")
        else:
            self._optional(conn, place, "MDTM (setting a time)", f"MDTM {stamp} {path}")

    @staticmethod
    def _rename(conn: _Conn, old: str, new: str) -> None:
        conn.ftp.sendcmd(f"RNFR {old}")
        try:
            conn.ftp.voidcmd(f"RNTO {new}")
        except ftplib.error_perm:
            _quietly(conn, f"DELE {new}")      # a server that does not replace
            conn.ftp.sendcmd(f"RNFR {old}")
            conn.ftp.voidcmd(f"RNTO {new}")

    def remove(self, url: str) -> bool:
        """Remove the remote file; False when it was not there."""
        return self._run(url, "remove", lambda conn, place: _unless_absent(
            conn.ftp.delete, place.path, lambda p: _exists(conn, p)))

    def rename(self, url: str, new_url: str, dir_mode: int = 0o755) -> bool:
        """Rename the remote file to ``new_url`` (same server), replacing
        what is there; False when there was nothing to rename."""
        new_path = safe_path(_Place(new_url).path)

        def mv(conn: _Conn, place: _Place) -> bool:
            if not _exists(conn, place.path):
                return False
            self._makedirs(conn, place, posixpath.dirname(new_path), dir_mode)
            self._rename(conn, place.path, new_path)
            return True
        return self._run(url, "rename", mv)

    def symlink(self, url: str, link: str, dir_mode: int = 0o755) -> None:
        raise TransferError(f"{_Place(url).label()}: FTP has no symbolic links", code=503,
                            recoverable=False)

    def mkdir(self, url: str, dir_mode: int = 0o755) -> bool:
        """Create the remote directory (and its parents); False if it existed."""
        def md(conn: _Conn, place: _Place) -> bool:
            existed = _is_dir(conn, place.path)
            self._makedirs(conn, place, place.path, dir_mode)
            return not existed
        return self._run(url, "mkdir", md)

    def rmdir(self, url: str) -> bool:
        """Remove the (empty) remote directory; False when it was not there."""
        def rd(conn: _Conn, place: _Place) -> bool:
            conn.dirs.discard(place.path)
            return _unless_absent(conn.ftp.rmd, place.path, lambda p: _is_dir(conn, p))
        return self._run(url, "rmdir", rd)

    def _makedirs(self, conn: _Conn, place: _Place, path: str, mode: int) -> None:
        """Make ``path`` and its missing parents, each given ``mode`` by SITE
        CHMOD where the server allows it."""
        if path in ("", "/", ".") or path in conn.dirs:
            return
        if not _is_dir(conn, path):
            self._makedirs(conn, place, posixpath.dirname(path), mode)
            try:
                conn.ftp.mkd(path)
            except ftplib.error_perm:
                if not _is_dir(conn, path):    # made meanwhile by another writer?
                    raise
            else:
                self._optional(conn, place, "SITE CHMOD", f"SITE CHMOD {mode:o} {path}")
        conn.dirs.add(path)


def _lines(ftp: ftplib.FTP, cmd: str, line: Callable[[str], None]) -> None:
    """``cmd``'s data as lines (without their ends) given to ``line``, in
    ASCII mode, then binary again (what the pooled connection's downloads
    need). Bytes that are not UTF-8 are kept as surrogate escapes (a name in
    another encoding is then refused by dd_poll, not a crash)."""
    ftp.voidcmd("TYPE A")
    with ftp.transfercmd(cmd) as sock, sock.makefile("rb") as data:
        for raw in data:
            line(raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape"))
        if isinstance(sock, ssl.SSLSocket):
            sock.unwrap()
    ftp.voidresp()
    ftp.voidcmd("TYPE I")


def _features(ftp: ftplib.FTP) -> set[str]:
    """The FEAT words the server announces (empty if it has no FEAT)."""
    try:
        resp = ftp.sendcmd("FEAT")
    except ftplib.error_perm:
        return set()
    return {line.split()[0].upper() for line in resp.splitlines()[1:-1] if line.strip()}


def _is_dir(conn: _Conn, path: str) -> bool:
    try:
        conn.ftp.cwd(path)
    except ftplib.error_perm:
        return False
    conn.ftp.cwd("/")
    return True


def _exists(conn: _Conn, path: str) -> bool:
    try:
        conn.ftp.size(path)
        return True
    except ftplib.error_perm:
        return _is_dir(conn, path)


def _unless_absent(call: Callable[[str], object], path: str,
                   present: Callable[[str], bool]) -> bool:
    """``call(path)``; False when it was refused because ``path`` is not
    there (an FTP 550 says no more than 'refused')."""
    try:
        call(path)
        return True
    except ftplib.error_perm:
        if present(path):
            raise
        return False


def _quietly(conn: _Conn, cmd: str) -> None:
    try:
        conn.ftp.voidcmd(cmd)
    except Exception:     # noqa: BLE001 - best effort, after another error
        pass
