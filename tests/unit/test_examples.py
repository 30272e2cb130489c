"""The example files under etc/ load, with the tool they are written for.

Every file under etc/ must be one of: ``default.conf`` (read by every
tool), ``credentials.conf.example``, or ``<tool>/<name>.conf`` where
``<tool>`` is a tool name; a file of any other kind fails the test, so a new
example cannot slip in untested. Each configuration is loaded as the tool
would load it (tool presets, then etc/default.conf installed as the user's
default.conf, then the file): an unknown option, a bad value or a missing
include fails here with the file, line and option in the message.

The switch examples (a switch's dd_sara and log router, a link between two
switches and its log link back, dd_winnow over two feeds, a dd_log
configuration) are also run through the flow's own stages, without a
broker, to check that they do what their comments say.

The man pages are checked against the option table the same way: every
option a page documents exists, applies to its tool and is acted upon;
every option it lists as without effect exists for its tool; every option
accepted but not acted upon yet is so listed; the other way round, every
option that applies to a tool is documented in its page or listed there as
without effect; sarra(1) describes the
operator's actions, dd_audit(1) the actions and options of its own parser;
every tool has a page, every page a page or guide refers to exists, and no
page names the operator's command ``dd``.
"""
import re
import shutil
from pathlib import Path

import pytest

from sarra.components import PRESETS, flow_for
from sarra.config import OPTIONS, TOOLS, Credentials, load_config
from sarra.config import options as option_table
from sarra.errors import ConfigError
from sarra.flow.announce import relpath_for
from sarra.flow.filter import choose, default_placement, expand_directory, placed_relpath
from sarra.flow.gather import BrokerSource
from sarra.flow.watching import temp_globs
from sarra.message import Message, Report
from sarra.worklist import Job, Worklist, messages

ETC = Path(__file__).resolve().parents[2] / "etc"
MAN = ETC.parent / "man"
DOC = ETC.parent / "doc"
CREDENTIALS = ETC / "credentials.conf.example"
DEFAULT = ETC / "default.conf"


def tool_configs() -> list[tuple[str, Path]]:
    return sorted((p.parent.name, p) for p in ETC.glob("*/*.conf"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private config dir holding etc/default.conf as default.conf."""
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.copy(DEFAULT, conf / "default.conf")
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(conf))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    return conf


def load(tool: str, path: Path | None):
    return load_config(tool, str(path) if path else None, (), PRESETS.get(tool))


def test_every_file_under_etc_is_an_example_we_check():
    files = sorted(p for p in ETC.rglob("*") if p.is_file())
    assert DEFAULT in files and CREDENTIALS in files
    assert tool_configs(), "no <tool>/<name>.conf example"
    switch = ETC / "switch.yaml"  # loaded by tests/unit/test_switch.py
    checked = {DEFAULT, CREDENTIALS, switch} | {p for _, p in tool_configs()}
    assert [str(p) for p in files if p not in checked] == []
    for tool, path in tool_configs():
        assert tool in TOOLS, f"{path}: '{tool}' is not a tool ({', '.join(TOOLS)})"


@pytest.mark.parametrize("tool", TOOLS)
def test_default_conf_loads_for_every_tool(home, tool):
    cfg = load(tool, None)
    assert cfg.files == [str(home / "default.conf")]
    for name in OPTIONS:
        if cfg.is_set(name):  # default.conf is read by every tool
            assert OPTIONS[name].tools is None, f"{name} does not apply to every tool"


@pytest.mark.parametrize("tool, path", tool_configs(), ids=lambda v: str(v))
def test_example_config_loads(home, tool, path):
    cfg = load(tool, path)
    assert cfg.files[-1] == str(path)
    assert cfg.notes == []                       # no comment after a value
    set_here = [name for name in OPTIONS if cfg.origin(name).startswith(str(path) + ":")]
    assert set_here or cfg.masks, f"{path} sets nothing"
    not_yet = getattr(option_table, "NOT_YET", frozenset())  # accepted, not acted upon
    for name in set_here:
        assert OPTIONS[name].applies_to(tool), f"{path}: {name} is not an option of dd_{tool}"
        assert name not in not_yet, f"{path}: {name} is not implemented yet"
    for url_option in ("broker", "post_broker"):
        url = cfg.get(url_option)
        if url:
            assert ":" not in url.split("://", 1)[1].split("@")[0], \
                f"{path}: {url_option} holds a password (it belongs in credentials.conf)"


def test_the_check_fails_on_an_unknown_option(home, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text((ETC / "subscribe" / "mirror-http.conf").read_text() + "mirorr on\n")
    with pytest.raises(ConfigError, match=r"bad\.conf:\d+: option 'mirorr': unknown option"):
        load("subscribe", bad)


def test_credentials_example_parses_and_serves_every_example_url(home):
    creds = Credentials.from_text(CREDENTIALS.read_text(), str(CREDENTIALS))
    lines = [l for l in CREDENTIALS.read_text().splitlines()
             if l.strip() and not l.lstrip().startswith("#")]
    assert len(creds) == len(lines) > 0
    for tool, path in tool_configs():
        cfg = load(tool, path)
        for url_option in ("broker", "post_broker"):
            url = cfg.get(url_option)
            if url:
                full = creds.lookup(url)
                assert full != url, f"{path}: no credentials.conf entry for {url}"


def _message(relpath: str) -> Message:
    return Message("20260325130240.645", "http://switch.example.com/", relpath,
                   {"sum": "s,00", "parts": "1,10,1,0,0"})


def _placed(cfg, relpath: str) -> str | None:
    msg = _message(relpath)
    ok, placement, _ = choose(msg, cfg.masks, bool(cfg.accept_unmatch),
                              default_placement(cfg))
    if not ok:
        return None
    directory = expand_directory(placement.directory, msg, now=1774443760.0)
    return f"{directory}/{placed_relpath(msg, placement)}"


def test_obs_flat_places_files_as_its_comments_say(home):
    cfg = load("subscribe", ETC / "subscribe" / "obs-flat.conf")
    obs = "observations/swob-ml/20260325"
    assert _placed(cfg, f"{obs}/CWRM/2026-03-25-1300-CWRM-AUTO-swob.xml") == \
        "/data/obs/20260325/CWRM_2026-03-25-1300-CWRM-AUTO-swob.xml"
    assert _placed(cfg, f"{obs}/KXYZ/2026-03-25-1300-KXYZ-AUTO-swob.xml") == \
        "/data/obs/other/2026-03-25-1300-KXYZ-AUTO-swob.xml"
    assert _placed(cfg, f"{obs}/CWRM/2026-03-25-1300-CWRM-AUTO-swob.xml.tmp") is None
    assert _placed(cfg, f"{obs}/CWRM/readme.txt") is None


def test_mirror_http_keeps_the_tree(home):
    cfg = load("subscribe", ETC / "subscribe" / "mirror-http.conf")
    assert _placed(cfg, "a/b/c.txt") == "/srv/mirror/a/b/c.txt"
    assert _placed(cfg, "a/b/c.txt.tmp") is None


def test_watch_outgoing_announces_as_its_comments_say(home):
    path = ETC / "watch" / "outgoing.conf"
    assert ("watch", path) in tool_configs()          # loaded above with tool "watch"
    cfg = load("watch", path)
    assert cfg.tool == "watch" and cfg.name == "outgoing"
    assert cfg.path == ["/srv/data/outgoing"]
    assert all(p.startswith(cfg.post_base_dir.rstrip("/") + "/") for p in cfg.path)
    assert not cfg.post_on_start and not cfg.force_polling
    assert set(cfg.events.split("|")) == {"create", "delete", "link", "modify"}
    assert sorted(temp_globs(cfg)) == sorted([".*", "*.part", "*.tmp"])
    rel = relpath_for("/srv/data/outgoing/2026/a.grib2", cfg.post_base_dir, cfg.post_base_url)
    assert rel == "outgoing/2026/a.grib2"

    def posted(relpath: str) -> bool:
        msg = Message("20260325130240.645", cfg.post_base_url, relpath, {})
        return choose(msg, cfg.masks, bool(cfg.accept_unmatch), None)[0]
    assert posted(rel)
    assert not posted("outgoing/scratch/x.grib2")


# -- the switch examples, through the flow's stages ---------------------------

@pytest.fixture
def switch_home(home):
    """``home`` with etc/credentials.conf.example as its credentials.conf (the
    broker drivers want the password of every URL before they connect)."""
    creds = home / "credentials.conf"
    shutil.copy(CREDENTIALS, creds)
    creds.chmod(0o600)
    return home


def _flow(tool: str, name: str):
    """The flow ``dd_<tool>`` builds from etc/<tool>/<name>.conf (no broker
    is contacted: a configuration error would show here)."""
    return flow_for(tool, load(tool, ETC / tool / f"{name}.conf"))


def _post(relpath: str, exchange: str, **headers: str) -> Message:
    return Message("20261125120000.000", "http://data.example.com/", relpath,
                   {"sum": "s,00", "parts": "1,10,1,0,0", **headers}, exchange=exchange)


def _log_message(relpath: str, exchange: str, user: str, **headers: str) -> Message:
    msg = _post(relpath, exchange, **headers)
    msg.report = Report(201, "host.example.com", user, 0.1, "Downloaded")
    return msg


def _filtered(flow, *msgs: Message) -> Worklist:
    wl = Worklist.of(msgs)
    flow.filter(wl)
    return wl


def _job(wl: Worklist, msg: Message) -> Job:
    return next(j for j in wl if j.msg is msg)


def test_switch_sara_labels_places_and_announces_as_its_comments_say(switch_home):
    flow = _flow("sara", "switch")
    cfg = flow.cfg
    assert cfg.mirror and cfg.accept_unmatch          # dd_sara's presets
    assert flow.source.exchanges() == ["xsarra"]
    assert flow.poster.exchanges == ["xpublic"] and flow.reporter.exchange == "xreport_in"
    forged = _post("obs/a.txt", "xs_alice", source="bob", from_cluster="elsewhere")
    stray = _post("obs/b.txt", "other")
    onward = _post("obs/c.txt", "xs_alice", to_clusters="lab2,lab3")
    wl = _filtered(flow, forged, stray, onward)
    assert messages(wl.incoming) == [forged, onward] and messages(wl.rejected) == [stray]
    assert _job(wl, stray).code is None            # dropped, counted, never reported
    assert _job(wl, stray).outcome.tally == "not from a user exchange"
    assert (forged.headers["source"], forged.headers["from_cluster"]) == ("alice", "lab1")
    # no destination named: this switch's, so no link takes it further
    assert forged.headers["to_clusters"] == "lab1"
    assert onward.headers["to_clusters"] == "lab2,lab3"
    placement = _job(wl, forged).placement
    root = expand_directory(placement.directory, forged)
    forged.local_root = root
    forged.local_path = f"{root}/{placed_relpath(forged, placement)}"
    assert forged.local_path == "/var/lib/sarra/data/alice/obs/a.txt"
    out = flow.repost(forged)
    assert (out.base_url, out.relpath) == ("http://switch.example.com/", "alice/obs/a.txt")
    assert out.headers["source"] == "alice"


def test_log_router_routes_home_and_drops_forgeries(switch_home):
    flow = _flow("shovel", "logs")
    assert flow.cfg.topic_prefix == "v02.report" and flow.worker is None
    genuine = _log_message("alice/obs/a.txt", "xs_carol", "carol", source="alice",
                           from_cluster="lab1")
    forged = _log_message("alice/obs/a.txt", "xs_carol", "mallory", source="alice",
                          from_cluster="lab1")
    from_sara = _log_message("obs/a.txt", "xreport_in", "feeder", source="alice",
                             from_cluster="lab1")
    wl = _filtered(flow, genuine, forged, from_sara)
    assert messages(wl.incoming) == [genuine, from_sara] and messages(wl.rejected) == [forged]
    assert _job(wl, forged).outcome.tally == "spoofed"     # counted so in the summary
    assert flow.poster.targets(genuine) == ["xreport", "xr_alice"]
    # about the data of lab2's alice (another person): xreport only, and the link's
    # log shovel takes it home; none of lab1's sources sees it, nor one without
    # a from_cluster
    for elsewhere in ({"from_cluster": "lab2"}, {}):
        theirs = _log_message("alice/obs/b.txt", "xs_carol", "carol", source="alice",
                              **elsewhere)
        assert flow.poster.targets(theirs) == ["xreport"]


def test_a_link_takes_what_is_meant_for_it_and_sends_logs_home(switch_home):
    link = _flow("sara", "from-A")
    assert not link.cfg.source_from_exchange
    posts = {dest: _post(f"alice/{dest}/f.dat", "xpublic", source="alice",
                         from_cluster="lab1", to_clusters=dest)
             for dest in ("lab2", "lab3", "ALL", "lab1,lab2")}
    anywhere = _post("alice/any/f.dat", "xpublic", source="alice", from_cluster="lab1")
    loop = _post("alice/back/f.dat", "xpublic", source="alice", from_cluster="lab2",
                 to_clusters="ALL")
    wl = _filtered(link, *posts.values(), anywhere, loop)
    assert messages(wl.rejected) == [posts["lab3"], loop]
    assert posts["lab2"].headers["from_cluster"] == "lab1"        # labels kept
    placement = _job(wl, anywhere).placement
    assert f"{placement.directory}/{placed_relpath(anywhere, placement)}" == \
        "/var/lib/sarra/data/alice/any/f.dat"

    back = _flow("shovel", "logs-to-A")
    assert back.cfg.topic_prefix == "v02.report" and back.poster.exchanges == ["xreport_in"]
    home_bound = _log_message("alice/x", "xreport", "carol", source="alice", from_cluster="lab1")
    local = _log_message("bob/x", "xreport", "carol", source="bob", from_cluster="lab2")
    unlabelled = _log_message("x", "xreport", "carol", source="alice")
    wl = _filtered(back, home_bound, local, unlabelled)
    assert messages(wl.incoming) == [home_bound] and messages(wl.rejected) == [local, unlabelled]


def test_winnow_passes_each_file_of_two_feeds_once(switch_home):
    flow = _flow("winnow", "two-feeds")
    try:
        assert flow.source.exchanges() == ["xfeed-a", "xfeed-b"]
        assert flow.poster.exchanges == ["xwinnow"] and flow.reporter is None
        first = _post("obs/a.txt", "xfeed-a")
        taken = _filtered(flow, first)
        assert messages(taken.incoming) == [first]
        flow.nodupe.settle([j.fingerprint for j in taken])
        again = _post("obs/a.txt", "xfeed-b")
        again.base_url = "http://other-switch.example.com/"
        changed = _post("obs/a.txt", "xfeed-b", sum="s,01")
        wl = _filtered(flow, again, changed)
        assert messages(wl.rejected) == [again] and messages(wl.incoming) == [changed]
        assert _job(wl, again).outcome.tally == "duplicate"
    finally:
        flow.nodupe.close()
    with pytest.raises(ConfigError, match="nodupe_ttl"):
        flow_for("winnow", load_config("winnow", str(ETC / "winnow" / "two-feeds.conf"),
                                    [("nodupe_ttl", "off")], PRESETS["winnow"]))


def test_dd_log_configuration_keeps_one_queue_however_it_is_run(switch_home):
    path = str(ETC / "log" / "mine.conf")
    plain = load("log", ETC / "log" / "mine.conf")
    assert plain.key == "mine" and plain.expire >= 86400 and not plain.is_set("exchange")
    followed = load_config("log", path, [("follow", "true"), ("format", "json")],
                           PRESETS["log"])
    assert BrokerSource(plain, "log").queue == BrokerSource(followed, "log").queue
    # without a configuration, the queue follows what is consumed, not how it is shown
    url = [("broker", "amqp://alice@switch.example.com/")]
    assert load_config("log", None, url, PRESETS["log"]).key == \
        load_config("log", None, url + [("follow", "true"), ("format", "json")],
                    PRESETS["log"]).key
    assert load_config("log", None, url, PRESETS["log"]).key != \
        load_config("log", None, [("broker", "amqp://bob@switch.example.com/")],
                    PRESETS["log"]).key


# -- the man pages against the option table ----------------------------------

def _man_sections(text: str) -> dict[str, str]:
    """Text of each .SH/.SS section of a page, by its title."""
    out: dict[str, str] = {}
    heading = re.compile(r"^\.S[HS] \"?([^\n\"]+)\"?\n(.*?)(?=^\.S[HS] |\Z)", re.M | re.S)
    for match in heading.finditer(text):
        out[match.group(1).strip()] = match.group(2)
    return out


def _documented(text: str) -> set[str]:
    """Options given a paragraph of their own: ``--name`` in the tag of a .TP."""
    tags = re.findall(r"^\.TP\n(.*)$", text, re.M)
    return {name for tag in tags for name in re.findall(r"\\-\\-([a-z][a-z0-9_]*)", tag)}


def _bold_words(text: str) -> set[str]:
    """Names set in bold at the start of a line (.B name, .BR name ,)."""
    return {w for w in re.findall(r"^\.BR? ([a-z][a-z0-9_]*)", text, re.M) if not w.startswith("dd_")}


def _options_text(text: str) -> str:
    """The OPTIONS section of a page, its subsections included but not the
    list of options without effect."""
    match = re.search(r"^\.SH OPTIONS\n(.*?)(?=^\.SH |\Z)", text, re.M | re.S)
    body = match.group(1) if match else ""
    return re.sub(r"^\.SS \"?Accepted but without effect.*?(?=^\.S[HS] |\Z)", "", body,
                  flags=re.M | re.S)


def _named(text: str) -> set[str]:
    """Options named in bold: .B/.BR/.BI name, .RB/.IB ( name, \\fBname."""
    words = re.findall(r"^\.B[RI]? \"?([a-z][a-z0-9_]*)", text, re.M)
    words += re.findall(r"^\.[RI]B \S+ ([a-z][a-z0-9_]*)", text, re.M)
    words += re.findall(r"\\fB([a-z][a-z0-9_]*)", text)
    return {w for w in words if w in OPTIONS}


def _covered(tool: str) -> set[str]:
    """Options dd_<tool>.1 documents: a paragraph of their own (the .TP tag),
    named in its OPTIONS section (in another option's paragraph, or in a
    list 'those of dd_subscribe(1)'), or, for a page whose OPTIONS begin
    'As for dd_<other>(1)', those <other>'s page documents."""
    text = (MAN / f"dd_{tool}.1").read_text(encoding="utf-8")
    options = _options_text(text)
    covered = _documented(text) | _named(options)
    deferred = re.match(r"\s*As for\n\.BR dd_([a-z]+) \(1\)", options)
    if deferred and deferred.group(1) != tool:
        covered |= _covered(deferred.group(1))
    return covered


# every tool but dd_audit, whose own parser test_audit_page_describes_its_parser checks
@pytest.mark.parametrize("tool", [t for t in TOOLS if t != "audit"])
def test_man_page_agrees_with_the_option_table(tool):
    text = (MAN / f"dd_{tool}.1").read_text(encoding="utf-8")
    sections = _man_sections(text)
    title = f"Accepted but without effect in dd_{tool}"
    assert title in sections, f"dd_{tool}.1 has no section '{title}'"
    without_effect = _bold_words(sections[title])
    documented = _documented(text)
    not_yet = getattr(option_table, "NOT_YET", frozenset())
    applies = {name for name, o in OPTIONS.items() if o.applies_to(tool)}
    known = set(option_table.known_names()) | {"config"}
    for name in documented:
        assert name in known, f"dd_{tool}.1 documents --{name}, which is no option"
        if name in OPTIONS:
            assert name in applies, f"dd_{tool}.1 documents --{name}, not an option of dd_{tool}"
            assert name not in not_yet, f"dd_{tool}.1 documents --{name}, not implemented yet"
    for name in without_effect:
        assert name in applies, f"dd_{tool}.1 lists '{name}' as without effect: no such option"
        assert name not in documented, \
            f"dd_{tool}.1 documents '{name}' and also lists it as without effect"
    unlisted = sorted((not_yet & applies) - without_effect)
    assert unlisted == [], f"dd_{tool}.1 does not list {unlisted} as without effect"
    # the other way round: what dd_<tool> accepts, its page tells of
    untold = sorted(applies - _covered(tool) - without_effect)
    assert untold == [], \
        f"dd_{tool}.1 neither documents {untold} nor lists them as without effect"


def test_sarra_page_describes_every_operator_action():
    from sarra.cli import OPERATOR_ACTIONS
    sections = _man_sections((MAN / "sarra.1").read_text(encoding="utf-8"))
    described = re.findall(r"^\.TP\n\.B (\w+)$", sections["ACTIONS"], re.M)
    assert described == list(OPERATOR_ACTIONS)


def test_audit_page_describes_its_parser():
    """dd_audit has its own command line (sarra.switch.command), not the option table."""
    from sarra.switch.command import ACTIONS, _parser
    text = (MAN / "dd_audit.1").read_text(encoding="utf-8")
    sections = _man_sections(text)
    described = {a.replace("\\-", "-")
                 for a in re.findall(r"^\.TP\n\.BI? (\S+)", sections["ACTIONS"], re.M)}
    assert described == set(ACTIONS)
    options = {o[2:].replace("-", "_") for action in _parser()._actions
               for o in action.option_strings if o.startswith("--")}
    assert _documented(sections["OPTIONS"]) == options


def test_every_tool_has_a_page_and_every_page_named_exists():
    for tool in TOOLS:
        assert (MAN / f"dd_{tool}.1").is_file(), f"no man page for dd_{tool}"
    named = re.compile(r"\b(dd_[a-z]+|sarra) ?\(([1-8])\)")
    missing = []
    for path in sorted(MAN.glob("*.[0-9]")) + sorted(DOC.glob("*.md")) + [ETC.parent / "README.md"]:
        for name, section in named.findall(path.read_text(encoding="utf-8")):
            if not (MAN / f"{name}.{section}").is_file():
                missing.append(f"{path.name}: {name}({section})")
    assert sorted(set(missing)) == []


def test_the_operator_command_is_sarra_everywhere():
    """The operator's command is ``sarra``, not ``dd``: only a note on why (coreutils'
    dd: the admin guide's, README's, sarra(1)'s) may name ``dd``."""
    pages = sorted(MAN.glob("*.[0-9]")) + sorted(DOC.glob("*.md")) + [ETC.parent / "README.md"]
    word = re.compile(r"(?<![\w./\\-])dd(?![\w(-])")
    found = []
    for path in pages:
        text = re.sub(r"\\f[BIRP]", "", path.read_text(encoding="utf-8"))
        # paragraphs: of markdown between blank lines, of a page between macros
        for paragraph in re.split(r"\n\s*\n|\n(?=\.(?:PP|LP|TP|IP|SH|SS)\b)", text):
            if word.search(paragraph) and "coreutils" not in paragraph:
                found.append(f"{path.name}: {paragraph.strip()[:80]}")
    assert found == []

