"""sr3 and v2 configurations, as written for those, load and mean what they
meant: environment variables, sr3's time patterns with offsets, v2's date
names, accept groups, per-message variables, base directories, camelCase
names, callbacks and plugins (sarra/config/variables.py, loader.py,
flow/filter.py)."""
import calendar
import logging
import time

import pytest

from sarra.config import load_config
from sarra.config import variables as var
from sarra.errors import ConfigError, UnsafePathError
from sarra.flow.filter import choose, default_placement, placed_relpath, resolve
from sarra.message import Message
from sarra.plugins import load_hook

# 2026-03-01 00:30:15 UTC: yesterday is in February, an hour ago is 2026-02-28 23:30
NOW = calendar.timegm((2026, 3, 1, 0, 30, 15, 0, 0, 0))


def write(confdir, tool, name, text):
    path = confdir / tool / f"{name}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(confdir, text, tool="subscribe", presets=None):
    path = write(confdir, tool, "c", text)
    return load_config(tool, "c", (), presets or {"accept_unmatch": False}), path


def post(relpath, base="http://h.example.com/data/", **headers):
    return Message("20260301003000.000", base, relpath,
                   {"sum": "d," + "0" * 32, "parts": "1,10,1,0,0", **headers})


def placed(cfg, msg, now=NOW):
    """Where ``msg`` goes: (directory, relpath under it), as the Downloader
    computes them (filter.choose, then filter.resolve)."""
    ok, placement, why = choose(msg, cfg.masks, bool(cfg.accept_unmatch),
                                default_placement(cfg))
    assert ok, why
    p = resolve(placement, msg, cfg, now=now)
    return p.directory, placed_relpath(msg, p)


# ---------------------------------------------------------- the forms

@pytest.mark.parametrize("inner, expected", [
    ("%Y%m%d", "20260301"),
    ("%o-1d%Y%m%d", "20260228"),                  # sr3: yesterday, over the month's end
    ("%o-1h%Y/%m/%d_%Hh%M:%S", "2026/02/28_23h30:15"),
    ("%o+2w%Y%m%d", "20260315"),
    ("%o-30m%H%M", "0000"),
    ("%o-90%H%M%S", "002845"),                    # no unit: seconds
    ("%o-1.5h%H%M", "2300"),
    ("%Y-%j %%", "2026-060 %"),
    ("%H%M%S.%f", "003015.000000"),               # datetime's %f
    ("YYYYMMDD", "20260301"), ("YYYY", "2026"), ("MM", "03"), ("DD", "01"),
    ("HH", "00"), ("JJJ", "060"),
    ("YYYYMMDD-1D", "20260228"), ("MM-1D", "02"), ("JJJ-1D", "059"),   # v2's
    ("YYYY-1D", "2026"), ("DD-2D", "27"), ("HH-1H", "23"), ("YYYYMMDD+1D", "20260302"),
])
def test_time_references(inner, expected):
    assert var.kind(inner) == var.TIME
    assert var.time_value(inner, NOW) == expected


@pytest.mark.parametrize("inner, kind", [
    ("0", var.GROUP), ("12", var.GROUP), ("SOURCE", var.MESSAGE), ("BUP", var.MESSAGE),
    ("baseUrlPathLast", var.MESSAGE), ("BD", var.BASE), ("PDR", var.BASE),
    ("HOME", var.NAME), ("a b", None), ("", None), ("1x", None), ("yyyymmdd", var.NAME)])
def test_reference_kinds(inner, kind):
    assert var.kind(inner) == kind


@pytest.mark.parametrize("inner", ["%o-1x%Y", "%o1d%Y", "%o-1d", "%o"])
def test_bad_offsets(inner):
    with pytest.raises(ValueError):
        var.time_format(inner)


# ------------------------------------------------------------- loading

def test_environment_variables_in_values(confdir, monkeypatch):
    monkeypatch.setenv("FLOWBROKER", "feeder@broker.example.com")
    monkeypatch.setenv("TOPDIR", "/srv/in")
    cfg, _ = load(confdir, "broker amqp://${FLOWBROKER}/\nexchange xs_${CONFIG}\n"
                           "directory ${TOPDIR}/${%Y}\naccept .*\n")
    assert cfg.broker == "amqp://feeder@broker.example.com/"
    assert cfg.exchange == "xs_c"
    assert cfg.directory == "/srv/in/${%Y}"        # the time is each message's


def test_time_patterns_in_other_options_are_the_load_time(confdir, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: NOW)
    cfg, _ = load(confdir, "varTimeOffset -31m\nreport_exchange x_${%o-1d%Y%m%d}\n"
                           "broker amqp://bob@h/\n"
                           "queue_name q_${BROKER_USER}.${%Y%m%d%H}.${YYYYMMDD-1D}\n")
    assert cfg.var_time_offset == -31 * 60
    assert cfg.report_exchange == "x_20260227"       # 1 day and 31 minutes ago
    assert cfg.queue_name == "q_bob.2026022823.20260227"


def test_directory_and_rename_are_expanded_for_each_message(confdir):
    cfg, _ = load(confdir, "directory /data/${%o-1d%Y%m%d}\naccept .*old.*\n"
                           "directory /data/${%Y%m%d}/${SOURCE}\n"
                           "rename obs.${%o-1h%Y%m%d_%H%M%S}.csv\naccept .*obs.*\n")
    assert cfg.masks[1].directory == "/data/${%Y%m%d}/${SOURCE}"
    assert cfg.masks[1].rename == "obs.${%o-1h%Y%m%d_%H%M%S}.csv"
    msg = post("a/obs/x.csv", source="alice")
    assert placed(cfg, msg) == ("/data/20260301/alice", "obs.20260228_233015.csv")
    later = NOW + 86400
    assert placed(cfg, msg, later) == ("/data/20260302/alice", "obs.20260301_233015.csv")
    assert placed(cfg, post("b/old/y.txt")) == ("/data/20260228", "y.txt")


def test_var_time_offset_moves_every_time_of_each_message(confdir):
    cfg, _ = load(confdir, "directory /d/${YYYYMMDD}/${HH}/${%H%M}\nvarTimeOffset -31m\n"
                           "accept .*\n")
    assert placed(cfg, post("x"))[0] == "/d/20260228/23/2359"


def test_accept_groups_in_directory_python_numbering(confdir):
    """sr3_options(7), sundew_compat_regex_first_match_is_zero off (the
    default): ${1} is the first group, ${0} the whole match."""
    cfg, _ = load(confdir, r"""
directory /tmp/meteocode/${3}/${1}/${2}
accept .*/WXO-DD/meteocode/(atl|ont|pnr|pyr|que)/.*/TRANSMIT\.FP([A-Z][A-Z]).*([0-2][0-9][0-6][0-9]Z).*
directory /this/${1}/pattern/${2}/directory
rename ${2}.grib
accept .*(2016....).*(RAW.*GRIB).*
""")
    msg = post("20231127/WXO-DD/meteocode/que/cmml/TRANSMIT.FPCN71.11.27.1000Z.xml",
               base="https://hpfx.collab.science.gc.ca/")
    assert placed(cfg, msg) == ("/tmp/meteocode/1000Z/que/CN",
                                "TRANSMIT.FPCN71.11.27.1000Z.xml")
    grib = post("relative/path/to/20160123_product_RAW_MERGER_GRIB_from_CMC",
                base="http://this.pump.com/")
    assert placed(cfg, grib) == ("/this/20160123/pattern/RAW_MERGER_GRIB/directory",
                                 "RAW_MERGER_GRIB.grib")


def test_accept_groups_sundew_numbering(confdir):
    cfg, _ = load(confdir, "sundew_compat_regex_first_match_is_zero on\n"
                           "directory /tmp/meteocode/${2}/${0}/${1}\n"
                           r"accept .*/meteocode/(que)/.*FP([A-Z][A-Z]).*([0-2][0-9][0-6][0-9]Z).*"
                           "\n")
    msg = post("x/meteocode/que/cmml/TRANSMIT.FPCN71.11.27.1000Z.xml")
    assert placed(cfg, msg)[0] == "/tmp/meteocode/1000Z/que/CN"


def test_a_group_the_pattern_lacks_is_an_error_naming_the_line(confdir):
    with pytest.raises(ConfigError) as err:
        load(confdir, "mirror on\ndirectory /d/${3}\naccept .*(a)(b).*\n")
    e = err.value
    assert (e.line, e.option) == (2, "directory") and e.file.endswith("c.conf")
    assert "${3}" in str(e) and "has 2 groups" in str(e) and "c.conf:3" in str(e)
    with pytest.raises(ConfigError, match=r"\$\{1\}.* has 1 group"):
        load(confdir, "sundew_compat_regex_first_match_is_zero on\n"
                      "directory /d/${1}\naccept .*(a).*\n")


def test_a_group_where_no_accept_matched_is_an_error(confdir):
    with pytest.raises(ConfigError, match=r"no accept pattern matched has no groups") as err:
        load(confdir, "directory /d/${1}\n")
    assert err.value.line == 1
    with pytest.raises(ConfigError, match="no accept pattern matched"):
        load(confdir, "accept .*(x).*\ndirectory /d/${1}\nacceptUnmatched on\n")
    # the placement at the end is never used: accept_unmatch off, accept lines given
    cfg, _ = load(confdir, "accept .*(x).*\ndirectory /d/${1}\n")
    assert cfg.directory == "/d/${1}"


def test_per_message_variables_elsewhere_are_errors(confdir):
    for text, what in [("exchange x_${1}\n", "a group of the accept pattern"),
                       ("queue_name q_${SOURCE}\n", "a value of each message"),
                       ("accept .*${BUPL}.*\n", "a value of each message")]:
        with pytest.raises(ConfigError, match=what) as err:
            load(confdir, text)
        assert err.value.line == 1
    cfg, _ = load(confdir, "post_exchange xs_${SOURCE}\n")   # as before: each message's
    assert cfg.post_exchange == "xs_${SOURCE}"


@pytest.mark.parametrize("text, name", [
    ("directory /d/${NOPE_NOT_SET}\n", "${NOPE_NOT_SET}"),
    ("exchange ${a b}\n", "${a b}"),
    ("directory /d/${%o-1x%Y}\n", "${%o-1x%Y}"),
    ("rename ${yyyymmdd}\n", "${yyyymmdd}"),
])
def test_an_unknown_reference_names_file_line_and_variable(confdir, monkeypatch, text, name):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    monkeypatch.delenv("yyyymmdd", raising=False)
    with pytest.raises(ConfigError) as err:
        load(confdir, "mirror on\n" + text)
    assert err.value.line == 2 and name in str(err.value)
    assert f"{err.value.file}:2" in str(err.value)


def test_source_bup_bupl_for_each_message(confdir):
    cfg, _ = load(confdir, "directory /d/${BUPL}/${SOURCE}/${baseUrlPath}\naccept .*\n")
    msg = post("x/f.txt", base="http://h/pub/radar/", source="eccc")
    assert placed(cfg, msg)[0] == "/d/radar/eccc/pub/radar"


@pytest.mark.parametrize("relpath, base", [
    ("a/../../etc/f", "http://h/"),           # ${1} would climb out
    ("a/x", "http://h/../up/"),               # ${BUP} likewise
])
def test_values_of_the_message_cannot_lead_the_path_out(confdir, relpath, base):
    cfg, _ = load(confdir, "directory /d/${1}/${BUP}\naccept http://h/(.*)/[^/]*$\n")
    with pytest.raises(UnsafePathError):
        placed(cfg, post(relpath, base=base))


def test_base_directories(confdir):
    """v2: directory ${PDR}/${YYYYMMDD}/${SOURCE}; PDR is post_base_dir,
    or base_dir when that is not set (sr3: PBD and BD)."""
    cfg, _ = load(confdir, "directory ${PBD}/${YYYYMMDD}/${SOURCE}\nmirror on\n"
                           "accept .*\npost_base_dir /var/www\n", tool="sara",
                  presets={"accept_unmatch": True})
    assert cfg.masks[0].directory == "/var/www/${YYYYMMDD}/${SOURCE}"
    cfg, _ = load(confdir, "base_dir /srv\ndirectory ${PDR}/a/${BD}\nexchange ${DR}\n")
    assert cfg.directory == "/srv/a//srv" and cfg.exchange == "/srv"
    with pytest.raises(ConfigError, match=r"\$\{PBD\} needs post_base_dir \(or base_dir\)") \
            as err:
        load(confdir, "mirror on\ndirectory ${PBD}/x\n")
    assert err.value.line == 2


def test_broker_user_and_post_broker_user(confdir):
    cfg, _ = load(confdir, "broker amqp://ann@h/\npost_broker amqp://feeder@h/\n"
                           "queue_name q_${BROKER_USER}.${POST_BROKER_USER}\n")
    assert cfg.queue_name == "q_ann.feeder"


# ------------------------------------------------- sr3 and v2 names

def test_sr3_camel_case_configuration(confdir):
    cfg, _ = load(confdir, """
broker amqps://anonymous@dd.weather.gc.ca/
topicPrefix v02.post
subtopic observations.swob-ml.#
queueName q_anonymous.subscribe.c.x
messageAgeMax 1h
nodupe_ttl 10m
sourceFromExchange off
logLevel warning
logReject off
logEvents after_accept,after_work,on_housekeeping
varTimeOffset -5m
directory /data/${%Y%m%d}
acceptUnmatched off
accept .*
""")
    assert cfg.topic_prefix == "v02.post" and cfg.queue_name == "q_anonymous.subscribe.c.x"
    assert cfg.message_ttl == 3600 and cfg.nodupe_ttl == 600 and cfg.log_level == "warning"
    assert cfg.log_reject is False and cfg.var_time_offset == -300
    assert cfg.log_events == "after_accept,after_work,on_housekeeping"
    assert cfg.on_message == ["log"] and cfg.on_file == ["log"] and cfg.on_post == []
    assert cfg.origin("on_message").endswith("c.conf:11")


def test_callback_log_follows_log_events(confdir):
    cfg, _ = load(confdir, "callback log\n")
    assert (cfg.on_message, cfg.on_file, cfg.on_post) == (["log"], ["log"], [])
    cfg, _ = load(confdir, "logEvents after_work\nlogEvents +after_post\ncallback log\n")
    assert (cfg.on_message, cfg.on_file, cfg.on_post) == ([], ["log"], ["log"])
    cfg, _ = load(confdir, "logEvents after_accept,after_work\nlogEvents -after_accept\n")
    assert cfg.log_events == "after_work" and cfg.on_message == []
    cfg, _ = load(confdir, "flowCallback sarracenia.flowcb.log.Log\nlogEvents none\n")
    assert cfg.on_message == [] and cfg.on_file == []


def test_v2_log_plugins(confdir):
    cfg, _ = load(confdir, "on_message msg_log\non_file file_log\non_post post_log\n"
                           "on_heartbeat hb_log\nplugin msg_log\n")
    assert (cfg.on_message, cfg.on_file, cfg.on_post) == (["log"], ["log"], ["log"])


def test_nodupe_callbacks(confdir):
    cfg, _ = load(confdir, "callback_prepend nodupe.name\n")
    assert cfg.nodupe_ttl == 300 and cfg.nodupe_basis == "name"
    cfg, _ = load(confdir, "callback nodupe\nnodupe_ttl 1h\n")
    assert cfg.nodupe_ttl == 3600 and cfg.nodupe_basis == "path"
    cfg, _ = load(confdir, "on_heartbeat hb_cache\nplugin hb_retry\n")
    assert cfg.nodupe_ttl == 0


@pytest.mark.parametrize("text", ["callback accept.skipold\n", "plugin msg_fdelay\n",
                                  "callback_prepend nodupe.redis\n", "on_heartbeat hb_memory\n",
                                  "flowcb sarracenia.flowcb.accept.tohttp.ToHttp\n"])
def test_a_plugin_sarra_lacks_stops_the_load_saying_what_to_use(confdir, text):
    with pytest.raises(ConfigError) as err:
        load(confdir, "mirror on\n" + text)
    e = err.value
    assert e.line == 2 and e.option == text.split()[0]
    assert "size MIN MAX (accept by size)" in str(e) and "age MAX_AGE" in str(e)
    assert "doc/hooks.md" in str(e)


def test_log_events_sarra_does_not_log_are_an_error(confdir):
    with pytest.raises(ConfigError, match="on_frob not logged by sarra") as err:
        load(confdir, "logEvents after_accept,on_frob\n")
    assert err.value.line == 1 and err.value.option == "logEvents"


def test_sr3s_other_event_names_and_all(confdir):
    cfg, _ = load(confdir, "logEvents after_accept,on_start,on_stop,reject,gather\n")
    assert cfg.on_message == ["log"] and cfg.on_file == []     # the others: logged anyway
    cfg, _ = load(confdir, "logEvents all\n")
    assert (cfg.on_message, cfg.on_file, cfg.on_post) == (["log"], ["log"], ["log"])
    from sarra.tools import tool
    cfg, _ = load(confdir, "", presets=tool("subscribe").presets)   # dd_subscribe's default:
    assert cfg.log_events == "after_work" and cfg.on_file == ["log"]   # each file received
    cfg, _ = load(confdir, "logEvents none\n", presets=tool("subscribe").presets)
    assert cfg.on_file == [] and cfg.on_message == []


def test_batch_is_read_with_a_warning(confdir):
    cfg, path = load(confdir, "batch 100\nprefetch 10\n")
    assert cfg.prefetch == 10
    assert cfg.notes == [f"{path}:1: batch: ignored: sarra keeps its transfer connections "
                         "open (no reconnection every N files) and takes up to 'prefetch' "
                         "messages at a time: set prefetch to change that"]


def test_the_log_hook_without_a_file_writes_to_the_log(confdir, caplog):
    cfg, _ = load(confdir, "callback log\n")
    hook = load_hook(cfg, "on_file", "log")
    msg = post("a/b.txt")
    msg.local_path = "/data/b.txt"
    with caplog.at_level(logging.INFO, logger="sarra.hooks.log"):
        assert hook.call(msg) is True
    assert "on_file: a/b.txt -> /data/b.txt (10 bytes)" in caplog.text


def test_log_reject_off_silences_the_rejection_lines(confdir, capsys):
    from sarra import cli
    from sarra.worklist import Worklist
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for text, shown in (("logReject off\n", False), ("logReject on\n", True)):
            cfg, _ = load(confdir, text)
            cli.setup_logging(cfg)
            wl = Worklist.of([post("a/b.txt")])
            wl.move(wl.jobs[0], "rejected", "no accept pattern matched")
            logging.getLogger("sarra.worklist").warning("failed x: kept")
            err = capsys.readouterr().err
            assert ("rejected a/b.txt: no accept pattern matched" in err) is shown
            assert "failed x: kept" in err
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
