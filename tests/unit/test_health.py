"""The health of a configuration (sarra/health.py:assess), a pure function of
its figures and thresholds, and the line and exit status of ``sarra check``
(monitoring plugins: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; performance
data ``label=value[unit];warn;crit;min;max``)."""
from __future__ import annotations

import re

import pytest

from sarra import health
from sarra.health import Figures, Thresholds, assess, check_line

TH = Thresholds(lag_warn=60, stuck_after=300, idle_after=60, failing_ratio=0.5)


def busy(**kw) -> Figures:
    """Two instances at work, keeping up: the base every case changes."""
    base = dict(instances=2, up=2, started=True, silent_for=2.0, idle_for=0.5,
                messages_per_s=10.0, failures_per_s=0.0, lag=1.5, lag_p95=3.0,
                lag_trend=0.0, broker_queue=3, broker_queue_trend=0.0, batch=25)
    base.update(kw)
    return Figures(**base)


@pytest.mark.parametrize("figures, state", [
    (busy(), "running"),
    (busy(broker_queue=None, broker_queue_trend=None), "running"),
    # nothing to do
    (busy(idle_for=61.0, broker_queue=0, messages_per_s=0.0), "idle"),
    (busy(idle_for=61.0, broker_queue=None, broker_queue_trend=None), "idle"),
    (busy(idle_for=None, broker_queue=0, lag=None), "idle"),       # nothing handled yet
    # lagging: the lag of the last batch above lag_warn
    (busy(lag=61.0), "lagging"),
    (busy(lag=61.0, broker_queue_trend=-5.0, broker_queue=900), "lagging"),   # catching up
    # slow: the queue grows beyond a batch per instance
    (busy(broker_queue=51, broker_queue_trend=2.0), "slow"),
    (busy(broker_queue=50, broker_queue_trend=2.0), "running"),     # within 2 batches
    (busy(broker_queue=None, broker_queue_trend=None, lag=90.0, lag_trend=0.5), "slow"),
    (busy(broker_queue=None, broker_queue_trend=None, lag=90.0, lag_trend=-0.5), "lagging"),
    # stuck: figures not written, or messages waiting and nothing handled
    (busy(silent_for=301.0), "stuck"),
    (busy(idle_for=301.0, broker_queue=7, messages_per_s=0.0), "stuck"),
    (busy(idle_for=301.0, broker_queue=0, messages_per_s=0.0), "idle"),
    (busy(idle_for=200.0, broker_queue=7, messages_per_s=0.0), "running"),   # not yet
    # failing: failures over what is handled, or no broker
    (busy(failures_per_s=5.0), "failing"),
    (busy(failures_per_s=4.9), "running"),
    (busy(failures_per_s=0.2, messages_per_s=0.2), "failing"),
    (busy(connected=False), "failing"),
    (busy(silent_for=None, unreported_for=301.0, idle_for=None), "failing"),
    (busy(silent_for=None, unreported_for=20.0, idle_for=None, broker_queue=None), "idle"),
    # dead and stopped
    (busy(up=1), "dead"),
    (busy(up=0), "dead"),
    (busy(up=0, started=False), "stopped"),
])
def test_the_state_of_a_configuration(figures, state):
    h = assess(figures, TH)
    assert h.state == state, h
    assert h.severity == health.SEVERITY[state]


def test_the_first_state_that_holds_wins():
    worst = busy(up=1, silent_for=999.0, connected=False, failures_per_s=99.0, lag=999.0)
    assert assess(worst, TH).state == "dead"
    assert assess(busy(silent_for=999.0, failures_per_s=99.0), TH).state == "stuck"
    assert assess(busy(failures_per_s=99.0, lag=999.0), TH).state == "failing"


def test_thresholds_are_the_options():
    assert assess(busy(lag=30.0), Thresholds(lag_warn=20)).state == "lagging"
    assert assess(busy(silent_for=30.0), Thresholds(stuck_after=20)).state == "stuck"
    assert assess(busy(idle_for=30.0, broker_queue=0), Thresholds(idle_after=20)).state == "idle"
    assert assess(busy(failures_per_s=9.0), Thresholds(failing_ratio=0)).state == "running"
    assert assess(busy(failures_per_s=1.0), Thresholds(failing_ratio=0.1)).state == "failing"


def test_reasons_say_why():
    assert assess(busy(up=1), TH).reason == "1 of 2 instances not running"
    assert assess(busy(lag=95.0), TH).reason == "lag 95s > 60s"
    assert assess(busy(silent_for=312.0), TH).reason == "no figures written for 312s"
    assert assess(busy(failures_per_s=10.0), TH).reason == \
        "100% of the messages failed over the last minute"
    assert "1520 messages waiting" in assess(busy(idle_for=400.0, broker_queue=1520), TH).reason


# -- sarra check ------------------------------------------------------------------

PERF = re.compile(r"^'?[^'=]+'?=-?[0-9.]+(s|%|B|)?(;[0-9.:@~-]*){0,4}$")


def result(name: str, figures: Figures, **kw) -> dict:
    d = {"tool": "subscribe", "config": name, "up": figures.up, "instances": figures.instances,
         "messages_per_s": figures.messages_per_s, "failures_per_s": figures.failures_per_s,
         "lag": figures.lag, "broker_queue": figures.broker_queue, "retry_queue": 0,
         "health": assess(figures, TH), "thresholds": TH}
    d.update(kw)
    return d


def split(line: str) -> tuple[str, list[str]]:
    text, _, data = line.partition(" | ")
    return text, data.split()


@pytest.mark.parametrize("figures, code, word", [
    (busy(), 0, "OK"), (busy(idle_for=999.0, broker_queue=0), 0, "OK"),
    (busy(lag=99.0), 1, "WARNING"), (busy(broker_queue=99, broker_queue_trend=1.0), 1, "WARNING"),
    (busy(silent_for=999.0), 2, "CRITICAL"), (busy(failures_per_s=9.0), 2, "CRITICAL"),
    (busy(up=0), 2, "CRITICAL"), (busy(up=0, started=False), 2, "CRITICAL"),
])
def test_check_exit_status_is_the_worst_severity(figures, code, word):
    rc, line = check_line([result("a", busy()), result("b", figures)])
    assert rc == code
    assert line.startswith(f"SARRA {word} - ")
    assert "\n" not in line


def test_check_line_names_what_is_wrong_and_has_perfdata_for_each():
    rc, line = check_line([result("a", busy()), result("b", busy(lag=75.0))])
    text, data = split(line)
    assert rc == 1 and text == "SARRA WARNING - subscribe/b lagging (lag 75s > 60s)"
    assert "subscribe/a_lag=1.5s;60;;0" in data and "subscribe/b_lag=75s;60;;0" in data
    assert "subscribe/a_up=2;;2:;0;2" in data
    assert "subscribe/a_queue=3;;;0" in data and "subscribe/a_rate=10;;;0" in data
    assert "subscribe/a_failing=0;;0.5;0;1" in data
    for item in data:
        assert PERF.match(item), item
    rc, line = check_line([result("a", busy()), result("c", busy(idle_for=99.0, broker_queue=0))])
    assert rc == 0 and split(line)[0] == "SARRA OK - 2 configurations running 1, idle 1"


def test_unknown_figures_are_left_out_of_the_perfdata():
    _rc, line = check_line([result("a", busy(lag=None, broker_queue=None))])
    names = [item.split("=")[0] for item in split(line)[1]]
    assert names == ["subscribe/a_up", "subscribe/a_rate", "subscribe/a_retry",
                     "subscribe/a_failing"]


def test_check_is_unknown_without_anything_to_judge():
    assert check_line([]) == (3, "SARRA UNKNOWN - no configuration")
    rc, line = check_line([result("a", busy())], ["subscribe/bad"])
    assert rc == 3 and "subscribe/bad: cannot be read" in line
    rc, _line = check_line([result("a", busy(up=0))], ["subscribe/bad"])
    assert rc == 2                                  # what is known to be wrong comes first


def test_perf_quotes_labels_and_trims_empty_fields():
    assert health.perf("a b", 1.5, "s", 60) == "'a b'=1.5s;60"
    assert health.perf("it's", 2) == "'it''s'=2"
    assert health.perf("x", 0.0, "", "", 3, 0, 1) == "x=0;;3;0;1"
