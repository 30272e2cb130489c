"""Listings of HTTP(S) directory index pages. Schemes: http, https.
Requires: requests (through the HTTP transfer, transfer/http.py).

Understood: nginx's ``autoindex`` pages (names, ``DD-Mon-YYYY HH:MM``, the
size in bytes, or rounded as '12K' with ``autoindex_exact_size off``) and
Apache's ``mod_autoindex`` pages (a table or preformatted text, dates
``YYYY-MM-DD HH:MM`` or ``DD-Mon-YYYY HH:MM``, sizes rounded as '1.2K').
The name comes from the link (percent-decoded), never from the shown text
(which long names are cut in). Times are read as UTC (nginx's default; an
Apache server in another time zone shows its local time). A rounded size is
not posted (the post then has no ``parts``). The page is parsed as it
arrives: a listing of any length takes the memory of one chunk.

A page with no link, or whose links carry no date, is not a listing
(ListingError with its first lines).
"""
import calendar
import codecs
import re
from html.parser import HTMLParser
from typing import Iterator
from urllib.parse import unquote

from ..transfer import SCHEMES
from .base import HEAD_LINES, Entry, ListingError

CHUNK = 1 << 16

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul",
                                        "aug", "sep", "oct", "nov", "dec"), 1)}
_DATE = re.compile(r"(?:(?P<d>\d{1,2})-(?P<mon>[A-Za-z]{3})-(?P<y>\d{4})"
                   r"|(?P<y2>\d{4})-(?P<m2>\d{2})-(?P<d2>\d{2}))"
                   r"[ T](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?")
_SIZE = re.compile(r"\s*(?P<n>-|\d+(?:\.\d+)?)\s*(?P<unit>[KMGTP]?)(?:i?B)?(?![\w.])")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_when(text: str) -> tuple[float | None, str]:
    """(seconds since the epoch, the text after the date) of the first date
    in ``text`` (UTC); (None, text) when there is none."""
    m = _DATE.search(text)
    if not m:
        return None, text
    if m.group("y"):
        month = _MONTHS.get(m.group("mon").lower())
        if month is None:
            return None, text
        y, mo, d = int(m.group("y")), month, int(m.group("d"))
    else:
        y, mo, d = int(m.group("y2")), int(m.group("m2")), int(m.group("d2"))
    try:
        t = calendar.timegm((y, mo, d, int(m.group("H")), int(m.group("M")),
                             int(m.group("S") or 0), 0, 0, 0))
    except (ValueError, OverflowError):
        return None, text
    return float(t), text[m.end():]


def parse_size(text: str) -> tuple[int | None, bool]:
    """(bytes, exact) of the size at the start of ``text``: '123' is exact,
    '1.2K' rounded, '-' or nothing is (None, True)."""
    m = _SIZE.match(text)
    if not m or m.group("n") == "-":
        return None, True
    unit = m.group("unit").upper()
    n = float(m.group("n"))
    return int(n * _UNITS[unit]), unit == "" and "." not in m.group("n")


class IndexParser(HTMLParser):
    """Fed an index page in pieces; ``entries`` collects what it understood
    (taken out by the caller as it goes), ``links`` and ``undated`` count
    the links seen and those without a date."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.entries: list[Entry] = []
        self.links = 0
        self.undated = 0
        self.understood = 0
        self._href: str | None = None
        self._tail: list[str] = []
        self._in_link = False

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._flush()
            href = dict(attrs).get("href")
            if href is not None:
                self.links += 1
                self._href = href
                self._in_link = True
        elif tag in ("tr", "pre", "table"):
            self._flush()

    def handle_endtag(self, tag):
        if tag == "a":
            self._in_link = False
        elif tag in ("tr", "pre", "table", "body", "html"):
            self._flush()

    def handle_data(self, data):
        if self._href is not None and not self._in_link:
            self._tail.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        href, tail = self._href, "".join(self._tail)
        self._href, self._tail, self._in_link = None, [], False
        if href is None:
            return
        name = _child(href)
        if name is None:
            return
        when, rest = parse_when(tail)
        if when is None:
            self.undated += 1
            return
        self.understood += 1
        is_dir = href.split("?", 1)[0].endswith("/")
        size, exact = (None, True) if is_dir else parse_size(rest)
        self.entries.append(Entry(name, size, when, is_dir, exact))


def _child(href: str) -> str | None:
    """The name a link of an index page names in its directory, or None
    (the parent, sorting links, absolute or foreign links)."""
    if not href or href[0] in "?#/" or "://" in href or href.startswith("mailto:"):
        return None
    path = href.split("?", 1)[0].split("#", 1)[0]
    if path.startswith("./"):
        path = path[2:]
    path = path[:-1] if path.endswith("/") else path
    if not path or "/" in path:
        return None
    name = unquote(path, errors="surrogateescape")
    return None if name in (".", "..") else name


class HttpLister:
    """The entries of index pages, read with the HTTP transfer."""

    def __init__(self, timeout: float = 30.0, credentials=None, tls=None, **_options):
        self._http = SCHEMES.get("http")(timeout=timeout, credentials=credentials, tls=tls)

    def entries(self, url: str) -> Iterator[Entry]:
        stream = self._http.open(url if url.endswith("/") else url + "/")
        parser = IndexParser()
        head: list[str] = []
        decode = _Decoder()
        try:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                text = decode(chunk)
                if len(head) < HEAD_LINES:
                    head += text.splitlines()[:HEAD_LINES - len(head)]
                parser.feed(text)
                yield from _drain(parser)
            parser.feed(decode(b"", final=True))
            parser.close()
            yield from _drain(parser)
        finally:
            stream.close()
        if parser.links == 0 or (parser.understood == 0 and parser.undated):
            raise ListingError(f"{url}: not an index page understood (nginx autoindex, "
                               f"Apache mod_autoindex): {parser.links} links, "
                               f"{parser.undated} without a date", head)

    def close(self) -> None:
        self._http.close()


def _drain(parser: IndexParser) -> list[Entry]:
    out, parser.entries = parser.entries, []
    return out


class _Decoder:
    """UTF-8 across chunk boundaries (a bad byte becomes U+FFFD)."""

    def __init__(self) -> None:
        self._d = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, data: bytes, final: bool = False) -> str:
        return self._d.decode(data, final)
