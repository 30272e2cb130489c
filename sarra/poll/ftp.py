"""Listings of FTP and FTPS directories. Schemes: ftp, ftps. Requires the
standard library's ftplib (through the FTP transfer, transfer/ftp.py).

MLSD when the server offers it (exact sizes, times to the second, UTC);
otherwise LIST, in the Unix ``ls -l`` form most servers write (times to the
minute for recent files, to the day for files over six months old, read as
UTC) or the DOS form of IIS. Symbolic links are not announced (a LIST line
gives the link's size, not its target's). The listing is spooled to a
temporary file as it arrives, then parsed a line at a time: memory does
not grow with its length.

A listing none of whose lines is understood is not a listing (ListingError
with its first lines); lines not understood among good ones are counted
and logged.
"""
import calendar
import logging
import re
import tempfile
import time
from typing import Iterator

from ..transfer import SCHEMES
from .base import HEAD_LINES, Entry, ListingError

log = logging.getLogger(__name__)

SPOOL = 1 << 20            # bytes of a listing kept in memory before it spills to disk

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul",
                                        "aug", "sep", "oct", "nov", "dec"), 1)}
_UNIX = re.compile(r"^(?P<type>[-dlbcpsD])[-rwxsStTl+.@]{9,10}\S*\s+\d+\s+\S+(?:\s+\S+)?\s+"
                   r"(?P<size>\d+)\s+(?P<mon>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+"
                   r"(?:(?P<H>\d{1,2}):(?P<M>\d{2})|(?P<year>\d{4}))\s(?P<name>.+)$")
_DOS = re.compile(r"^(?P<mo>\d{2})-(?P<d>\d{2})-(?P<y>\d{2}(?:\d{2})?)\s+(?P<H>\d{1,2}):"
                  r"(?P<M>\d{2})(?P<ampm>[AaPp][Mm])?\s+(?:(?P<dir><DIR>)|(?P<size>\d+))\s+"
                  r"(?P<name>.+)$")

NOT_AN_ENTRY = object()     # a line that is understood and names nothing ('total 12')


def parse_mlsd(line: str):
    """The Entry of one MLSD line (``fact=value;...; name``); None when not
    understood; NOT_AN_ENTRY for the directory itself, its parent, links."""
    facts_text, sep, name = line.partition(" ")
    if not sep or "=" not in facts_text:
        return None
    facts = {}
    for fact in facts_text.split(";"):
        key, eq, value = fact.partition("=")
        if eq:
            facts[key.strip().lower()] = value
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir") or kind.startswith("os.unix=slink") or "slink" in kind:
        return NOT_AN_ENTRY
    mtime = None
    if "modify" in facts:
        try:
            mtime = mtime_of(facts["modify"])
        except ValueError:
            return None
    if kind == "dir":
        return Entry(name, None, mtime, True)
    if kind != "file":
        return None if not kind else NOT_AN_ENTRY
    size = facts.get("size")
    return Entry(name, int(size) if size and size.isdigit() else None, mtime)


def mtime_of(stamp: str) -> float:
    """Seconds since the epoch of an FTP time (YYYYMMDDHHMMSS[.sss], UTC)."""
    whole, _, frac = stamp.partition(".")
    if len(whole) != 14 or not whole.isdigit():
        raise ValueError(f"not an FTP time: {stamp!r}")
    t = calendar.timegm(time.strptime(whole, "%Y%m%d%H%M%S"))
    return t + (float("0." + frac) if frac.isdigit() else 0.0)


def parse_list(line: str, now: float | None = None):
    """The Entry of one LIST line (Unix or DOS form); None when not
    understood; NOT_AN_ENTRY for 'total N', '.', '..' and links. A Unix time
    without a year is of the last twelve months (``now``: the clock)."""
    if re.match(r"^total\s+\d+\s*$", line):
        return NOT_AN_ENTRY
    m = _UNIX.match(line)
    if m:
        kind, name = m.group("type"), m.group("name")
        if kind == "l" or name in (".", ".."):
            return NOT_AN_ENTRY
        if kind not in "-dD":
            return NOT_AN_ENTRY      # devices, pipes, sockets
        month = _MONTHS.get(m.group("mon").lower())
        if month is None:
            return None
        day = int(m.group("day"))
        if m.group("year"):
            stamp = _utc(int(m.group("year")), month, day, 0, 0)
        else:
            now = time.time() if now is None else now
            year = time.gmtime(now).tm_year
            stamp = _utc(year, month, day, int(m.group("H")), int(m.group("M")))
            if stamp is not None and stamp > now + 86400:
                stamp = _utc(year - 1, month, day, int(m.group("H")), int(m.group("M")))
        if stamp is None:
            return None
        if kind in "dD":
            return Entry(name, None, stamp, True)
        return Entry(name, int(m.group("size")), stamp)
    m = _DOS.match(line)
    if m:
        year = int(m.group("y"))
        year += 2000 if year < 70 else 1900 if year < 100 else 0
        hour = int(m.group("H")) % 12 if m.group("ampm") else int(m.group("H"))
        if (m.group("ampm") or "").lower() == "pm":
            hour += 12
        stamp = _utc(year, int(m.group("mo")), int(m.group("d")), hour, int(m.group("M")))
        if stamp is None:
            return None
        if m.group("name") in (".", ".."):
            return NOT_AN_ENTRY
        if m.group("dir"):
            return Entry(m.group("name"), None, stamp, True)
        return Entry(m.group("name"), int(m.group("size")), stamp)
    return None


def _utc(y: int, mo: int, d: int, h: int, mi: int) -> float | None:
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60):
        return None
    return float(calendar.timegm((y, mo, d, h, mi, 0, 0, 0, 0)))


def parse_lines(kind: str, lines, where: str) -> Iterator[Entry]:
    """The entries of a listing's lines (``kind`` 'mlsd' or 'list');
    ListingError when there are lines and none is understood."""
    parse = parse_mlsd if kind == "mlsd" else parse_list
    head: list[str] = []
    good = bad = 0
    now = time.time()
    for line in lines:
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if len(head) < HEAD_LINES:
            head.append(line)
        entry = parse(line) if kind == "mlsd" else parse(line, now)
        if entry is None:
            bad += 1
            continue
        good += 1
        if entry is not NOT_AN_ENTRY:
            yield entry
    if bad and not good:
        raise ListingError(f"{where}: {kind.upper()} listing not understood ({bad} lines)",
                           head)
    if bad:
        log.warning("%s: %d lines of the %s listing not understood (skipped)", where, bad,
                    kind.upper())


class FtpLister:
    """The entries of FTP(S) directories, read with the FTP transfer."""

    def __init__(self, timeout: float = 30.0, credentials=None, tls=None, **_options):
        self._ftp = SCHEMES.get("ftp")(timeout=timeout, credentials=credentials, tls=tls)

    def entries(self, url: str) -> Iterator[Entry]:
        with tempfile.SpooledTemporaryFile(SPOOL, mode="w+", encoding="utf-8",
                                           errors="surrogateescape") as spool:
            def restart() -> None:
                spool.seek(0)
                spool.truncate()
            kind = self._ftp.listing(url, lambda line: spool.write(line + "\n"), restart)
            spool.seek(0)
            yield from parse_lines(kind, spool, url)

    def close(self) -> None:
        self._ftp.close()
