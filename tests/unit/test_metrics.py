"""The figures, from the flow to the exposition, without a broker: what the
engine counts and the housekeeper writes in the metrics file (the keys of
earlier versions kept); the Prometheus exposition built from metrics files
(read back with prometheus_client's parser); the queue depth from a
stand-in management API; ``sarra check`` and ``sarra metrics`` as
commands; ``sarra sanity`` restarting a stuck instance, and counting it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sarra import cli, health, service
from sarra.broker.management import QueueDepth, default_api_url
from sarra.flow.housekeeping import QueueWatch, lag_figures, read_metrics
from sarra.metrics import exposition
from tests.unit.test_engine import lab  # noqa: F401 - the fixture

__all__ = ["lab"]

OLD_KEYS = {"pid", "time", "started", "stopped", "messages", "bytes", "messages_per_s",
            "bytes_per_s", "retry_queue", "by_status"}


def test_the_flow_counts_and_its_metrics_file_says_so(lab):  # noqa: F811
    flow = lab.flow()
    lab.post("m/one", b"12345")
    lab.post("m/two", b"123")
    lab.post("m/bad", spoilt=True)
    assert flow.step(timeout=1.0) == 3
    ev = flow.events
    assert (ev["received"], ev["accepted"], ev["failed"], ev["retry_queued"], ev["given_up"],
            ev["reposted"]) == (3, 3, 1, 1, 0, 2)
    assert flow.reported == {201: 2, 499: 1}
    assert flow.bytes == 8 and flow.connected
    assert 0 <= flow.lag < 5 and abs(flow.last_activity - time.time()) < 5
    flow.housekeeper.write_metrics()
    m = read_metrics(flow.housekeeper.path)
    assert OLD_KEYS <= set(m)                      # what sarra status of 0.1 reads
    assert m["by_status"] == {"201": 2, "499": 1} and m["messages"] == 3 and m["bytes"] == 8
    assert (m["received"], m["accepted"], m["posted"], m["failed"], m["retry_queued"]) == \
        (3, 3, 2, 1, 1)
    assert m["reported"] == {"201": 2, "499": 1}
    assert m["connected"] is True and m["busy"] is False
    assert m["lag"] == pytest.approx(flow.lag, abs=0.01) and m["lag_p95"] >= 0
    assert "broker_queue" not in m                 # a memory broker: no management API
    assert m["failures_per_s"] > 0
    flow.close()


def test_lag_figures_over_the_recent_batches():
    now = 10_000.0
    lags = [(now - 400, 99.0)] + [(now - 50 + i, float(i)) for i in range(50)]
    f = lag_figures(lags, now)
    assert f["lag"] == 49.0 and f["lag_p95"] == 47.0     # the old batch is left out
    assert f["lag_trend"] == pytest.approx(1.0)
    assert lag_figures([], now) == {"lag": None, "lag_p95": None, "lag_trend": None}


# -- the exposition, from metrics files ------------------------------------------------

@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    return tmp_path


@pytest.fixture
def instance():
    """instance(tool, config, n, metrics): a process standing in for instance
    n (its pid file, and the metrics file given, with its pid)."""
    procs = []

    def make(tool, config, n, metrics: dict | None, age: float = 0.0):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                 "sarra.cli", tool, "foreground", config],
                                stdin=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 10
        # until the interpreter runs (its command line, and its memory: the
        # exec'd process is tiny for a moment)
        while "sarra.cli" not in psutil.Process(proc.pid).cmdline() or \
                psutil.Process(proc.pid).memory_info().rss < 2e6:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        service.write_pid_file(service.pid_file(tool, config, n), proc.pid,
                               psutil.Process(proc.pid).create_time())
        if metrics is not None:
            now = time.time() - age
            data = {"pid": proc.pid, "time": now, "started": now - 100, **metrics}
            Path(service.metrics_file(tool, config, n)).write_text(json.dumps(data))
        return proc
    yield make
    for proc in procs:
        proc.kill()
        proc.wait(10)


FIGURES = {"stopped": False, "messages": 16, "bytes": 3000, "messages_per_s": 1.5,
           "bytes_per_s": 100, "retry_queue": 2,
           "by_status": {"201": 10, "499": 2, "rejected": 3, "duplicate": 1},
           "received": 16, "accepted": 12, "posted": 10, "failed": 2, "retry_queued": 2,
           "given_up": 0, "reported": {"201": 10, "499": 2}, "failures_per_s": 0.1,
           "connected": True, "busy": False, "lag": 0.5, "lag_p95": 1.25, "lag_trend": None,
           "broker_queue": 4, "broker_queue_time": time.time(), "broker_queue_trend": 0.0}


def samples(text: str) -> dict[tuple, float]:
    """(name, sorted labels) -> value of every sample; and the types, checked."""
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.name.startswith("sarra_")
        assert fam.type in ("counter", "gauge"), fam
        for s in fam.samples:
            if fam.type == "counter":
                assert s.name.endswith("_total"), s
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def L(**labels) -> tuple:
    return tuple(sorted(labels.items()))


def test_exposition_from_the_metrics_files(state, instance):
    instance("subscribe", "obs", 1, dict(FIGURES, last_activity=time.time() - 1))
    d = service.describe("subscribe", "obs", 2)
    got = samples(exposition([d]))
    one = dict(tool="subscribe", config="obs", instance="01")
    assert got[("sarra_up", L(**one))] == 1
    assert got[("sarra_up", L(**dict(one, instance="02")))] == 0
    assert got[("sarra_instances", L(tool="subscribe", config="obs"))] == 2
    assert got[("sarra_health", L(tool="subscribe", config="obs", state="dead"))] == 1
    assert sum(v for (name, _l), v in got.items() if name == "sarra_health") == 1
    expected = {"sarra_messages_received_total": 16, "sarra_messages_accepted_total": 12,
                "sarra_messages_downloaded_total": 10, "sarra_messages_posted_total": 10,
                "sarra_bytes_transferred_total": 3000, "sarra_retries_queued_total": 2,
                "sarra_messages_given_up_total": 0, "sarra_messages_failed_total": 2,
                "sarra_messages_quarantined_total": 0, "sarra_retry_queue_messages": 2,
                "sarra_lag_seconds": 0.5, "sarra_lag_p95_seconds": 1.25,
                "sarra_broker_connected": 1}
    for name, value in expected.items():
        assert got[(name, L(**one))] == value, name
    assert got[("sarra_messages_rejected_total", L(**one, reason="filter"))] == 3
    assert got[("sarra_messages_rejected_total", L(**one, reason="duplicate"))] == 1
    assert got[("sarra_messages_rejected_total", L(**one, reason="spoofed"))] == 0
    assert got[("sarra_reports_total", L(**one, code="499"))] == 2
    assert got[("sarra_messages_by_code_total", L(**one, code="201"))] == 10
    assert got[("sarra_broker_queue_messages", L(tool="subscribe", config="obs"))] == 4
    assert got[("sarra_process_resident_memory_bytes", L(**one))] > 1e6
    assert ("sarra_process_cpu_seconds_total", L(**one)) in got
    assert abs(got[("sarra_last_activity_timestamp_seconds", L(**one))] - time.time()) < 10
    # nothing of the instance that does not run but its sarra_up
    assert not [k for k in got if ("instance", "02") in k[1] and k[0] != "sarra_up"]


def test_an_unknown_depth_and_an_earlier_metrics_file(state, instance):
    old = {k: v for k, v in FIGURES.items() if k in OLD_KEYS}
    instance("subscribe", "old", 1, dict(old, by_status={"201": 3, "posted": 0}))
    got = samples(exposition([service.describe("subscribe", "old", 1)]))
    one = L(tool="subscribe", config="old", instance="01")
    assert got[("sarra_messages_downloaded_total", one)] == 3
    assert got[("sarra_bytes_transferred_total", one)] == 3000
    assert ("sarra_messages_received_total", one) not in got      # not known then
    assert not [k for k in got if k[0] in ("sarra_broker_queue_messages", "sarra_lag_seconds")]


def test_health_of_instances_from_their_files(state, instance):
    th = health.Thresholds(stuck_after=30, idle_after=5)
    instance("subscribe", "idle", 1, dict(FIGURES, broker_queue=0,
                                          last_activity=time.time() - 10))
    d = service.describe("subscribe", "idle", 1, th)
    assert d["health"].state == "idle" and d["broker_queue"] == 0
    line = service.status_line(d)
    assert line.startswith("subscribe/idle: running (1/1 instances), health idle (nothing "
                           "handled for 10s), 1.5 msgs/s, 0.00 MB/s, broker queue 0, "
                           "lag 0.5s (p95 1.2s), retry queue 2, memory "), line
    instance("subscribe", "hung", 1, dict(FIGURES, last_activity=time.time()), age=40)
    d = service.describe("subscribe", "hung", 1, th)
    assert d["health"].state == "stuck", d["health"]
    assert [n for n, _pid, _why in service.stuck_instances("subscribe", "hung", 1, th)] == [1]
    assert service.stuck_instances("subscribe", "idle", 1, th) == []


# -- the queue depth, from the management API --------------------------------------------

class _Api(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, object]] = {}
    seen: list = []

    def do_GET(self):  # noqa: N802
        self.seen.append((self.path, self.headers.get("Authorization")))
        code, body = self.answers.get(self.path, (404, {"error": "Object Not Found"}))
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Api.answers, _Api.seen = {}, []
    yield f"http://127.0.0.1:{server.server_port}/api", _Api
    server.shutdown()
    server.server_close()


def test_queue_depth_from_the_management_api(api):
    url, handler = api
    handler.answers = {"/api/queues/%2F/q_a.b": (200, {"messages": 42, "messages_ready": 40}),
                       "/api/queues/vh/q_new": (200, {"name": "q_new"}),
                       "/api/queues/%2F/q_no": (401, {"error": "not_authorised"})}
    depth = QueueDepth.of("amqp://alice:s%40cret@127.0.0.1/", "q_a.b", url)
    assert depth.read() == 42 and depth.why == "" and not depth.refused
    assert handler.seen[-1][1].startswith("Basic ")          # the broker user's password
    assert QueueDepth.of("amqp://alice:x@127.0.0.1/vh", "q_new", url).read() == 0
    refused = QueueDepth.of("amqp://bob:x@127.0.0.1/", "q_no", url)
    assert refused.read() is None and refused.refused and "401" in refused.why
    missing = QueueDepth.of("amqp://bob:x@127.0.0.1/", "q_gone", url)
    assert missing.read() is None and not missing.refused and "404" in missing.why
    closed = QueueDepth.of("amqp://bob:x@127.0.0.1/", "q", "http://127.0.0.1:9/api")
    assert closed.read() is None and "management API" in closed.why
    assert QueueDepth.of("memory://space/", "q") is None
    assert default_api_url("amqps://u@broker.example.com:5671/") == \
        "https://broker.example.com:15671/api"


def test_queue_watch_figures_and_trend():
    watch = QueueWatch(reader=None)
    assert watch.figures()["broker_queue"] is None
    now = time.time()
    for i in range(7):
        watch.samples.append((now - 60 + 10 * i, 100 + 10 * i))
    watch.known = (now, 160)
    f = watch.figures()
    assert f["broker_queue"] == 160 and f["broker_queue_trend"] == pytest.approx(1.0, abs=0.05)
    watch.known = (now, None)                      # the last read failed: unknown, not stale
    assert watch.figures()["broker_queue"] is None


# -- the commands ------------------------------------------------------------------------

def _conf(state, tool, name, text=""):
    folder = state / "conf" / tool
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.conf").write_text("broker amqp://guest@127.0.0.1/\n" + text)


def test_sarra_check_and_metrics_as_commands(state, instance, capsys):
    _conf(state, "subscribe", "up", "idle_after 5\nlag_warn 30\n")
    _conf(state, "subscribe", "down")
    instance("subscribe", "up", 1, dict(FIGURES, broker_queue=0, last_activity=time.time()))
    assert cli.operate(["check", "subscribe/up"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SARRA OK - 1 configuration running 1 | ") and out.count("\n") == 1
    assert "subscribe/up_lag=0.5s;30;;0" in out
    assert cli.operate(["check"]) == 2                # down: never started, stopped
    assert capsys.readouterr().out.startswith("SARRA CRITICAL - subscribe/down stopped")
    assert cli.operate(["check", "subscribe/none"]) == 3
    assert capsys.readouterr().out.startswith("SARRA UNKNOWN - ")
    assert cli.operate(["metrics"]) == 0
    got = samples(capsys.readouterr().out)
    assert got[("sarra_up", L(tool="subscribe", config="down", instance="01"))] == 0
    assert got[("sarra_health", L(tool="subscribe", config="up", state="running"))] == 1
    _conf(state, "subscribe", "bad", "prefech 3\n")
    assert cli.operate(["check"]) == 2
    assert "subscribe/bad: cannot be read" in capsys.readouterr().out
    assert cli.operate(["metrics", "subscribe/bad"]) == 2
    assert cli.operate(["status", "subscribe/up"]) == 0
    assert "health running" in capsys.readouterr().out


# an instance that reports, then (argv[2] "hang") hangs: its figures grow old
STUCK = ("import json, os, sys, time\n"
         "n = int(os.environ['SARRA_INSTANCE'])\n"
         "path = os.path.join(sys.argv[1], f'metrics.{n:02d}.json')\n"
         "json.dump({'pid': os.getpid(), 'time': time.time(), 'started': time.time()},"
         " open(path + '.tmp', 'w'))\nos.replace(path + '.tmp', path)\n"
         "time.sleep(0.3)\n"
         "if sys.argv[2] == 'hang':\n"
         "    json.dump({'pid': os.getpid(), 'time': time.time() - 1000, 'started': 0},"
         " open(path + '.tmp', 'w'))\n    os.replace(path + '.tmp', path)\n"
         "time.sleep(60)")


def test_sanity_restarts_a_stuck_instance_and_counts_it(state, monkeypatch, caplog):
    folder = service.paths.state_path("subscribe", "obs")
    ages = iter(["hang", "fine", "fine"])     # the first one hangs
    monkeypatch.setattr(service, "instance_argv", lambda tool, config_arg: [
        sys.executable, "-c", STUCK, folder, next(ages), "sarra.cli", tool, "foreground",
        config_arg])
    th = health.Thresholds(stuck_after=300)
    first = service.launch("subscribe", "obs", "obs", 1, [])
    try:
        assert service.wait_started(first, timeout=20) == 0
        deadline = time.monotonic() + 10
        while not service.stuck_instances("subscribe", "obs", 1, th):
            assert time.monotonic() < deadline, "never stuck"
            time.sleep(0.05)
        again = service.relaunch("subscribe", "obs", "obs", 1, th)
        assert [i.n for i in again] == [1]
        assert first[0].proc.wait(10) is not None              # ended
        assert "instance 1 (pid" in caplog.text and "is stuck (no figures written" in caplog.text
        assert service.wait_started(again, timeout=20) == 0
        assert service.restarts("subscribe", "obs") == {"stuck": 1}
        assert service.relaunch("subscribe", "obs", "obs", 1, th) == []   # fine now
        os.kill(again[0].proc.pid, 9)
        again[0].proc.wait(10)
        third = service.relaunch("subscribe", "obs", "obs", 1, th)
        assert [i.n for i in third] == [1]
        assert service.restarts("subscribe", "obs") == {"stuck": 1, "dead": 1}
        again += third
    finally:
        for inst in first + again:
            if inst.proc.poll() is None:
                inst.proc.kill()
            inst.proc.wait(10)


def test_every_metric_has_its_line_in_the_man_page(state, instance):
    """man/sarra.1, METRICS: one paragraph per metric, each one the exposition has."""
    import re
    instance("subscribe", "all", 1, dict(FIGURES, last_activity=time.time()))
    service._count_restarts("subscribe", "all", "dead", 2)
    text = exposition([service.describe("subscribe", "all", 2)])
    made = {fam.name + ("_total" if fam.type == "counter" else "")
            for fam in text_string_to_metric_families(text)}
    page = (Path(__file__).resolve().parents[2] / "man" / "sarra.1").read_text()
    section = re.search(r"^\.SH METRICS\n(.*?)^\.SH ", page, re.M | re.S).group(1)
    documented = set(re.findall(r"^\.TP\n\.B (sarra_\w+)$", section, re.M))
    assert made == documented
