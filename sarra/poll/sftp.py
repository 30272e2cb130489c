"""Listings of SFTP directories. Schemes: sftp. Requires: paramiko (through
the SFTP transfer, transfer/sftp.py, and its host-key policy: a host key is
remembered on first contact in the state directory's known_hosts and
checked from then on).

Sizes are exact, times to the second (the server's attributes). Symbolic
links and what is neither a file nor a directory are not announced. The
names are read ahead a few requests at a time, never all held.
"""
from typing import Iterator

from ..transfer import SCHEMES
from .base import Entry


class SftpLister:
    def __init__(self, timeout: float = 30.0, credentials=None, **options):
        self._sftp = SCHEMES.get("sftp")(timeout=timeout, credentials=credentials, **options)

    def entries(self, url: str) -> Iterator[Entry]:
        for name, size, mtime, kind in self._sftp.scan(url):
            if kind == "f":
                yield Entry(name, size, mtime)
            elif kind == "d":
                yield Entry(name, None, mtime, True)

    def close(self) -> None:
        self._sftp.close()
