"""Metrics, health and the check of a real flow: a dd_subscribe started with
``sarra start`` downloads a tree from nginx (RabbitMQ on 127.0.0.1:5672,
its management API read for the queue's depth); ``sarra metrics`` scraped
during and after the flow counts the files and bytes actually moved;
``sarra status`` shows the health and the lag, ``sarra check`` says OK
(WARNING by a lower lag_warn, UNKNOWN for a bad threshold or name); the
HTTP server stopped while posts keep coming makes it failing (CRITICAL),
a killed instance dead, a stopped configuration stopped."""
from __future__ import annotations

import os
import signal
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import tool_command, tool_env, wait_for
from tests.integration.flowkit import (assert_logs_clean, declare, dd_post, qname, sub_config,
                                       taps, wait_same_tree)

__all__ = ["taps"]


def sarra(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(tool_command("sarra", *args), capture_output=True, text=True,
                          timeout=timeout, env=tool_env(), stdin=subprocess.DEVNULL)


def scrape(selection: str) -> dict[tuple, float]:
    """``sarra metrics SELECTION``, parsed back: (name, labels...) -> value."""
    res = sarra("metrics", selection)
    assert res.returncode == 0, res.stdout + res.stderr
    out = {}
    for fam in text_string_to_metric_families(res.stdout):
        for s in fam.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("tool", "config")}
            out[(s.name, *sorted(labels.items()))] = s.value
    return out


def test_metrics_status_and_check_of_a_real_flow(sarra_home, unique, taps, nginx, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    sizes = [1000 + 137 * i for i in range(30)]
    for i, size in enumerate(sizes):
        (src / f"f{i:02d}.dat").write_bytes(os.urandom(size))
    server = nginx(src, workers=1)
    ex, xr, name = f"xmx_{unique}", f"xmxr_{unique}", f"mx_{unique}"
    reports = taps(xr)
    # small thresholds, so that the states show within seconds
    sub_config(sarra_home, name, ex, dst, xr, extra=(
        "attempts 1\nretry_delay 1\nidle_after 3\nlag_warn 30\nstuck_after 60\n"
        "failing_ratio 0.2\nheartbeat 5\n"))
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    sel = f"subscribe/{name}"
    started = sarra("start", sel)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        dd_post(ex, server.url, src, src)
        during = scrape(sel)                          # as the flow goes: never more than moved
        assert during.get(("sarra_messages_downloaded_total", ("instance", "01")), 0) <= 30
        assert during[("sarra_up", ("instance", "01"))] == 1
        wait_same_tree(src, dst, timeout=30)

        one = ("instance", "01")

        def settled():
            got = scrape(sel)
            return got if got.get(("sarra_messages_downloaded_total", one)) == 30 and \
                ("sarra_broker_queue_messages",) in got else None
        got = wait_for(settled, timeout=25, interval=0.5,
                       what="the metrics of the 30 downloads and the queue's depth")
        assert got[("sarra_bytes_transferred_total", one)] == sum(sizes) == \
            sum(p.stat().st_size for p in dst.iterdir())
        assert got[("sarra_messages_received_total", one)] == 30
        assert got[("sarra_messages_accepted_total", one)] == 30
        assert got[("sarra_reports_total", ("code", "201"), one)] == 30
        assert got[("sarra_messages_by_code_total", ("code", "201"), one)] == 30
        assert got[("sarra_messages_failed_total", one)] == 0
        assert got[("sarra_retry_queue_messages", one)] == 0
        assert got[("sarra_broker_queue_messages",)] == 0          # all taken
        assert 0 <= got[("sarra_lag_seconds", one)] < 30
        assert got[("sarra_broker_connected", one)] == 1
        assert got[("sarra_process_resident_memory_bytes", one)] > 10e6
        assert got[("sarra_instances",)] == 1
        reports.wait(lambda ms: sum(m.report.code == 201 for m in ms) == 30, 10, "30 × 201")

        # nothing more to do: idle, with the lag of the last batch; the check says OK
        def status():
            return sarra("status", sel).stdout
        line = wait_for(lambda: (lambda s: s if "health idle" in s else None)(status()),
                        timeout=15, interval=0.5, what="the configuration idle")
        assert line.startswith(f"{sel}: running (1/1 instances), health idle (nothing "
                               "handled for "), line
        assert ", broker queue 0, lag " in line and "(p95 " in line, line
        check = sarra("check", sel)
        assert check.returncode == 0, check.stdout
        assert check.stdout.startswith("SARRA OK - 1 configuration idle 1 | "), check.stdout
        assert f"{sel}_lag=" in check.stdout and f"{sel}_queue=0;;;0" in check.stdout

        # the check judges the figures by the thresholds the file has now: with
        # a lag over a millisecond "lagging" (every real download is), WARNING
        conf = sarra_home.config_dir / "subscribe" / f"{name}.conf"
        text = conf.read_text()
        conf.write_text(text.replace("idle_after 3\nlag_warn 30\n",
                                     "idle_after 10m\nlag_warn 0.001\n"))
        check = sarra("check", sel)
        assert check.returncode == 1, check.stdout + check.stderr
        assert check.stdout.startswith(f"SARRA WARNING - {sel} lagging (lag "), check.stdout
        assert f"{sel}_lag=" in check.stdout and "s;0.001;" in check.stdout, check.stdout
        assert "health lagging" in status()
        # a threshold that is no duration: not judged, UNKNOWN, the line named
        conf.write_text(text.replace("lag_warn 30", "lag_warn soon"))
        check = sarra("check", sel)
        assert check.returncode == 3, check.stdout + check.stderr
        assert check.stdout.startswith(f"SARRA UNKNOWN - {sel}: cannot be read"), check.stdout
        assert f"{name}.conf:12: option 'lag_warn': 'soon' is not a duration" in check.stderr
        conf.write_text(text)
        # a name that is no configuration: UNKNOWN
        check = sarra("check", f"subscribe/nosuch_{unique}")
        assert check.returncode == 3 and check.stdout.startswith(
            f"SARRA UNKNOWN - ") and f"nosuch_{unique}.conf: no such configuration" in \
            check.stdout, check.stdout + check.stderr

        # the data server stops while posts keep coming: failing, CRITICAL
        server.stop()
        more = tmp_path / "more"
        more.mkdir()
        for i in range(10):
            (more / f"g{i:02d}.dat").write_bytes(os.urandom(500))
        dd_post(ex, server.url, more, more)

        def failing():
            res = sarra("check", sel)
            return res if res.returncode == 2 and " failing (" in res.stdout else None
        check = wait_for(failing, timeout=20, interval=0.5, what="the check CRITICAL, failing")
        assert check.stdout.startswith(f"SARRA CRITICAL - {sel} failing ("), check.stdout
        assert "health failing" in status()
        got = scrape(sel)
        assert got[("sarra_messages_failed_total", one)] >= 10
        assert got[("sarra_retries_queued_total", one)] >= 10
        assert got[("sarra_health", ("state", "failing"))] == 1
        assert got[("sarra_messages_downloaded_total", one)] == 30

        # an instance killed: dead; stopped on purpose: stopped; both CRITICAL
        pid = int((sarra_home.state_dir / "subscribe" / name /
                   f"subscribe_{name}_01.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        check = wait_for(lambda: (lambda r: r if r.returncode == 2 and " dead (" in r.stdout
                                  else None)(sarra("check", sel)),
                         timeout=10, interval=0.2, what="the check CRITICAL, dead")
        assert check.stdout.startswith(f"SARRA CRITICAL - {sel} dead (0 of 1 instances "
                                       "running)"), check.stdout
        assert scrape(sel)[("sarra_up", one)] == 0
    finally:
        sarra("stop", sel)
    check = sarra("check", sel)
    assert check.returncode == 2 and check.stdout.startswith(
        f"SARRA CRITICAL - {sel} stopped (not started)"), check.stdout
    assert_logs_clean(*(sarra_home.state_dir / "log").glob(f"subscribe_{name}_*.log"))

