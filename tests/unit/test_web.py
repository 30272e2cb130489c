"""The pure parts of the web console and of dd_log's ledger: the page's data
from the metrics files (the last hour, the latest outcomes), the history an
instance keeps, the builder's checks (hostile forms), who may log in, the
ledger's look-ups."""
from __future__ import annotations

import base64
import os

import pytest

from sarra.config.credentials import Credentials
from sarra.errors import ConfigError
from sarra.flow.housekeeping import HISTORY_SPAN, History
from sarra.flow.ledger import Ledger, find_in
from sarra.message import Message, Report
from sarra.web import builder, status
from sarra.web.server import Console, Sources, parse_listen

NOW = 1_800_000_000.0 - 1_800_000_000.0 % 60 + 30     # 30 s into a minute


def test_history_keeps_an_hour_minute_by_minute_and_its_predecessors():
    h = History()
    h.add(NOW - 120, 10, 1000, 0, 0.5)
    h.add(NOW - 100, 5, 500, 1, 2.0)          # the same minute: added up, the largest lag
    h.add(NOW, 3, 300, 0, None)
    assert h.entries == [[NOW - 150, 15, 1500, 1, 2.0], [NOW - 30, 3, 300, 0, None]]
    h.add(NOW + HISTORY_SPAN - 60, 1, 1, 0, None)    # an hour later: the first minute goes
    assert [e[0] for e in h.entries] == [NOW - 30, NOW + HISTORY_SPAN - 90]
    kept = History([[NOW - 150, 1, 1, 0, None], ["bad"], [NOW - 2 * HISTORY_SPAN, 1, 1, 0, 1],
                    [NOW - 90, 2, 2, 0, "x"]], now=NOW)
    assert kept.entries == [[NOW - 150, 1, 1, 0, None]]


def test_the_page_sums_the_instances_minutes_and_merges_their_outcomes():
    a = {"history": [[NOW - 90, 60, 0, 6, 1.0], [NOW - 30, 15, 0, 0, None]],
         "recent": {"ok": [[NOW - 5, "a/x", 201, "Downloaded"]],
                    "failed": [[NOW - 3, "a/y", 499, "refused"]]}}
    b = {"history": [[NOW - 90, 30, 0, 0, 4.0], "junk", [NOW - 2 * HISTORY_SPAN, 9, 9, 9, 9]],
         "recent": {"ok": [[NOW - 1, "b/z", 201, "Downloaded"], ["short"]], "failed": []}}
    got = status.history([a, b], NOW)
    assert got == [[NOW - 90, 1.5, 4.0, 0.1], [NOW - 30, 0.5, None, 0.0]]  # 15 in 30 s
    recent = status.recent([a, b])
    assert [r["relpath"] for r in recent["ok"]] == ["b/z", "a/x"]
    assert recent["failed"] == [{"time": NOW - 3, "relpath": "a/y", "code": 499,
                                 "reason": "refused"}]


FORM = {"name": "obs", "broker": "amqp://anonymous@switch.example.com/",
        "exchange": "xpublic", "subtopic": "observations.#\nradar.#", "reject": r".*\.tmp$",
        "accept": ".*", "directory": "/data/obs", "mirror": True, "strip": "1"}


def test_the_builder_composes_and_checks_with_the_tools_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path))
    built = builder.build(FORM)
    assert built.errors == {} and built.written is None
    assert built.text == ("broker amqp://anonymous@switch.example.com/\nexchange xpublic\n"
                          "subtopic observations.#\nsubtopic radar.#\ndirectory /data/obs\n"
                          "mirror on\nstrip 1\nreject .*\\.tmp$\naccept .*\n")
    assert not list(tmp_path.iterdir())
    built = builder.build(FORM, write=True)
    assert built.written == str(tmp_path / "subscribe" / "obs.conf")
    assert (tmp_path / "subscribe" / "obs.conf").read_text() == built.text
    again = builder.build(dict(FORM, directory="/elsewhere"), write=True)
    assert "exists already" in again.errors["name"] and again.written is None
    assert "/data/obs" in (tmp_path / "subscribe" / "obs.conf").read_text()
    assert os.listdir(tmp_path / "subscribe") == ["obs.conf"]      # nothing left aside


@pytest.mark.parametrize("field, value, why", [
    ("name", "../x", "a name of letters"), ("name", "a/b", "a name of letters"),
    ("name", ".hidden", "a name of letters"), ("name", "x.conf", "without '.conf'"),
    ("name", "x" * 65, "a name of letters"), ("exchange", "x\naccept .*", "line break"),
    ("directory", "/d\r\ninclude /etc/passwd", "line break"),
    ("directory", "/d\x00", "control character"), ("exchange", "x" * 1001, "longer than"),
    ("subtopic", ["a.#", "b\u2028c"], "control character"), ("accept", "", "at least one"),
    ("accept", "(open", "invalid regular expression"), ("broker", "", "needed"),
    ("broker", "amqp://u:hunter2@h/", "credentials.conf"), ("mirror", "yes", "true or false"),
    ("strip", "[", "neither a count"), ("accept", ["x"] * 51, "more than 50"),
    ("exchange", 42, "must be text"), ("directory", "", "needed"),
])
def test_hostile_or_wrong_fields_are_refused_beside_the_field(tmp_path, monkeypatch, field,
                                                               value, why):
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path))
    built = builder.build(dict(FORM, **{field: value}), write=True)
    assert why in built.errors.get(field, ""), built.errors
    assert built.written is None and not list(tmp_path.rglob("*.conf"))
    assert "hunter2" not in built.text + repr(built.errors)


def _console(text: str, host="127.0.0.1", port=8990, remote=False) -> Console:
    sources = Sources(lambda: ([], []), lambda r: {}, lambda r: "", lambda p: [])
    return Console(sources, host, port, remote, Credentials.from_text(text))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_who_may_use_the_console():
    open_console = _console("")
    assert open_console.users == [] and open_console.authorized(None)
    assert open_console.host_allowed("127.0.0.1:8990") and open_console.host_allowed(
        "localhost:8990")
    assert not open_console.host_allowed("evil.example:8990")
    assert not open_console.host_allowed(None) and not open_console.host_allowed("127.0.0.1:1")
    with pytest.raises(ConfigError, match="needs --remote"):
        _console("", host="192.0.2.1")
    with pytest.raises(ConfigError, match="needs a login"):
        _console("http://op:pw@192.0.2.2:8990/", host="192.0.2.1", remote=True)
    c = _console("http://op:p%40ss@192.0.2.1:8990/\nhttp://nopass@192.0.2.1:8990/",
                 host="192.0.2.1", remote=True)
    assert c.users == ["op"] and c.host_allowed("anything:1")
    assert c.authorized(_basic("op", "p@ss"))
    for bad in (None, "", "Bearer x", _basic("op", "p@s"), _basic("nopass", ""),
                _basic("other", "p@ss"), "Basic !!!", "Basic " + base64.b64encode(b"op")
                .decode()):
        assert not c.authorized(bad), bad
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("8990", "host:", ":80", "h:99999", "h:x"):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            parse_listen(bad)


def _log_message(relpath: str, code: int, user="carol", duration=0.1) -> Message:
    return Message("20261125120003.5", "http://h/", relpath, {"from_cluster": "lab1"},
                   report=Report(code, "sub.example.com", user, duration, "text"))


def test_the_ledger_answers_by_path_name_and_pattern_and_forgets_with_age(tmp_path):
    path = str(tmp_path / "ledger.sqlite3")
    ledger = Ledger(path, max_age=3600, switch="broker.example.com")
    for m, seen in ((_log_message("obs/a.txt", 499), NOW - 7200),
                    (_log_message("obs/a.txt", 499), NOW - 10),     # the same: kept once
                    (_log_message("obs/a.txt", 201, duration=0.2), NOW - 5),
                    (_log_message("radar/a.txt", 201), NOW - 4),
                    (_log_message("obs/b.grib2", 201), NOW - 3)):
        ledger.add(m, now=seen)
    ledger.add(Message("20261125120003", "http://h/", "post/only"))     # a post: not kept
    ledger.commit(now=NOW)
    rows = ledger.find("/obs/a.txt")
    assert [(r["code"], r["cluster"], r["user"]) for r in rows] == [(201, "lab1", "carol")]
    assert {r["relpath"] for r in ledger.find("a.txt")} == {"obs/a.txt", "radar/a.txt"}
    assert [r["relpath"] for r in ledger.find("*.grib2")] == ["obs/b.grib2"]
    assert [r["relpath"] for r in ledger.find("obs/*")] == ["obs/a.txt", "obs/b.grib2"]
    assert ledger.find("nothing") == [] and ledger.find("post/only") == []
    ledger.close()
    got = find_in([("log/mine", path), ("log/none", str(tmp_path / "absent"))], "a.txt")
    assert [r["ledger"] for r in got] == ["log/mine", "log/mine"]


def test_the_switch_view_adds_up_the_sources_of_its_sara_and_log_router():
    from sarra.flow.engine import source_kind
    assert source_kind(Message("20261125120003", "http://h/", "a")) == "post"
    assert source_kind(_log_message("a", 304)) == "log_ok"
    assert source_kind(_log_message("a", 499)) == "log_failed"
    files = {
        "sara/switch": [{"sources": {"post": {"alice": [10, 6.0]}}},
                        {"sources": {"post": {"alice": [5, 3.0], "bob": [1, 0.0]},
                                     "log_ok": {"alice": [99, 9.0]}}}],   # not a sara's
        "shovel/logs": [{"sources": {"log_ok": {"alice": [12, 4.0]},
                                     "log_failed": {"bob": [2, 1.0], "x": "junk"},
                                     "post": {"carol": [7, 7.0]}}}],      # not a router's
        "shovel/logs-to-east": [{"sources": {"log_ok": {"alice": [50, 5.0]}}}],
        "subscribe/obs": [{"sources": {"post": {"alice": [3, 1.0]}}}],
    }
    assert status.switch(files) == [
        {"source": "alice", "post": [15.0, 9.0], "log_ok": [12.0, 4.0],
         "log_failed": [0.0, 0.0]},
        {"source": "bob", "post": [1.0, 0.0], "log_ok": [0.0, 0.0], "log_failed": [2.0, 1.0]}]
    assert status.switch({"subscribe/obs": files["subscribe/obs"]}) == []


def test_hostile_file_names_are_kept_and_shown(tmp_path):
    ledger = Ledger(str(tmp_path / "l.sqlite3"), max_age=0)
    ledger.add(_log_message("obs/\udcff-bad.txt", 201))
    ledger.commit()
    assert [r["relpath"] for r in ledger.find("*bad.txt")] == ["obs/\\udcff-bad.txt"]
    metrics = [{"recent": {"ok": [[NOW, "obs/\udcff-bad.txt", 201, "Downloaded"]]}}]
    import json
    text = json.dumps(status.recent(metrics))          # as the server sends it (ASCII)
    assert text.isascii() and json.loads(text)["ok"][0]["relpath"] == "obs/\udcff-bad.txt"
