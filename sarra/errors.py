"""One exception root for the whole package, with a shallow tree.

Library exceptions are converted at the boundary (the driver or transfer
module that imports the library); callers only ever see these.
"""
import errno


class SarraError(Exception):
    """Root of every error sarra raises on purpose."""


class ConfigError(SarraError):
    """Bad configuration: carries the file, line and option it is about."""

    def __init__(self, message: str, file: str | None = None,
                 line: int | None = None, option: str | None = None):
        self.file, self.line, self.option = file, line, option
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        if option:
            where += f"option '{option}': "
        super().__init__(where + message)
        self.reason = message


class MessageError(SarraError):
    """A message that cannot be decoded, encoded or safely acted upon.

    ``field`` names the part of the message at fault (``body``, ``sum``,
    ``parts``, ``relpath``, ``topic``...).
    """

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class UnsafePathError(MessageError):
    """A message that would make us write (or link) outside the directory
    we were given: reported with status 403, never retried."""


class BrokerError(SarraError):
    """A broker operation failed. ``recoverable`` says whether reconnecting
    and trying again may succeed (connection lost, broker restarting), as
    opposed to a refusal (access denied, missing exchange)."""

    def __init__(self, message: str, recoverable: bool = False):
        self.recoverable = recoverable
        super().__init__(message)


class TransferError(SarraError):
    """A transfer failed. ``code`` is the log status code to report
    (499 by default); ``recoverable`` says whether retrying may help."""

    def __init__(self, message: str, code: int = 499, recoverable: bool = True):
        self.code, self.recoverable = code, recoverable
        super().__init__(message)


class LocalError(TransferError):
    """An operation on the local tree failed (a write, a rename, a
    directory that cannot be made): the fault is here, not at the data's
    source. ``code`` 507 (Insufficient Storage) when the file system is
    full or a quota is reached (ENOSPC, EDQUOT), 500 for any other errno
    (ENOTDIR, EACCES, EPERM, EROFS, ELOOP, EISDIR, EIO...). Worth retrying
    (it may be fixed here meanwhile), except a name the file system cannot
    hold (ENAMETOOLONG, EILSEQ). The text names the local path and the
    errno."""

    FULL = ("ENOSPC", "EDQUOT")
    NEVER = ("ENAMETOOLONG", "EILSEQ")

    def __init__(self, message: str, code: int = 500, recoverable: bool = True,
                 errno_name: str | None = None):
        self.errno_name = errno_name
        super().__init__(message, code=code, recoverable=recoverable)

    @classmethod
    def of(cls, exc: OSError, path: str | None = None) -> "LocalError":
        """The LocalError for ``exc``, about ``exc.filename`` or else ``path``."""
        name = errno.errorcode.get(exc.errno, f"errno {exc.errno}") if exc.errno \
            else type(exc).__name__
        where = exc.filename if exc.filename is not None else path
        if isinstance(where, bytes):
            where = where.decode("utf-8", "surrogateescape")
        text = f"local error: {where}: {name} ({exc.strerror or exc})" if where \
            else f"local error: {name} ({exc.strerror or exc})"
        if exc.filename2 is not None:
            text += f" (to {exc.filename2})"
        return cls(text, code=507 if name in cls.FULL else 500,
                   recoverable=name not in cls.NEVER, errno_name=name)


class ChecksumError(SarraError):
    """Unknown checksum method, or data that does not match its sum."""


class PluginError(SarraError):
    """A plugin could not be loaded or failed while running."""
