"""Restricted posts: who may read a file, as its source said (doc/protocol.md §17).

A source posts with ``readers bob,carol@labC``: the post carries the header
``readers`` with that list in its canonical form (``canonical``: sorted,
each name once), and every switch it crosses keeps the file where only
those readers (and its links) may fetch it, and the post where only they
(and its links) may read it. No readers: a public post.

A reader is a user name (letters, digits and ``-``, as a switch's users,
doc/switch.md), optionally qualified by the cluster whose user it is:
``bob@labC`` is labC's bob and nobody else's; plain ``bob`` is the bob of
whichever switch the data is on (``local``).

Pure functions, no I/O; imports nothing of the package.
"""
from __future__ import annotations

import re
from typing import NamedTuple

HEADER = "readers"
PUBLIC_EXCHANGE = "xpublic"       # a switch's public posts
PRIVATE_EXCHANGE = "xprivate"     # a switch's restricted posts (its links read them)
PRIVATE_PREFIX = "xprivate_"      # + user: the restricted posts that user may read
# a switch's restricted files are served at <base_url>_private/<readers>/<relpath>
# ('_' begins no user name: no source's directory is shadowed)
PRIVATE_PATH = "_private"

USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
CLUSTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class Reader(NamedTuple):
    user: str
    cluster: str | None = None     # None: the user of whichever switch holds the data

    def __str__(self) -> str:
        return self.user if self.cluster is None else f"{self.user}@{self.cluster}"


def parse_readers(value: str | None, option: str = "readers") -> tuple[Reader, ...]:
    """The readers of ``value`` (comma-separated ``user`` or ``user@cluster``;
    blanks around a name do not count), sorted, each once; () for an empty
    value (public). ValueError naming ``option`` for a bad name."""
    out = set()
    for word in (value or "").split(","):
        word = word.strip()
        if not word:
            continue
        user, at, cluster = word.partition("@")
        if not USER.fullmatch(user) or not user.isascii():
            raise ValueError(f"{option}: bad user name {ascii(user)} in {ascii(value)}: "
                             "letters, digits and '-' (user or user@cluster, "
                             "comma-separated)")
        if at and (not CLUSTER.fullmatch(cluster) or not cluster.isascii()
                   or cluster == "ALL"):
            raise ValueError(f"{option}: bad cluster name {ascii(cluster)} in "
                             f"{ascii(value)}: letters, digits, '_' and '-' (not ALL)")
        out.add(Reader(user, cluster if at else None))
    return tuple(sorted(out, key=lambda r: (r.user, r.cluster or "")))


def canonical(readers: tuple[Reader, ...]) -> str:
    """The header value (and the key of the switch's private tree): the
    readers sorted, comma-separated, without blanks; '' when public."""
    return ",".join(str(r) for r in readers)


def local(readers: tuple[Reader, ...], cluster: str | None) -> list[str]:
    """The user names, on the switch of ``cluster``, that ``readers`` names:
    the unqualified ones and those qualified with ``cluster``; sorted, once."""
    return sorted({r.user for r in readers if r.cluster is None or r.cluster == cluster})


def widens(before: tuple[Reader, ...], after: tuple[Reader, ...]) -> bool:
    """Whether ``after`` lets someone read what ``before`` did not: it is
    public, or names a reader ``before`` did not (a narrower list is fine)."""
    return bool(before) and (not after or not set(after) <= set(before))


def private_exchange(user: str) -> str:
    """``xprivate_<user>``: the restricted posts ``user`` may read."""
    return f"{PRIVATE_PREFIX}{user}"
