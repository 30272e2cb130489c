"""One exception root for the whole package, with a shallow tree.

Library exceptions are converted at the boundary (the driver or transfer
module that imports the library); callers only ever see these.
"""


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


class ChecksumError(SarraError):
    """Unknown checksum method, or data that does not match its sum."""


class PluginError(SarraError):
    """A plugin could not be loaded or failed while running."""
