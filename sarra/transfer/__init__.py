"""Transfers chosen by URL scheme: adding a scheme is adding one module."""
from ..errors import TransferError
from ..registry import Registry
from .base import Stream, Transfer, copy, open_inflight, remove_quietly

SCHEMES = Registry("URL scheme", {
    "file": "sarra.transfer.file:FileTransfer",
    "http": "sarra.transfer.http:HttpTransfer",
    "https": "sarra.transfer.http:HttpTransfer",
    "sftp": "sarra.transfer.sftp:SftpTransfer",
}, error=TransferError, requires={"http": "requests", "https": "requests", "sftp": "paramiko"})

# the schemes files can be pushed to (dd_sender): their transfer also has
# put, rename, remove, symlink, mkdir and rmdir (transfer/sftp.py)
PUSHERS = Registry("URL scheme to send to", {
    "sftp": "sarra.transfer.sftp:SftpTransfer",
}, error=TransferError, requires={"sftp": "paramiko"})


def scheme_of(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


__all__ = ["PUSHERS", "SCHEMES", "Stream", "Transfer", "copy", "open_inflight", "remove_quietly", "scheme_of"]
