"""``sarra convert``: sr3 and v2 lines as sarra's (camelCase and old names,
callbacks and plugins, sr3's v03 default), every change reported, what has
no meaning commented out; a tree converted into the configuration
directory, only what loads written, twice the same, a configuration
changed since kept, a v2 tree in place with its originals kept. The
converted configurations running a flow: tests/integration/test_sr3_convert_flow.py."""
import pytest

from sarra import cli
from sarra.config import load_config
from sarra.config.convert import MARK, SR3, V2, convert_text

SR3_SUBSCRIBER = """# in sr3's style
broker amqp://${FLOWBROKER}/
exchange xpublic
topicPrefix v02.post
subtopic #
callback log
flowcb sarracenia.flowcb.nodupe.NoDupe
callback sarracenia.flowcb.retry.Retry
callback my.own.Plugin
batch 1
acceptUnmatched off
messageAgeMax 1h
directory /data/${%o-1d%Y%m%d}
accept .*/(obs|fx)/.*
"""

V2_SUBSCRIBER = """broker amqp://anonymous@dd.example.com/
exchange xpublic
subtopic observations.#
on_message msg_log
on_file file_log
no_download
kbytes_ps 4
suppress_duplicates on
plugin accel_wget
declare source alice
directory /data/${YYYYMMDD}
accept .*
"""


def test_sr3_lines_become_sarras_and_each_change_is_told():
    done = convert_text(SR3_SUBSCRIBER, "subscribe", SR3)
    lines = done.text.splitlines()
    assert "topic_prefix v02.post" in lines and "topicPrefix v02.post" not in lines
    assert "log_events after_accept,after_work" in lines            # callback log
    assert "nodupe_ttl 300" in lines                                  # nodupe.NoDupe
    assert MARK + "callback sarracenia.flowcb.retry.Retry" in lines  # sarra does it
    assert MARK + "callback my.own.Plugin" in lines                  # not mappable
    assert MARK + "batch 1" in lines
    assert "accept_unmatch off" in lines and "message_ttl 1h" in lines
    assert lines[-2:] == ["directory /data/${%o-1d%Y%m%d}", "accept .*/(obs|fx)/.*"]
    assert "post_topic_prefix v03" in lines and lines.count("topic_prefix v03") == 0
    told = {c.line: c for c in done.changes}
    assert str(told[4]) == "line 4: topicPrefix v02.post -> topic_prefix v02.post"
    assert str(told[9]).startswith("line 9: not mappable: callback my.own.Plugin (an sr3 "
                                   "callback or v2 plugin sarra does not have; ")
    assert not told[9].mappable and told[8].mappable
    assert "sarra does it itself: the retry queue" in str(told[8])
    assert [str(c) for c in done.changes if c.line is None] == \
        ["added: post_topic_prefix v03 (sr3's default; sarra's is v02.post)"]
    assert {2, 3, 5, 13, 14}.isdisjoint(told)                        # kept as they were
    assert done.original_line(lines.index("accept .*/(obs|fx)/.*") + 1) == 14


def test_sr3_default_topic_prefixes_unless_set_there_or_in_default_conf():
    text = "broker amqp://u@h/\nexchange xpublic\naccept .*\n"
    done = convert_text(text, "subscribe", SR3)
    assert done.text.splitlines()[1:3] == ["topic_prefix v03", "post_topic_prefix v03"]
    assert done.original_line(2) is None and done.original_line(4) == 1
    done = convert_text(text, "subscribe", SR3, inherited={"topic_prefix"})
    assert "topic_prefix v03" not in done.text.splitlines()
    assert convert_text(text, "subscribe", V2).text == text          # v2's default is ours
    assert convert_text(text, "subscribe", SR3, whole=False).text == text   # an include


def test_v2_plugins_and_old_names():
    done = convert_text(V2_SUBSCRIBER, "subscribe", V2)
    lines = done.text.splitlines()
    assert "on_message log" in lines and "on_file log" in lines
    assert "download false" in lines and "byte_rate_max 4096" in lines
    assert "nodupe_ttl on" in lines                  # suppress_duplicates is nodupe_ttl
    assert MARK + "plugin accel_wget" in lines and MARK + "declare source alice" in lines
    unmappable = [c.before for c in done.changes if not c.mappable]
    assert unmappable == ["plugin accel_wget", "declare source alice"]
    assert "no_download is download inverted" in str(done.changes[2])


@pytest.mark.parametrize("text,tool,flavour", [(SR3_SUBSCRIBER, "subscribe", SR3),
                                               (V2_SUBSCRIBER, "subscribe", V2)])
def test_converting_twice_changes_nothing(text, tool, flavour):
    once = convert_text(text, tool, flavour)
    twice = convert_text(once.text, tool, flavour)
    assert twice.text == once.text and twice.changes == []


def _tree(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FLOWBROKER", "guest@127.0.0.1")
    return tmp_path


def test_convert_a_tree_report_and_twice_the_same(home, sarra_cli):
    sr3 = _tree(home / "home" / ".config" / "sr3", {
        "default.conf": "messageRateMax 50\n",
        "credentials.conf": "amqp://bob:Pw9secret@h/\n",
        "admin.conf": "feeder amqp://feeder@h/\n",
        "subscribe/obs.conf": SR3_SUBSCRIBER.replace("directory", "include common.inc\n"
                                                     "directory"),
        "subscribe/common.inc": "prefetch 5\n",
        "subscribe/old.conf.off": "broker amqp://u@h/\n",
        "sarra/broken.conf": "broker amqp://u@h/\nprefetch lots\n",
        "flow/f.conf": "broker amqp://u@h/\n",
    })
    rc, out, err = sarra_cli("convert")
    conf = home / "conf"
    assert rc == 1, out + err               # sarra/broken.conf and flow/ could not be
    assert f"sr3 tree {sr3}:" in out
    assert "  subscribe/obs.conf -> subscribe/obs.conf:" in out
    assert "    line 4: topicPrefix v02.post -> topic_prefix v02.post" in out
    assert "    line 9: not mappable: callback my.own.Plugin" in out
    assert f"    written {conf}/subscribe/obs.conf" in out
    assert (f"    not written: it does not load: {sr3}/sarra/broken.conf:2: option "
            "'prefetch': 'lots' is not an integer") in out
    assert "admin.conf: not mappable" in out and "flow/: not mappable" in out
    assert "credentials.conf: 1 line added" in out and "Pw9secret" not in out
    assert (conf / "credentials.conf").stat().st_mode & 0o777 == 0o600
    cfg = load_config("subscribe", "obs")       # it loads, and means what it meant
    assert (cfg.topic_prefix, cfg.prefetch, cfg.message_rate_max) == ("v02.post", 5, 50)
    assert cfg.broker == "amqp://guest@127.0.0.1/" and cfg.nodupe_ttl == 300
    assert "log" in cfg.on_message and "log" in cfg.on_file
    assert (conf / "subscribe" / "old.conf.off").is_file()      # disabled, stays so
    assert list((conf / "sara").iterdir()) == []            # nothing of broken.conf
    before = {p: p.read_text() for p in conf.rglob("*") if p.is_file()}
    rc, out2, err = sarra_cli("convert")
    assert {p: p.read_text() for p in conf.rglob("*") if p.is_file()} == before
    assert "unchanged (already converted)" in out2 and "    written" not in out2
    (conf / "subscribe" / "obs.conf").write_text("broker amqp://u@h/\n")   # changed since
    rc, out3, err = sarra_cli("convert")
    assert "exists with another text (changed since it was converted?): kept" in out3
    assert (conf / "subscribe" / "obs.conf").read_text() == "broker amqp://u@h/\n"


def test_a_v2_tree_in_place_keeps_its_originals(home, sarra_cli, monkeypatch):
    v2 = _tree(home / "home" / ".config" / "sarra", {"subscribe/dd.conf": V2_SUBSCRIBER})
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(v2))       # sarra's directory is v2's
    rc, out, err = sarra_cli("convert", "--dry-run")
    assert rc == 0 and "not written (--dry-run)" in out
    assert (v2 / "subscribe" / "dd.conf").read_text() == V2_SUBSCRIBER
    rc, out, err = sarra_cli("convert")
    assert rc == 0, out + err
    assert f"v2 tree {v2}:" in out and "line 4: on_message msg_log -> on_message log" in out
    assert (v2 / "subscribe" / "dd.conf.orig").read_text() == V2_SUBSCRIBER
    assert "on_message log" in (v2 / "subscribe" / "dd.conf").read_text()
    assert cli.configurations([]) == [("subscribe", "dd")]     # .orig is no configuration
    rc, out, err = sarra_cli("convert")
    assert rc == 0 and "unchanged (already converted)" in out


def test_convert_a_directory_named_and_bad_arguments(home, sarra_cli):
    tree = _tree(home / "elsewhere", {"subscribe/x.conf": "broker amqp://u@h/\ncallback log\n"})
    rc, out, err = sarra_cli("convert", tree, "--from", "sr3")
    assert rc == 0 and f"sr3 tree {tree}:" in out and "added: topic_prefix v03" in out
    rc, out, err = sarra_cli("convert", home / "nowhere")
    assert rc == 2 and "not a directory" in err
    rc, out, err = sarra_cli("convert", tree, "--from", "sr2")
    assert rc == 2 and "--from needs sr3 or v2" in err
    rc, out, err = sarra_cli("convert")
    assert rc == 2 and "neither ~/.config/sr3 nor ~/.config/sarra exists" in err
