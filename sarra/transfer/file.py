"""Local file transfer. Schemes: file. Capabilities: byte ranges (seek), remove.

Requires nothing beyond the standard library. ``file:/abs/path`` and
``file:///abs/path`` both name /abs/path; ``%20`` and ``%23`` in the URL
were already decoded by the codec. Only regular files are read: a FIFO
(whose open would wait for a writer, forever) or a device (/dev/zero never
ends) is refused, not worth retrying.
"""
import os
import stat

from ..errors import TransferError


def url_path(url: str) -> str:
    if not url.startswith("file:"):
        raise TransferError(f"not a file: URL: {url}", code=503, recoverable=False)
    path = url[len("file:"):]
    if path.startswith("//"):
        path = "/" + path[2:].split("/", 1)[1] if "/" in path[2:] else "/"
    return path


class _Range:
    def __init__(self, f, length: int | None):
        self._f, self._left = f, length

    def read(self, n: int) -> bytes:
        if self._left is not None:
            n = min(n, self._left)
            if n <= 0:
                return b""
        data = self._f.read(n)
        if self._left is not None:
            self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


class FileTransfer:
    def __init__(self, **_options):
        pass

    def open(self, url: str, offset: int = 0, length: int | None = None) -> _Range:
        path = url_path(url)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TransferError(f"{path}: no such file", code=499, recoverable=False) from None
        except OSError as exc:
            raise TransferError(f"{path}: {exc.strerror}", code=499) from exc
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        if not regular:
            os.close(fd)
            raise TransferError(f"{path}: not a regular file", code=499, recoverable=False)
        f = open(fd, "rb", buffering=0)
        if offset:
            f.seek(offset)
        return _Range(f, length)

    def remove(self, url: str) -> bool:
        path = url_path(url)
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                raise TransferError(f"{path}: a directory, not removed", code=499,
                                    recoverable=False)
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TransferError(f"{path}: cannot remove: {exc.strerror}", code=499) from exc
        return True

    def close(self) -> None:
        pass
