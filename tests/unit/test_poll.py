"""dd_poll's pure parts: the listing parsers (nginx and Apache index pages,
FTP LIST and MLSD), what to do with a listed file, the state on disk, and
PollSource over a listing of our own with the lease on the memory broker."""
from __future__ import annotations

import calendar
import tracemalloc

import pytest

from sarra.broker.lease import Lease
from sarra.broker.memory import MemoryBroker, reset
from sarra.components import PRESETS
from sarra.config import load_config
from sarra.errors import ConfigError
from sarra.flow.polling import PollSource, directories, remote_sum
from sarra.poll import Entry, ListingError
from sarra.poll.base import ANNOUNCE, SKIP, WAIT, Key, Waiting, refusal, verdict
from sarra.poll.ftp import NOT_AN_ENTRY, parse_lines, parse_list, parse_mlsd
from sarra.poll.http import IndexParser
from sarra.poll.state import PollState

T = calendar.timegm((2026, 12, 3, 16, 40, 0))

NGINX = """<html>
<head><title>Index of /d/</title></head>
<body>
<h1>Index of /d/</h1><hr><pre><a href="../">../</a>
<a href="sub/">sub/</a>                                               03-Dec-2026 16:40                   -
<a href="a%20b%23.txt">a b#.txt</a>                                           03-Dec-2026 16:40                   3
<a href="unicod%C3%A9-a-very-long-name-that-nginx-cuts-in-the-shown-t..">unicodé-a-very-long-name-that-nginx-cuts-in-the-shown-t..&gt;</a> 03-Dec-2026 16:40   5000
<a href="rounded">rounded</a>                                            03-Dec-2026 16:40     12K
</pre><hr></body>
</html>
"""

APACHE_TABLE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>Index of /d</title></head><body><h1>Index of /d</h1>
<table><tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th></tr>
<tr><th colspan="5"><hr></th></tr>
<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td></tr>
<tr><td valign="top"><img src="/icons/text.gif" alt="[TXT]"></td><td><a href="a.txt">a.txt</a></td><td align="right">2026-12-03 16:40  </td><td align="right">  6 </td><td>&nbsp;</td></tr>
<tr><td valign="top"><img src="/icons/unknown.gif" alt="[   ]"></td><td><a href="b.bin">b.bin</a></td><td align="right">2026-12-03 16:40  </td><td align="right">1.2K</td><td>&nbsp;</td></tr>
<tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td><td><a href="sub/">sub/</a></td><td align="right">2026-12-03 16:40  </td><td align="right">  - </td><td>&nbsp;</td></tr>
</table></body></html>
"""

APACHE_PRE = """<html><head><title>Index of /d</title></head><body><h1>Index of /d</h1>
<pre><img src="/icons/blank.gif" alt="Icon "> <a href="?C=N;O=D">Name</a>   <a href="?C=M;O=A">Last modified</a>      <a href="?C=S;O=A">Size</a>
<hr><img src="/icons/back.gif" alt="[PARENTDIR]"> <a href="/">Parent Directory</a>                             -
<img src="/icons/text.gif" alt="[TXT]"> <a href="a.txt">a.txt</a>                  03-Dec-2026 16:40    6
<img src="/icons/folder.gif" alt="[DIR]"> <a href="sub/">sub/</a>                   03-Dec-2026 16:40    -
<hr></pre>
</body></html>
"""


def parse_page(text: str, chunk: int = 7) -> tuple[list[Entry], IndexParser]:
    parser = IndexParser()
    out = []
    for i in range(0, len(text), chunk):        # fed in pieces, as it arrives
        parser.feed(text[i:i + chunk])
        out += parser.entries
        parser.entries = []
    parser.close()
    return out + parser.entries, parser


def test_nginx_index_page_names_come_from_the_links():
    entries, _ = parse_page(NGINX)
    assert entries == [
        Entry("sub", None, T, True),
        Entry("a b#.txt", 3, T),
        Entry("unicodé-a-very-long-name-that-nginx-cuts-in-the-shown-t..", 5000, T),
        Entry("rounded", 12 << 10, T, exact=False),
    ]


@pytest.mark.parametrize("page", [APACHE_TABLE, APACHE_PRE])
def test_apache_index_pages(page):
    entries, _ = parse_page(page, chunk=50)
    by_name = {e.name: e for e in entries}
    assert by_name["a.txt"] == Entry("a.txt", 6, T)
    assert by_name["sub"] == Entry("sub", None, T, True)
    assert "Parent Directory" not in by_name and "Name" not in by_name
    if page is APACHE_TABLE:
        assert by_name["b.bin"] == Entry("b.bin", 1228, T, exact=False)


def test_a_page_that_is_no_index_is_told_apart():
    _, parser = parse_page("<html><body><a href='x.html'>see</a> elsewhere</body></html>")
    assert parser.links == 1 and parser.understood == 0 and parser.undated == 1


def test_ftp_list_lines():
    now = T + 3600
    assert parse_list("-rw-r--r--    1 0        0               2 Dec 03 16:40 a b  #c.txt",
                      now) == Entry("a b  #c.txt", 2, T)
    assert parse_list("drwxr-xr-x    2 ftp      ftp          4096 Jan  7  2024 old dir",
                      now) == Entry("old dir", None, calendar.timegm((2024, 1, 7, 0, 0, 0)), True)
    # no year: the last twelve months (December seen in January is last year's)
    jan = calendar.timegm((2027, 1, 2, 0, 0, 0))
    assert parse_list("-rw-r--r-- 1 u g 5 Dec 03 16:40 f", jan).mtime == T
    assert parse_list("-rw-r--r-- 1 user 5 Dec 03 16:40 nogroup", now) == Entry("nogroup", 5, T)
    assert parse_list("lrwxrwxrwx 1 0 0 5 Dec 03 16:40 l -> a", now) is NOT_AN_ENTRY
    assert parse_list("total 12", now) is NOT_AN_ENTRY
    assert parse_list("12-03-26  04:40PM                  123 dos name.txt", now) == \
        Entry("dos name.txt", 123, T)
    assert parse_list("12-03-26  04:40PM       <DIR>          dosdir", now) == \
        Entry("dosdir", None, T, True)
    assert parse_list("what is this", now) is None


def test_mlsd_lines():
    assert parse_mlsd("type=file;size=6;modify=20261203164000.5;perm=r; a b.txt") == \
        Entry("a b.txt", 6, T + 0.5)
    assert parse_mlsd("type=dir;modify=20261203164000; sub") == Entry("sub", None, T, True)
    assert parse_mlsd("type=cdir;modify=20261203164000; .") is NOT_AN_ENTRY
    assert parse_mlsd("type=OS.unix=slink:/x;modify=20261203164000; l") is NOT_AN_ENTRY
    assert parse_mlsd("type=file;modify=2026; bad") is None
    assert parse_mlsd("no facts here") is None


def test_a_listing_not_understood_shows_its_first_lines(caplog):
    with pytest.raises(ListingError) as info:
        list(parse_lines("list", ["garbage one", "garbage two"], "ftp://h/d/"))
    assert info.value.head == ["garbage one", "garbage two"]
    assert "| garbage one" in str(info.value) and info.value.recoverable
    # among good lines, bad ones are counted, not fatal
    good = list(parse_lines("list", ["-rw-r--r-- 1 0 0 2 Dec 03 16:40 a", "junk"], "ftp://h/d/"))
    assert [e.name for e in good] == ["a"] and "1 lines of the LIST listing" in caplog.text


def test_names_that_cannot_be_files_are_refused():
    for name in ("..", ".", "", "a/b", "a\nb", "a\x00", b"caf\xe9".decode("utf-8", "surrogateescape")):
        assert refusal(name), name
    for name in ("a b", "#1", "ü", "a..b", "...x"):
        assert refusal(name) is None, name


def test_verdict_announces_new_and_changed_files_once_they_settle():
    k1, k2 = Key(10, 1), Key(20, 1)
    assert verdict(k1, k1, None, 0, 0) == (SKIP, None)
    assert verdict(k2, k1, None, 0, 0) == (ANNOUNCE, None)
    assert verdict(k1, None, None, 0, 0) == (ANNOUNCE, None)
    # file_age_min 5: wait, start waiting again when it changes, announce once settled
    assert verdict(k1, None, None, 100, 5) == (WAIT, Waiting(k1, 100))
    assert verdict(k1, None, Waiting(k1, 100), 103, 5) == (WAIT, Waiting(k1, 100))
    assert verdict(k2, None, Waiting(k1, 100), 104, 5) == (WAIT, Waiting(k2, 104))
    assert verdict(k2, None, Waiting(k2, 104), 109, 5) == (ANNOUNCE, None)
    assert Key.of(Entry("a", None, None)) == Key(-1, -1)


def test_remote_directories_and_sums():
    assert directories("/pub/", ["obs", "/abs/x/", "obs/"]) == ["/pub/obs/", "/abs/x/"]
    assert directories("/pub/", []) == ["/pub/"]
    assert directories("/", []) == ["/"]
    with pytest.raises(ConfigError, match=r"'\.\.'"):
        directories("/pub/", ["../etc"])
    assert remote_sum("s", "a") == "z,s" and remote_sum("z,x", "a") == "z,x"
    assert remote_sum("n", "a").startswith("n,") and remote_sum("0", "a").startswith("0,")


def test_state_forgets_what_a_listing_no_longer_names(tmp_path):
    st = PollState(str(tmp_path / "poll.db"))
    for p in ("/d/a", "/d/b", "/d/sub/c", "/e/a"):
        st.announce(p, Key(1, 2))
    st.wait("/d/w", Waiting(Key(1, 1), 5.0))
    st.see("/d/a")
    assert st.forget_unseen("/d/") == 2           # /d/b and /d/w; /d/sub/c is another's
    st.commit()
    assert st.announced("/d/a") == Key(1, 2) and st.announced("/d/b") is None
    assert st.announced("/d/sub/c") and st.announced("/e/a") and st.waiting("/d/w") is None
    st.announce("/d/x", Key(3, 3))
    st.rollback()
    assert st.announced("/d/x") is None
    st.close()


class Listing:
    """A lister over a dict directory -> entries (a server of our own)."""

    def __init__(self, tree: dict[str, list[Entry]]):
        self.tree, self.calls = tree, 0

    def entries(self, url: str):
        self.calls += 1
        path = "/" + url.split("://", 1)[1].split("/", 1)[1]
        if path not in self.tree:
            raise ListingError(f"{url}: not understood", ["<html>"])
        yield from self.tree[path]

    def close(self) -> None:
        pass


@pytest.fixture
def poll_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))

    def load(*options):
        return load_config("poll", "t", [("broker", "memory://poll/"),
                                         ("poll_url", "ftp://u@h/pub/"), ("sleep", "0.01"),
                                         *options], PRESETS["poll"])
    (tmp_path / "conf" / "poll").mkdir(parents=True)
    (tmp_path / "conf" / "poll" / "t.conf").write_text("")
    yield load
    reset("poll")


def source(cfg, listing: Listing, lease=None) -> PollSource:
    src = PollSource(cfg, lease)
    src.lister = listing
    src.connect()
    return src


def take(src: PollSource, rounds: int = 1) -> list:
    out = []
    for _ in range(rounds * 3):
        msgs, _bad = src.get(0.05)
        out += msgs
        src.ack([])
    return out


def test_poll_source_posts_new_changed_and_accepted_files(poll_cfg):
    tree = {"/pub/": [Entry("a b#1", 5, T), Entry("d", None, T, True), Entry("..", 1, T),
                      Entry("skip.tmp", 1, T)],
            "/pub/d/": [Entry("ü", 7, T, exact=False)]}
    cfg = poll_cfg(("reject", r".*\.tmp"))
    src = source(cfg, Listing(tree))
    msgs = take(src)
    assert {m.relpath: (m.headers["sum"], m.headers.get("parts")) for m in msgs} == {
        "pub/a b#1": ("z,s", "1,5,1,0,0"), "pub/d/ü": ("z,s", None)}
    assert {m.base_url for m in msgs} == {"ftp://u@h/"}
    assert take(src, 2) == []                             # unchanged: never again
    tree["/pub/"][0] = Entry("a b#1", 6, T)               # changed
    tree["/pub/d/"] = []                                  # gone: forgotten
    assert [m.relpath for m in take(src)] == ["pub/a b#1"]
    tree["/pub/d/"] = [Entry("ü", 7, T, exact=False)]     # back: new again
    assert [m.relpath for m in take(src)] == ["pub/d/ü"]
    src.close()
    again = source(cfg, Listing(tree))                    # a restart: nothing new
    assert take(again, 2) == []
    again.close()


def test_poll_source_rewinds_unconfirmed_batches_and_skips_what_it_cannot_read(poll_cfg):
    tree = {"/pub/": [Entry("a", 1, T), Entry("odd", None, T, True)]}
    src = source(poll_cfg(), Listing(tree))
    first, _ = src.get(0.05)
    src.rewind()                                          # not confirmed
    again, _ = src.get(0.05)
    assert [m.relpath for m in first] == [m.relpath for m in again] == ["pub/a"]
    src.close()                                           # never acknowledged: not recorded
    other = source(poll_cfg(), Listing(tree))
    assert [m.relpath for m in take(other)] == ["pub/a"]
    assert other.rounds >= 1
    other.close()


def test_post_base_url_and_poll_url_are_checked(poll_cfg):
    with pytest.raises(ConfigError, match="password"):
        PollSource(poll_cfg(("poll_url", "ftp://u:secret@h/pub/")))
    with pytest.raises(ConfigError, match="cannot list gopher"):
        PollSource(poll_cfg(("poll_url", "gopher://h/pub/")))
    with pytest.raises(ConfigError, match="not above"):
        PollSource(poll_cfg(("post_base_url", "http://web/other/")))
    src = source(poll_cfg(("post_base_url", "http://web/pub/")),
                 Listing({"/pub/": [Entry("x", 1, T)]}))
    [m] = take(src)
    assert (m.base_url, m.relpath) == ("http://web/pub/", "x")
    src.close()


def test_only_the_lease_holder_polls_and_another_takes_over(poll_cfg, monkeypatch):
    from sarra.broker import lease as lease_module
    monkeypatch.setattr(lease_module, "TRY_EVERY", 0.0)
    tree = {"/pub/": [Entry("a", 1, T)]}
    cfg = poll_cfg()
    lists = [Listing(tree), Listing(tree)]
    sources = [source(cfg, lists[i], Lease(MemoryBroker("memory://poll/"), "q_u.poll.t.lease"))
               for i in range(2)]
    got = [take(s) for s in sources]
    assert [len(g) for g in got] == [1, 0] and lists[1].calls == 0
    sources[0].close()                                    # the holder goes: its queue too
    tree["/pub/"].append(Entry("b", 1, T))
    assert [m.relpath for m in take(sources[1])] == ["pub/b"]
    sources[1].close()


def test_a_long_index_page_is_parsed_in_bounded_memory():
    """10,000 entries fed in 64 KiB pieces: what is held is a chunk's worth,
    not the page (bench/bench_poll.py measures a 100,000-entry round)."""
    line = '<a href="file-{0:06d}.dat">file-{0:06d}.dat</a>        03-Dec-2026 16:40    {0}\n'
    page = "<html><body><pre>" + "".join(line.format(i) for i in range(10_000)) + "</pre>"
    data = page.encode()
    parser = IndexParser()
    count = 0
    tracemalloc.start()
    try:
        for i in range(0, len(data), 1 << 16):
            parser.feed(data[i:i + (1 << 16)].decode())
            count += len(parser.entries)
            parser.entries = []
        parser.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count + len(parser.entries) == 10_000
    assert len(data) > 750_000 and peak < 512 << 10, f"{peak} bytes held for a page of {len(data)}"


def test_a_round_that_fails_posts_what_it_gave_and_tries_again_later(poll_cfg, caplog):
    from sarra.errors import TransferError

    class Failing(Listing):
        def entries(self, url):
            if url.endswith("/pub/d/"):
                raise TransferError("connection lost")
            yield from super().entries(url)
    tree = {"/pub/": [Entry("d", None, T, True), Entry("a", 1, T)], "/pub/d/": []}
    src = source(poll_cfg(), Failing(tree))
    msgs, _ = src.get(0.05)
    assert [m.relpath for m in msgs] == ["pub/a"]          # given before the failure
    assert "/pub/: connection lost" in caplog.text
    assert "1 of the 1 paths could not be listed; next round in 1s" in caplog.text
    src.ack([])
    assert src.get(0.05) == ([], [])                       # backing off
    src.close()


def test_a_lease_that_cannot_be_reached_is_not_held_and_says_why_once(caplog, monkeypatch):
    from sarra.broker import lease as lease_module
    from sarra.errors import BrokerError

    class Refusing(MemoryBroker):
        def connect(self):
            raise BrokerError("ACCESS_REFUSED to queue q_u.poll.t.lease", recoverable=False)
    monkeypatch.setattr(lease_module, "RECONNECT", 0.0)
    lease = Lease(Refusing("memory://refused/"), "q_u.poll.t.lease", what="polling")
    assert [lease.held(0.01) for _ in range(3)] == [False, False, False]
    said = [r for r in caplog.records if "cannot be contended for" in r.getMessage()]
    assert len(said) == 1 and "ACCESS_REFUSED" in said[0].getMessage()


def test_poll_posts_round_trip_in_v02_and_v03(poll_cfg):
    from sarra.codec import decode, encode
    src = source(poll_cfg(), Listing({"/pub/": [Entry("a b#ü.txt", 5, T)]}))
    [msg] = take(src)
    src.close()
    for prefix in ("v02.post", "v03.post"):
        topic, headers, body, ctype = encode(msg, prefix)
        back = decode(topic, headers, body, ctype, "xs_u")
        assert (back.base_url, back.relpath, back.headers["sum"]) == \
            ("ftp://u@h/", "pub/a b#ü.txt", "z,s"), prefix
        assert back.parts.file_size == 5 and back.headers["mtime"] == msg.headers["mtime"]


def test_waiting_files_refused_names_and_rejected_ones(poll_cfg, caplog):
    """file_age_min: a file waits (recorded on disk) until listed unchanged that
    long; a rejected one never waits; a refused name is warned of once."""
    tree = {"/pub/": [Entry("a", 1, T), Entry("x.tmp", 1, T), Entry("..", 1, T)]}
    src = source(poll_cfg(("file_age_min", "0.3"), ("reject", r".*\.tmp")), Listing(tree))
    assert take(src) == []
    assert src.state.waiting("/pub/a") is not None and src.state.waiting("/pub/x.tmp") is None
    import time
    time.sleep(0.35)
    assert [m.relpath for m in take(src)] == ["pub/a"]
    assert src.state.waiting("/pub/a") is None
    warned = [r for r in caplog.records if "refused (never posted)" in r.getMessage()]
    assert len(warned) == 1 and "'..'" in warned[0].getMessage()
    src.close()


def test_dd_poll_posts_through_rabbitmq_only(poll_cfg):
    """The lease is an exclusive queue, which MQTT brokers do not have: said at start."""
    from sarra.components import poll_flow
    with pytest.raises(ConfigError, match="not MQTT"):
        poll_flow(poll_cfg(("post_broker", "mqtt://u@h/")))
