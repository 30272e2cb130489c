"""Transfers chosen by URL scheme: adding a scheme is adding one module.

A transfer reads no global state: what it needs comes from its caller as
keywords (``timeout``, ``credentials``; for sftp ``known_hosts``, the file
of remembered host keys, normally ``config.paths.known_hosts()``).
"""
from ..config import paths
from ..errors import TransferError
from ..registry import Registry, load_dotted
from .base import Stream, Transfer, copy, open_inflight, remove_quietly


def sftp_transfer(known_hosts: str | None = None, **options):
    """An SftpTransfer remembering host keys in ``known_hosts``, by default
    the state directory's (``paths.known_hosts()``): what the flows get from
    SCHEMES and PUSHERS, whether or not they give the file."""
    cls = load_dotted("sarra.transfer.sftp:SftpTransfer", TransferError, "paramiko")
    return cls(known_hosts=known_hosts or paths.known_hosts(), **options)


SCHEMES = Registry("URL scheme", {
    "file": "sarra.transfer.file:FileTransfer",
    "http": "sarra.transfer.http:HttpTransfer",
    "https": "sarra.transfer.http:HttpTransfer",
    "sftp": "sarra.transfer:sftp_transfer",
    "ftp": "sarra.transfer.ftp:FtpTransfer",
    "ftps": "sarra.transfer.ftp:FtpTransfer",
}, error=TransferError, requires={"http": "requests", "https": "requests"})

# the schemes files can be pushed to (dd_sender): their transfer also has
# put, rename, remove, symlink, mkdir and rmdir (transfer/sftp.py, transfer/ftp.py)
PUSHERS = Registry("URL scheme to send to", {
    "sftp": "sarra.transfer:sftp_transfer",
    "ftp": "sarra.transfer.ftp:FtpTransfer",
    "ftps": "sarra.transfer.ftp:FtpTransfer",
}, error=TransferError)


def scheme_of(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


__all__ = ["PUSHERS", "SCHEMES", "Stream", "Transfer", "copy", "open_inflight", "remove_quietly", "scheme_of"]
