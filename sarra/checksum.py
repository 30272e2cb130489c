"""Checksum methods by v02 ``sum`` letter (doc/protocol.md §4).

Content methods (the value is a digest of the bytes): ``d`` md5, ``s``
sha512, ``x`` XXH3-128 (sarra's fast method, lower hex; needs the
``xxhash`` package, imported only here and only when ``x`` is used), and
the WIS2 methods sarra has no letter for, named as WIS2 names them
(``sha256``, ``sha384``, ``sha3-256``, ``sha3-384``, ``sha3-512``: a sarra
extension of the v02 ``sum`` header, doc/protocol.md §4.1).
Name methods (the value is computed from a string, not the content):
``n`` md5 of the basename, ``R``/``m``/``r`` sha512 of the basename, ``L``
sha512 of the link target. ``0`` is a random 4-digit string, ``a`` an
arbitrary value that cannot be recomputed, ``z,X`` means "compute X on
download".

Hashing streams through one preallocated buffer with ``readinto``: the
hash objects release the GIL on large updates, so several transfers can
checksum in parallel threads at the speed of the hash itself.
"""
import hashlib
import os
import random
from typing import Any, Callable

from .errors import ChecksumError
from .registry import Registry

# WIS2's methods without a v02 letter: the sum header names them in full
NAMED_METHODS = ("sha256", "sha384", "sha3-256", "sha3-384", "sha3-512")
CONTENT_METHODS = frozenset(("d", "s", "x") + NAMED_METHODS)   # digests of the bytes
NAME_METHODS = frozenset("nRLmr")       # the value is a digest of a string
OTHER_METHODS = frozenset("0az")        # random, arbitrary, checksum-on-download
KNOWN_METHODS = CONTENT_METHODS | NAME_METHODS | OTHER_METHODS

DEFAULT_BUFSIZE = 1 << 20


def _xxh3_128() -> Any:
    """A new XXH3-128 hash object (the one place xxhash is imported)."""
    try:
        import xxhash
    except ImportError as exc:
        raise ChecksumError(f"sum method 'x' needs the xxhash package "
                            f"(pip install xxhash): {exc}") from exc
    return xxhash.xxh3_128()


# letter -> hash constructor, imported when first used
_HASHES = Registry("checksum method", {
    "d": "hashlib:md5",
    "s": "hashlib:sha512",
    "x": "sarra.checksum:_xxh3_128",
    **{name: f"hashlib:{name.replace('-', '_')}" for name in NAMED_METHODS},
}, ChecksumError, requires={"x": "xxhash"})


def known(method: str) -> bool:
    """True for a sum letter sarra understands (``z`` included)."""
    return method in KNOWN_METHODS


class Summer:
    """Incremental content checksum for one of CONTENT_METHODS."""

    __slots__ = ("method", "_hash")

    def __init__(self, method: str, factory: Callable[[], Any]):
        self.method = method
        self._hash = factory()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    @property
    def header(self) -> str:
        """The ``sum`` header value, e.g. ``s,ab12...``."""
        return f"{self.method},{self.hexdigest()}"


def new(method: str) -> Summer:
    """A streaming Summer for a content method; ChecksumError for any other
    letter (name-based, random, arbitrary, ``z`` or unknown)."""
    if method not in CONTENT_METHODS:
        if method in KNOWN_METHODS:
            raise ChecksumError(f"sum method '{method}' is not computed from "
                                f"the content")
        raise ChecksumError(f"unknown sum method '{method}'")
    return Summer(method, _HASHES.get(method))


def random_value() -> str:
    """The value of a ``0`` sum: a random 4-digit string."""
    return "%04d" % random.randint(0, 9999)


def _basename(name: str) -> str:
    return os.path.basename(name.rstrip("/")) or name


def sum_name(method: str, name: str) -> str:
    """Header value for a name-based letter.

    ``n``: md5 of the basename of ``name``; ``R``, ``m``, ``r``: sha512 of the
    basename; ``L``: sha512 of ``name`` itself (the link target string).
    """
    if method == "L":
        text = name
    elif method in ("n", "R", "m", "r"):
        text = _basename(name)
    else:
        raise ChecksumError(f"sum method '{method}' is not name-based")
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise ChecksumError(f"cannot encode name '{text!r}': {exc}") from None
    algo = hashlib.md5 if method == "n" else hashlib.sha512
    return f"{method},{algo(data).hexdigest()}"


def _hash_stream(summer: Summer, path: str, offset: int,
                 length: int | None, bufsize: int) -> None:
    """Feed ``length`` bytes (or up to EOF) of ``path`` from ``offset``."""
    remaining = length
    with open(path, "rb", buffering=0) as f:
        # a small file gets a small buffer: zeroing 1 MiB costs more than
        # hashing 4 KiB (one spare byte so that EOF is seen in one read)
        expect = os.fstat(f.fileno()).st_size - offset if length is None else length
        bufsize = max(1, min(bufsize, expect + 1))
        buf = bytearray(bufsize)
        view = memoryview(buf)
        if offset:
            f.seek(offset)
        while remaining is None or remaining > 0:
            want = bufsize if remaining is None else min(bufsize, remaining)
            n = f.readinto(view[:want] if want < bufsize else buf)
            if not n:
                break
            summer.update(view[:n] if n < bufsize else buf)
            if remaining is not None:
                remaining -= n


SMALL = 1 << 16         # bytes: a file up to this size is read in one call


def _sum_small(method: str, path: str, size: int, bufsize: int) -> str:
    """The sum of a whole file its status says is small: one read (and
    more if it grew meanwhile: hashed up to its end, as any other)."""
    h = _HASHES.get(method)()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)
        while data:
            h.update(data)
            data = os.read(fd, bufsize) if len(data) > size else b""
            size = -1
    finally:
        os.close(fd)
    return f"{method},{h.hexdigest()}"


def sum_file(path: str, method: str, offset: int = 0, length: int | None = None,
             bufsize: int = DEFAULT_BUFSIZE, size: int | None = None) -> str:
    """The ``sum`` header value for ``path`` (or its block at ``offset``,
    ``length`` bytes; None = to the end of the file). ``size``: the
    file's size as the caller knows it (a small file is read at once).

    Content letters stream the bytes; a file shorter than announced is
    hashed up to its end. ``n``/``R``/``m``/``r`` use the basename of
    ``path``, ``L`` its link target, ``0`` a random value. OSError from the
    file system propagates; ChecksumError for ``a``, ``z`` and unknown letters.
    """
    if method in CONTENT_METHODS:
        if offset < 0 or (length is not None and length < 0) or bufsize <= 0:
            raise ChecksumError(f"bad range offset={offset} length={length} "
                                f"bufsize={bufsize}")
        if size is not None and 0 <= size < SMALL and not offset and length is None:
            return _sum_small(method, path, size, bufsize)
        summer = new(method)
        _hash_stream(summer, path, offset, length, bufsize)
        return summer.header
    if method == "0":
        return f"0,{random_value()}"
    if method == "L":
        return sum_name("L", os.readlink(path))
    if method in NAME_METHODS:
        return sum_name(method, path)
    if method == "a":
        raise ChecksumError("sum method 'a' (arbitrary) cannot be computed")
    raise ChecksumError(f"cannot compute sum method '{method}' for a file")


def verify_method(header_sum: str) -> str | None:
    """The content letter a downloader computes for a ``sum`` header value.

    ``d,...``/``s,...``/``x,...`` -> that letter (to verify); ``z,X`` -> X when
    X is a content letter (to announce the computed sum downstream); None
    when the content cannot be verified (``n``, ``0``, ``a``, ``R``, ``L``,
    ``m``, ``r``, unknown letters, malformed values).
    """
    if not isinstance(header_sum, str):
        return None
    method, sep, value = header_sum.partition(",")
    if not sep:
        return None
    if method == "z":
        value = value.strip()
        return value if value in CONTENT_METHODS else None
    return method if method in CONTENT_METHODS else None
