"""sarra.config: option kinds, files, includes, variables, masks, credentials, argv."""
import logging
import os
import time

import pytest

from sarra.config import (OPTIONS, Credentials, help_text, load_config, mask,
                          parse_argv, strip_password)
from sarra.config import paths
from sarra.config.options import lookup, parse_value
from sarra.errors import ConfigError

SECRET = "S3cr3tPw"


def write(confdir, tool, name, text):
    path = confdir / tool / f"{name}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def value(name, raw):
    option, adjust = lookup(name)
    return parse_value(option, adjust(raw) if adjust else raw)


# ------------------------------------------------------------ option kinds

@pytest.mark.parametrize("raw, expected", [
    ("1M", 1048576), ("512k", 524288), ("1g", 1 << 30), ("1G", 1 << 30),
    ("100", 100), ("1MB", 1048576), ("2kb", 2048), ("1t", 1 << 40),
    ("1.5k", 1536)])
def test_sizes(raw, expected):
    assert value("bufsize", raw) == expected


@pytest.mark.parametrize("raw", ["", "1x", "k", "-1", "1 M B"])
def test_bad_sizes(raw):
    with pytest.raises(ValueError, match="not a size"):
        value("bufsize", raw)


@pytest.mark.parametrize("raw, expected", [
    ("30", 30.0), ("5m", 300.0), ("1d", 86400.0), ("2h", 7200.0),
    ("1w", 604800.0), ("10s", 10.0), ("1.5m", 90.0)])
def test_durations(raw, expected):
    assert value("expire", raw) == expected


def test_bad_duration():
    with pytest.raises(ValueError, match="not a duration"):
        value("expire", "5 minutes")


@pytest.mark.parametrize("raw, expected", [
    ("true", True), ("yes", True), ("on", True), ("1", True), ("ON", True),
    ("false", False), ("no", False), ("off", False), ("0", False),
    (None, True)])
def test_booleans(raw, expected):
    assert value("mirror", raw) is expected


def test_bad_boolean():
    with pytest.raises(ValueError, match="not a boolean"):
        value("mirror", "maybe")


def test_int_float_octal_choice():
    assert value("prefetch", "10") == 10
    assert value("message_rate_max", "2.5") == 2.5
    assert value("default_mode", "644") == 0o644
    assert value("default_dir_mode", "0o775") == 0o775
    assert value("log_level", "DEBUG") == "debug"
    for name, raw in [("prefetch", "ten"), ("message_rate_max", "x"),
                      ("default_mode", "999"), ("log_level", "loud")]:
        with pytest.raises(ValueError):
            value(name, raw)


def test_non_bool_needs_a_value():
    with pytest.raises(ValueError, match="needs a value"):
        value("prefetch", None)


def test_urls():
    assert value("broker", "amqp://u@h/") == "amqp://u@h/"
    assert value("post_base_url", "file:/data") == "file:/data"
    for raw in ["no-scheme/path", "amqp:///", "amqp://h:notaport/"]:
        with pytest.raises(ValueError):
            value("broker", raw)


@pytest.mark.parametrize("raw, expected", [
    ("s", "s"), ("d", "d"), ("0", "0"), ("x", "x"), ("z,d", "z,d"),
    ("sha512", "s"), ("md5", "d"), ("md5name", "n"), ("random", "0"),
    ("xxh128", "x"), ("cod,sha512", "z,s")])
def test_sum(raw, expected):
    assert value("sum", raw) == expected
    assert value("identity", raw) == expected


def test_bad_sum():
    with pytest.raises(ValueError, match="unknown checksum"):
        value("sum", "crc32")


def test_value_rewriting_aliases():
    assert value("kbytes_ps", "10") == 10240
    assert value("kbytes_ps", "1M") == 1048576
    assert value("no_download", None) is False
    assert value("no_download", "off") is True
    assert value("suppress_duplicates", "on") == 300.0
    assert value("cache", "off") == 0.0
    assert value("no_duplicates", "10m") == 600.0
    assert value("strip", "2") == "2"
    with pytest.raises(ValueError, match="regex"):
        value("strip", "([")
    assert value("events", "create,modify") == "create|modify"


def test_options_table():
    assert OPTIONS["prefetch"].default == 25
    assert OPTIONS["subtopic"].default == [] and OPTIONS["subtopic"].repeat
    assert OPTIONS["accept_unmatch"].default is None
    for name in ("accept", "reject", "include"):
        assert name not in OPTIONS


# -------------------------------------------------------------- files

def test_defaults_presets_default_conf_config_cli(confdir):
    (confdir / "default.conf").write_text("prefetch 5\ninstances 2\nexpire 1h\n")
    write(confdir, "subscribe", "c", "instances 3\nexpire 2h\n")
    cfg = load_config("subscribe", "c", [("expire", "1d")],
                      presets={"mirror": True, "accept_unmatch": True,
                               "prefetch": 7})
    assert cfg.mirror is True and cfg.accept_unmatch is True
    assert cfg.prefetch == 5 and cfg.instances == 3 and cfg.expire == 86400.0
    assert cfg.exchange == "xpublic"
    assert cfg.origin("exchange") == "default" and not cfg.is_set("exchange")
    assert cfg.origin("mirror") == "default" and not cfg.is_set("mirror")
    assert cfg.origin("prefetch").endswith("default.conf:1")
    assert cfg.origin("instances").endswith("c.conf:1")
    assert cfg.origin("expire") == "command line" and cfg.is_set("expire")
    assert cfg.name == "c" and len(cfg.files) == 2


def test_syntax_comments_blank_bare_flags(confdir):
    write(confdir, "subscribe", "c",
          "# a comment\n\n   mirror\ndebug   \n  prefetch\t 9  \nreset off\n")
    cfg = load_config("subscribe", "c")
    assert cfg.mirror is True and cfg.debug is True
    assert cfg.prefetch == 9 and cfg.reset is False
    assert cfg.notes == []


def test_a_comment_after_a_value_is_the_value_and_the_reader_is_told(confdir):
    path = write(confdir, "subscribe", "c", "directory /data/obs   # where it goes\n"
                 "subtopic #\naccept .*#frag\n")
    cfg = load_config("subscribe", "c")
    assert cfg.directory == "/data/obs   # where it goes"       # doc/user-guide.md §11
    assert cfg.notes == [f"{path}:1: directory: the ' #...' is part of the value "
                         "(comments go on lines of their own)"]


def test_config_name_forms(confdir, tmp_path):
    write(confdir, "sender", "c", "prefetch 3\n")
    assert load_config("sender", "c.conf").prefetch == 3
    other = tmp_path / "elsewhere.conf"
    other.write_text("prefetch 4\n")
    cfg = load_config("sender", str(other))
    assert cfg.prefetch == 4 and cfg.name == "elsewhere"


def test_missing_config_names_the_file(confdir):
    with pytest.raises(ConfigError, match="nope.conf"):
        load_config("subscribe", "nope")


def test_bare_non_bool_needs_value(confdir):
    write(confdir, "subscribe", "c", "prefetch\n")
    with pytest.raises(ConfigError, match="needs a value") as err:
        load_config("subscribe", "c")
    assert err.value.line == 1 and err.value.option == "prefetch"


def test_unknown_option_error(confdir):
    path = write(confdir, "subscribe", "c", "broker amqp://u@h/\nprefecth 5\n")
    with pytest.raises(ConfigError) as err:
        load_config("subscribe", "c")
    e = err.value
    assert e.file == str(path) and e.line == 2 and e.option == "prefecth"
    assert "unknown option" in str(e) and "prefetch" in str(e)
    assert f"{path}:2" in str(e)


def test_keywords_are_case_sensitive(confdir):
    write(confdir, "subscribe", "c", "Mirror on\n")
    with pytest.raises(ConfigError, match="did you mean 'mirror'"):
        load_config("subscribe", "c")


def test_bad_value_error(confdir):
    path = write(confdir, "subscribe", "c", "\nbufsize 12x\n")
    with pytest.raises(ConfigError) as err:
        load_config("subscribe", "c")
    e = err.value
    assert (e.file, e.line, e.option) == (str(path), 2, "bufsize")
    assert "not a size" in str(e)


def test_bad_bool_error(confdir):
    write(confdir, "subscribe", "c", "mirror maybe\n")
    with pytest.raises(ConfigError, match="not a boolean") as err:
        load_config("subscribe", "c")
    assert err.value.option == "mirror" and err.value.line == 1


def test_bad_regex_error(confdir):
    path = write(confdir, "subscribe", "c", "accept .*ok.*\nreject ([a-z\n")
    with pytest.raises(ConfigError, match="regular expression") as err:
        load_config("subscribe", "c")
    assert (err.value.file, err.value.line, err.value.option) == (str(path), 2, "reject")


def test_command_line_validated_too(confdir):
    with pytest.raises(ConfigError) as err:
        load_config("subscribe", None, [("prefetch", "lots")])
    assert err.value.file == "command line" and err.value.option == "prefetch"
    with pytest.raises(ConfigError, match="unknown option"):
        load_config("subscribe", None, [("brokr", "amqp://h/")])


def test_lists_accumulate(confdir):
    (confdir / "default.conf").write_text("on_file a.b:C\n")
    write(confdir, "subscribe", "c",
          "subtopic a.#\nsubtopic b.#\non_file exec /bin/true\n")
    cfg = load_config("subscribe", "c", [("subtopic", "c.#")])
    assert cfg.subtopic == ["a.#", "b.#", "c.#"]
    assert cfg.on_file == ["a.b:C", "exec /bin/true"]
    assert load_config("subscribe", None).subtopic == []
    assert OPTIONS["subtopic"].default == []   # never mutated


# ------------------------------------------------------------- includes

def test_include_relative_and_config_dir(confdir):
    (confdir / "common.conf").write_text("prefetch 11\n")
    write(confdir, "subscribe", "part", "instances 4\ninclude ../common.conf\n")
    write(confdir, "subscribe", "c", "include part.conf\nmirror on\n")
    cfg = load_config("subscribe", "c")
    assert cfg.instances == 4 and cfg.prefetch == 11 and cfg.mirror
    assert cfg.origin("prefetch").endswith("common.conf:1")
    # found in config_dir when not next to the including file
    write(confdir, "subscribe", "d", "include common\n")
    assert load_config("subscribe", "d").prefetch == 11


def test_include_loop(confdir):
    write(confdir, "subscribe", "a", "include b.conf\n")
    write(confdir, "subscribe", "b", "prefetch 2\ninclude a.conf\n")
    with pytest.raises(ConfigError, match="include loop") as err:
        load_config("subscribe", "a")
    assert err.value.file.endswith("b.conf") and err.value.line == 2


def test_include_missing(confdir):
    write(confdir, "subscribe", "a", "include nothere.conf\n")
    with pytest.raises(ConfigError, match="not found") as err:
        load_config("subscribe", "a")
    assert err.value.line == 1 and err.value.option == "include"


# ------------------------------------------------------------ variables

def test_variables(confdir, monkeypatch):
    monkeypatch.setenv("MYQ", "queue9")
    write(confdir, "subscribe", "c",
          "broker amqp://bob@h/\n"
          "queue_name q_${BROKER_USER}.${PROGRAM}.${CONFIG}.${MYQ}\n"
          "declare env OTHER=fromconf\n"
          "exchange ${OTHER}\n"
          "source ${RANDID}-${RANDID}\n"
          "hostname ${HOSTNAME}\n"
          "report_exchange x_${YYYYMMDD}\n")
    cfg = load_config("subscribe", "c")
    assert cfg.queue_name == "q_bob.subscribe.c.queue9"
    assert os.environ["OTHER"] == "fromconf" and cfg.exchange == "fromconf"
    first, second = cfg.source.split("-")
    assert first == second and len(first) == 8
    int(first, 16)
    assert cfg.hostname
    assert cfg.report_exchange == "x_" + time.strftime("%Y%m%d", time.gmtime())
    monkeypatch.delenv("OTHER")


def test_broker_user_from_command_line(confdir):
    write(confdir, "subscribe", "c", "broker amqp://bob@h/\nqueue_name q_${BROKER_USER}\n")
    cfg = load_config("subscribe", "c", [("broker", "amqp://ann@h/")])
    assert cfg.queue_name == "q_ann"


def test_unknown_variable(confdir, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR_X", raising=False)
    path = write(confdir, "subscribe", "c", "mirror on\nexchange ${NO_SUCH_VAR_X}\n")
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_X") as err:
        load_config("subscribe", "c")
    assert (err.value.file, err.value.line, err.value.option) == (str(path), 2, "exchange")


def test_directory_keeps_date_patterns(confdir, monkeypatch):
    monkeypatch.setenv("ROOT", "/data")
    write(confdir, "subscribe", "c", "directory ${ROOT}/${YYYYMMDD}/${HH}\naccept .*\n")
    cfg = load_config("subscribe", "c")
    assert cfg.directory == "/data/${YYYYMMDD}/${HH}"
    assert cfg.masks[0].directory == "/data/${YYYYMMDD}/${HH}"


# ---------------------------------------------------------------- masks

def test_masks_capture_placement(confdir):
    write(confdir, "subscribe", "c",
          "directory /a\nmirror on\nstrip 2\naccept .*x.*\n"
          "directory /b\nmirror off\nflatten -\nreject .*tmp.*\naccept .*y.*\n")
    cfg = load_config("subscribe", "c")
    kinds = [(m.kind, m.pattern, m.directory, m.mirror, m.strip, m.flatten)
             for m in cfg.masks]
    assert kinds == [("accept", ".*x.*", "/a", True, "2", "/"),
                     ("reject", ".*tmp.*", "/b", False, "2", "-"),
                     ("accept", ".*y.*", "/b", False, "2", "-")]
    assert cfg.masks[0].line == 4 and cfg.masks[2].line == 9
    assert cfg.masks[0].matches("http://h/x/file")
    assert not cfg.masks[0].matches("http://h/y/file")
    assert cfg.directory == "/b"


# ----------------------------------------------------------- credentials

CREDS = f"""# passwords
amqp://alice:{SECRET}@broker.example.com/
amqps://alice:other@broker.example.com/
sftp://bob:{SECRET}@files.example.com:2222/ ssh_keyfile=/k/id,passive
ftp://carol:pw@ftp.example.com/,active,binary,tls
https://data.example.com/ bearer_token=tok123
"""


def test_credentials_lookup(tmp_path):
    creds = Credentials.from_text(CREDS)
    assert creds.lookup("amqp://alice@broker.example.com/") == \
        f"amqp://alice:{SECRET}@broker.example.com/"
    # default port matches an explicit one, host case-insensitive
    assert creds.lookup("amqp://alice@Broker.Example.com:5672/vh") == \
        f"amqp://alice:{SECRET}@Broker.Example.com:5672/vh"
    assert creds.lookup("amqps://alice@broker.example.com/") == \
        "amqps://alice:other@broker.example.com/"
    # other user, other port, other host, already a password: unchanged
    for url in ["amqp://bob@broker.example.com/",
                "amqp://alice@broker.example.com:5673/",
                "amqp://alice@elsewhere/", "amqp://alice:given@broker.example.com/",
                "not a url"]:
        assert creds.lookup(url) == url
    assert creds.lookup("sftp://bob@files.example.com:2222/x") == \
        f"sftp://bob:{SECRET}@files.example.com:2222/x"
    assert creds.lookup("sftp://bob@files.example.com/x") == "sftp://bob@files.example.com/x"


def test_credentials_details():
    creds = Credentials.from_text(CREDS)
    assert creds.details("sftp://bob@files.example.com:2222/") == \
        {"ssh_keyfile": "/k/id", "passive": True}
    assert creds.details("ftp://carol@ftp.example.com/") == \
        {"passive": False, "binary": True, "tls": True}
    assert creds.details("https://data.example.com/a/b") == {"bearer_token": "tok123"}
    assert creds.details("https://other/") == {}


def test_credentials_file_mode_warning(tmp_path, caplog):
    path = tmp_path / "credentials.conf"
    path.write_text(CREDS)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="sarra.config.credentials"):
        creds = Credentials(str(path))
    assert len(creds) == 5 and "readable" in caplog.text
    assert SECRET not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="sarra.config.credentials"):
        Credentials(str(path))
    assert caplog.text == ""


def test_bad_credentials_line_does_not_leak(tmp_path):
    with pytest.raises(ConfigError) as err:
        Credentials.from_text(f"junk:{SECRET}@nothing\n")
    assert SECRET not in str(err.value) and err.value.line == 1


def test_mask_and_strip():
    url = f"amqps://alice:{SECRET}@host:5671/vhost"
    assert mask(url) == "amqps://alice:***@host:5671/vhost"
    assert strip_password(url) == "amqps://alice@host:5671/vhost"
    tricky = "sftp://u:p@ss/word@host/x"
    assert "ss" not in mask("sftp://u:p@ss@host/x").split("@")[0]
    assert mask("amqp://u@h/") == "amqp://u@h/"
    assert mask("http://h:8080/a@b") == "http://h:8080/a@b"
    text = f"connecting to amqp://a:{SECRET}@h/ and https://b:{SECRET}@w/"
    assert SECRET not in mask(text)
    assert SECRET not in mask(tricky.replace("p@ss", SECRET))


def test_resolve_url_and_no_leaks(confdir):
    creds = confdir / "credentials.conf"
    creds.write_text(CREDS)
    creds.chmod(0o600)
    write(confdir, "subscribe", "c",
          "broker amqp://alice@broker.example.com/\n"
          f"post_broker amqp://inline:{SECRET}@other/\n")
    cfg = load_config("subscribe", "c")
    assert cfg.broker == "amqp://alice@broker.example.com/"
    assert cfg.resolve_url("broker") == f"amqp://alice:{SECRET}@broker.example.com/"
    assert cfg.post_broker == "amqp://inline@other/"
    assert cfg.resolve_url("post_broker") == f"amqp://inline:{SECRET}@other/"
    assert cfg.resolve_url("postBroker") == f"amqp://inline:{SECRET}@other/"
    assert cfg.resolve_url("post_base_url") is None
    assert SECRET not in repr(cfg.dump()) and SECRET not in repr(cfg)
    assert SECRET not in help_text("subscribe")
    # a later passwordless value replaces the inline one
    cfg = load_config("subscribe", "c", [("post_broker", "amqp://inline@other/")])
    assert cfg.resolve_url("post_broker") == "amqp://inline@other/"


def test_inline_password_on_command_line_is_hidden(confdir):
    cfg = load_config("subscribe", None, [("broker", f"amqp://u:{SECRET}@h/")])
    assert cfg.broker == "amqp://u@h/"
    assert SECRET not in repr(cfg.dump())
    assert cfg.resolve_url("broker") == f"amqp://u:{SECRET}@h/"


# --------------------------------------------------------------- aliases

def test_camel_case_aliases(confdir):
    write(confdir, "subscribe", "c",
          "acceptUnmatched on\npost_baseUrl http://h/data/\nidentity sha512\n"
          "kbytes_ps 10\ntimeCopy off\npermDefault 600\nbufSize 4m\n"
          "housekeeping 1m\nno_download\nlock .\npost_topicPrefix v03\n")
    cfg = load_config("subscribe", "c")
    assert cfg.accept_unmatch is True and cfg.post_base_url == "http://h/data/"
    assert cfg.sum == "s" and cfg.byte_rate_max == 10240
    assert cfg.preserve_time is False and cfg.default_mode == 0o600
    assert cfg.bufsize == 4 * 1048576 and cfg.heartbeat == 60.0
    assert cfg.download is False and cfg.inflight == "."
    assert cfg.post_topic_prefix == "v03"
    assert cfg.is_set("acceptUnmatched") and cfg.origin("sum").endswith(":3")


def test_dump_lists_options_and_masks(confdir):
    write(confdir, "subscribe", "c", "accept .*\n")
    dump = load_config("subscribe", "c").dump()
    assert set(OPTIONS) <= set(dump)
    assert dump["masks"][0]["pattern"] == ".*"


# ------------------------------------------------------------------ argv

def test_argv_daemon():
    inv = parse_argv("subscribe", ["--broker", "amqp://u@h/", "--mirror",
                                   "foreground", "myconf"])
    assert inv.action == "foreground" and inv.config == "myconf"
    assert inv.overrides == [("broker", "amqp://u@h/"), ("mirror", "true")]
    inv = parse_argv("subscribe", ["--mirror", "off", "start", "c"])
    assert inv.overrides == [("mirror", "off")] and inv.action == "start"


def test_argv_post():
    inv = parse_argv("post", ["-pb", "amqp://x@y/", "--post_base_url",
                              "http://h/", "a", "b"])
    assert inv.action is None and inv.paths == ["a", "b"]
    assert inv.overrides == [("post_broker", "amqp://x@y/"),
                             ("post_base_url", "http://h/")]
    inv = parse_argv("post", ["-c", "mypost", "-b", "amqp://h/", "--", "-odd"])
    assert inv.config == "mypost" and inv.paths == ["-odd"]


def test_argv_equals_form_and_aliases():
    inv = parse_argv("subscribe", ["--prefetch=10", "--acceptUnmatched=off",
                                   "--post-base-url=http://h/", "-ex=xs_a",
                                   "status", "c"])
    assert inv.overrides == [("prefetch", "10"), ("acceptUnmatched", "off"),
                             ("post_base_url", "http://h/"), ("exchange", "xs_a")]


def test_argv_overrides_load(confdir):
    write(confdir, "subscribe", "c", "prefetch 3\nsubtopic a.#\n")
    inv = parse_argv("subscribe", ["--prefetch", "8", "--subtopic", "b.#",
                                   "--no_download", "--accept", ".*z",
                                   "foreground", "c"])
    cfg = load_config("subscribe", inv.config, inv.overrides)
    assert cfg.prefetch == 8 and cfg.subtopic == ["a.#", "b.#"]
    assert cfg.download is False and cfg.masks[0].pattern == ".*z"


def test_argv_errors():
    with pytest.raises(ConfigError, match="unknown action 'strat'") as err:
        parse_argv("subscribe", ["strat", "c"])
    assert "foreground" in str(err.value)
    with pytest.raises(ConfigError, match="did you mean '--prefetch'") as err:
        parse_argv("subscribe", ["--prefech", "3", "start", "c"])
    assert err.value.option == "--prefech" and err.value.file == "command line"
    with pytest.raises(ConfigError, match="needs a value"):
        parse_argv("subscribe", ["start", "c", "--prefetch"])
    with pytest.raises(ConfigError, match="missing action"):
        parse_argv("subscribe", [])
    with pytest.raises(ConfigError, match="needs a configuration"):
        parse_argv("subscribe", ["start"])
    with pytest.raises(ConfigError, match="unexpected"):
        parse_argv("subscribe", ["start", "a", "b"])
    with pytest.raises(ConfigError, match="unknown option"):
        parse_argv("post", ["-zz", "x"])


def test_argv_config_less_foreground_help_version_log_audit():
    inv = parse_argv("subscribe", ["--broker", "amqp://u@h/", "foreground"])
    assert inv.action == "foreground" and inv.config is None
    assert parse_argv("sara", ["-h"]).show_help
    assert parse_argv("sara", ["--version"]).show_version
    inv = parse_argv("log", ["--follow", "mylog"])
    assert inv.config == "mylog" and inv.overrides == [("follow", "true")]


def test_help_text():
    text = help_text("subscribe")
    assert "ACTION CONFIG" in text and "--prefetch" in text and "--broker" in text
    assert "acceptUnmatched" in text and "[default: 25]" in text
    assert "--path" not in text            # watch/post only
    assert "--path" in help_text("watch")
    assert "PATH..." in help_text("post")


# ----------------------------------------------------------------- paths

def test_paths(confdir, tmp_path):
    assert paths.config_dir() == str(confdir)
    assert paths.config_file("subscribe", "x") == str(confdir / "subscribe" / "x.conf")
    assert paths.config_file("subscribe", "x.conf") == str(confdir / "subscribe" / "x.conf")
    assert paths.config_file("subscribe", "/etc/a.conf") == "/etc/a.conf"
    state = paths.state_path("sara", "c", "x.qname")
    assert state == str(tmp_path / "state" / "sara" / "c" / "x.qname")
    assert os.path.isdir(os.path.dirname(state))
    log = paths.log_path("subscribe", "c", 3)
    assert log.endswith(os.path.join("log", "subscribe_c_03.log"))
    with pytest.raises(ConfigError):
        paths.config_file("nosuchtool", "x")


def test_mask_nested_and_bad_url_does_not_echo(confdir):
    nested = f"http://h:8080/a?x=amqp://u:{SECRET}@h2/"
    assert mask(nested) == "http://h:8080/a?x=amqp://u:***@h2/"
    write(confdir, "subscribe", "c", f"broker amqp://u:{SECRET}/x@h/\n")
    with pytest.raises(ConfigError, match="not a valid URL") as err:
        load_config("subscribe", "c")
    assert SECRET not in str(err.value) and err.value.option == "broker"


def test_credentials_password_with_a_comma_is_kept_whole(caplog):
    with caplog.at_level(logging.WARNING, logger="sarra.config.credentials"):
        creds = Credentials.from_text("amqp://alice:42,Tr0ub4dor@broker.example.com/\n")
    assert creds.lookup("amqp://alice@broker.example.com/") == \
        "amqp://alice:42,Tr0ub4dor@broker.example.com/"
    assert "Tr0ub4dor" not in caplog.text and caplog.text == ""
