"""Listings of remote directories, chosen by URL scheme (dd_poll).

Each kind is one module, registered like the transfers: ``LISTERS.get(scheme)``
gives a class taking ``timeout`` and ``credentials`` whose ``entries(url)``
yields the ``Entry`` values of one directory, streamed (``close()`` when
done). The pure parts (the parsers, "what to do with this entry") are in
``base.py`` and each module's parser.
"""
from ..errors import TransferError
from ..registry import Registry
from .base import Entry, ListingError

LISTERS = Registry("listing scheme", {
    "http": "sarra.poll.http:HttpLister",
    "https": "sarra.poll.http:HttpLister",
    "sftp": "sarra.poll.sftp:SftpLister",
    "ftp": "sarra.poll.ftp:FtpLister",
    "ftps": "sarra.poll.ftp:FtpLister",
}, error=TransferError, requires={"http": "requests", "https": "requests", "sftp": "paramiko"})

__all__ = ["Entry", "LISTERS", "ListingError"]
