"""The web console (``sarra web``) in a real browser (Debian's headless
Chromium through selenium), over real flows: a dd_subscribe started with
``sarra start`` downloads from a private nginx through RabbitMQ; the page
shows it running with a rate, then failing once its nginx is stopped, its
last hour plotted, its deliveries and failures listed; /metrics counts
what was moved; dd_log's ledger answers where each file went (dd_log
--file, and the page's look-up). The builder writes a configuration that
dd_subscribe then runs, and refuses hostile submissions. A small switch
(dd_sara and its log router) shows its source's posts and the deliveries
reported back. Who may use the
console: loopback, or basic auth from credentials.conf; a --listen that
cannot bind exits 2."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families
from selenium.webdriver.common.by import By

from tests.helpers import compare_trees, run_tool, start_tool, tool_command, tool_env, wait_for
from tests.integration.flowkit import (BROKER, assert_logs_clean, declare, dd_post,
                                       delete_queues, exchanges, qname, sub_config, taps,
                                       wait_same_tree)

__all__ = ["taps"]


def sarra(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(tool_command("sarra", *args), capture_output=True, text=True,
                          timeout=timeout, env=tool_env(), stdin=subprocess.DEVNULL)


def start_web(log: Path, *args: str) -> str:
    """``sarra web --listen 127.0.0.1:0 ARGS`` in the background: its URL."""
    proc = start_tool("sarra", "web", "--listen", "127.0.0.1:0", *args, log=log)
    found = wait_for(lambda: proc.poll() is None and re.search(
        r"listening on (http://\S+/)", log.read_text()) or proc.poll() is not None,
        timeout=20, what="sarra web to listen")
    assert proc.poll() is None, log.read_text()
    return found.group(1)


def http(url: str, data: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of a request, errors included."""
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def row_text(browser, name: str) -> dict[str, str]:
    """The cells of the configuration's row, by their class (read at once:
    the page redraws its tables at each update)."""
    return browser.execute_script("""
        const out = {};
        for (const td of document.querySelectorAll('tr[data-name="' + arguments[0] + '"] td'))
            out[td.className.split(' ')[0]] = td.textContent;
        return out;""", name)


def wait_row(browser, name: str, predicate, what: str, timeout: float = 40) -> dict:
    def ready():
        row = row_text(browser, name)
        return row if row and predicate(row) else None
    try:
        return wait_for(ready, timeout=timeout, interval=0.5, what=what)
    except AssertionError:
        raise AssertionError(f"{what}; the row shows {row_text(browser, name)}") from None


def plotted_pixels(browser, name: str) -> int:
    """Pixels of the rate's colour in the configuration's canvas."""
    return browser.execute_script("""
        const c = document.querySelector('tr[data-name="' + arguments[0] + '"] canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 100 && d[i + 2] > 180) n++;
        return n;""", name)


def table_rows(browser, table: str) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')]"
        ".map(r => r.textContent)", table)


def health_class(browser, name: str) -> str:
    return browser.execute_script(
        "return document.querySelector('tr[data-name=\"' + arguments[0] + '\"] td.health')"
        ".className", name)


def test_console_shows_a_flow_running_then_failing_and_where_files_went(
        sarra_home, unique, taps, nginx, tmp_path, browser):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    good = [src / f"f{i}.dat" for i in range(3)]
    late = [src / f"g{i}.dat" for i in range(3)]
    for i, p in enumerate(good + late):
        p.write_bytes(os.urandom(700 + 100 * i))
    server = nginx(src, workers=1)
    ex, xr, name, logname = f"xwb_{unique}", f"xwbr_{unique}", f"wb_{unique}", f"wl_{unique}"
    taps(xr)                                       # the report exchange exists
    sub_config(sarra_home, name, ex, dst, xr, extra=(
        "attempts 1\nretry_delay 1\nidle_after 30\nlag_warn 30\nstuck_after 60\n"
        "failing_ratio 0.2\nheartbeat 5\n"))
    sarra_home.write_config("log", logname, f"broker {BROKER}\nexchange {xr}\nexpire 10m\n")
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    run_tool("log", logname)                       # dd_log's first run subscribes
    sel = f"subscribe/{name}"
    started = sarra("start", sel)
    assert started.returncode == 0, started.stdout + started.stderr
    url = start_web(tmp_path / "web.log")
    browser.get(url)
    try:
        dd_post(ex, server.url, src, *good)
        wait_for(lambda: all((dst / p.name).exists() for p in good), timeout=30,
                 what="the first three files")
        row = wait_row(browser, sel, lambda r: r["health"].startswith("running")
                       and float(r["rate"]) > 0, "the row running with a rate")
        assert row["state"] == "running" and row["instances"] == "1/1"
        wait_for(lambda: plotted_pixels(browser, sel) > 0, timeout=10,
                 what="the last hour plotted")
        wait_for(lambda: len(table_rows(browser, "deliveries")) == 3, timeout=10,
                 what="three deliveries listed")
        assert all(sel in r and "201" in r for r in table_rows(browser, "deliveries"))

        # /metrics, served by the console, counts what was moved
        status, _h, body = http(url + "metrics")
        assert status == 200
        got = {(s.name, s.labels.get("instance")): s.value
               for fam in text_string_to_metric_families(body.decode())
               for s in fam.samples if s.labels.get("config") == name}
        assert got[("sarra_messages_downloaded_total", "01")] == 3
        assert got[("sarra_bytes_transferred_total", "01")] == \
            sum(p.stat().st_size for p in good)

        server.stop()                              # the data's server goes away
        dd_post(ex, server.url, src, *late)
        row = wait_row(browser, sel, lambda r: r["health"].split()[0] in ("failing", "stuck"),
                       "the row failing once nginx is stopped", timeout=45)
        assert health_class(browser, sel) in ("health health-failing", "health health-stuck")
        wait_for(lambda: any("g0.dat" in r for r in table_rows(browser, "failures")),
                 timeout=15, what="the failure of g0.dat listed")
        assert int(row["retry"]) >= 1
        assert plotted_pixels(browser, sel) > 0

        # where did my file go: dd_log --file reads what waits, then its ledger answers
        ans = run_tool("log", logname, "--file", "f1.dat")
        lines = [ln for ln in ans.stdout.splitlines()[1:] if ln.strip()]
        assert len(lines) == 1 and " 201 " in lines[0] and "guest@" in lines[0] \
            and "f1.dat" in lines[0], ans.stdout
        ans = run_tool("log", logname, "--file", "g*", "--format", "json")
        rows = [json.loads(ln) for ln in ans.stdout.splitlines()]
        assert {r["relpath"] for r in rows} == {p.name for p in late}
        assert {r["code"] for r in rows} == {499} and all(r["user"] == "guest" for r in rows)
        assert run_tool("log", logname, "--file", "nothing*", check=False).returncode == 1

        # the console's look-up shows the same
        field = browser.find_element(By.ID, "l-file")
        field.clear()
        field.send_keys("g*")
        browser.find_element(By.ID, "l-go").click()
        wait_for(lambda: len(table_rows(browser, "ledger-rows")) == 3, timeout=10,
                 what="the ledger's three rows about g*")
        assert all("499" in r and f"log/{logname}" in r
                   for r in table_rows(browser, "ledger-rows"))

        shot = tmp_path / "console.png"
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(max(height + 120, 1000), 4000))
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(shot))
        browser.set_window_size(1280, 1000)
        print(f"screenshot of the console: {shot}")
        assert shot.stat().st_size > 10000
        assert "guest:guest" not in browser.page_source
    finally:
        sarra("stop", sel)
    assert_logs_clean(tmp_path / "web.log")


def _token(url: str) -> str:
    _s, _h, body = http(url)
    return re.search(rb'name="sarra-token" content="([^"]+)"', body).group(1).decode()


def _post(url: str, form: dict, token: str, write: bool = False, **headers) -> tuple:
    body = json.dumps({"form": form, "write": write}).encode()
    hdrs = {"Content-Type": "application/json", "X-Sarra-Token": token, **headers}
    status, _h, answer = http(url + "api/build", body, hdrs)
    return status, json.loads(answer or b"{}")


def _fill(browser, fields: dict) -> None:
    for key, value in fields.items():
        box = browser.find_element(By.ID, f"b-{key}")
        if box.get_attribute("type") == "checkbox":
            if box.is_selected() != value:
                box.click()
        else:
            box.clear()
            box.send_keys(value)


def test_builder_writes_a_configuration_dd_subscribe_runs_and_refuses_hostile_forms(
        sarra_home, unique, taps, nginx, tmp_path, browser, procs):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a" / "b").mkdir(parents=True)
    for i in range(3):
        (src / "a" / "b" / f"h{i}.txt").write_bytes(os.urandom(500 + i))
    server = nginx(src, workers=1)
    ex, name = f"xwc_{unique}", f"built_{unique}"
    url = start_web(tmp_path / "web.log")
    conf_dir = sarra_home.config_dir

    def configs() -> list[str]:
        return sorted(str(p.relative_to(conf_dir)) for p in conf_dir.rglob("*") if p.is_file())
    before = configs()

    browser.get(url)
    form = {"name": "../evil", "broker": BROKER, "exchange": ex, "subtopic": "#",
            "accept": ".*", "directory": str(dst), "mirror": True}
    _fill(browser, form)
    wait_for(lambda: browser.find_element(By.ID, "e-name").text, timeout=10,
             what="the error beside the name")
    browser.find_element(By.ID, "b-write").click()
    wait_for(lambda: "not written" in browser.find_element(By.ID, "b-result").text,
             timeout=10, what="'not written'")
    _fill(browser, {"name": name})
    wait_for(lambda: not browser.find_element(By.ID, "e-name").text and
             f"directory {dst}" in browser.find_element(By.ID, "b-text").text,
             timeout=10, what="the text built, no error")
    shown = browser.find_element(By.ID, "b-text").text
    browser.find_element(By.ID, "b-write").click()
    wait_for(lambda: "written:" in browser.find_element(By.ID, "b-result").text,
             timeout=10, what="'written'")
    path = conf_dir / "subscribe" / f"{name}.conf"
    assert path.read_text().strip() == shown.strip()
    assert configs() == sorted(before + [f"subscribe/{name}.conf"])
    assert "mirror on" in shown and "accept .*" in shown

    # hostile submissions: clear errors, nothing written
    token = _token(url)
    hostile = dict(form, name=f"x_{unique}")
    assert _post(url, hostile, "forged", write=True)[0] == 403
    assert _post(url, hostile, token, write=True, Origin="http://evil.example")[0] == 403
    status, _h, _b = http(url + "api/build", b"{}", {"Content-Type": "text/plain",
                                                      "X-Sarra-Token": token})
    assert status == 403
    status, _h, _b = http(url + "api/build", b"x" * (70 * 1024),
                          {"Content-Type": "application/json", "X-Sarra-Token": token})
    assert status == 413
    status, _h, _b = http(url + "api/status",
                          headers={"Host": f"evil.example:{urlsplit(url).port}"})
    assert status == 421
    for field, value, why in (("exchange", f"{ex}\naccept .*", "line break"),
                              ("name", "sub/../../x", "a name of letters"),
                              ("broker", "amqp://guest:guest@127.0.0.1/", "credentials.conf"),
                              ("accept", "(unclosed", "regular expression"),
                              ("name", name, "exists already")):
        status, answer = _post(url, dict(form, **{"name": f"y_{unique}", field: value}),
                               token, write=True)
        assert status == 200 and answer["written"] is None, (field, answer)
        assert why in answer["errors"][field], (field, answer["errors"])
        assert "guest:guest" not in json.dumps(answer)
    assert configs() == sorted(before + [f"subscribe/{name}.conf"])
    assert path.read_text().strip() == shown.strip()

    # the configuration written runs: a real dd_subscribe downloads with it
    declare(name)
    taps.queues.append(qname(sarra_home, name))
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")
    dd_post(ex, server.url, src, src / "a")
    wait_same_tree(src, dst, timeout=30, proc=proc)


def test_who_may_use_the_console_and_listen_errors(sarra_home, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        res = sarra("web", "--listen", f"127.0.0.1:{port}")
        assert res.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in res.stderr \
            and "in use" in res.stderr, res.stderr
    finally:
        busy.close()
    for args, why in ((["--listen", "nonsense"], "is not HOST:PORT"),
                      (["--listen", f"0.0.0.0:{port}"], "needs --remote"),
                      (["--listen", f"0.0.0.0:{port}", "--remote"], "needs a login"),
                      (["--port", "1"], "unexpected '--port'")):
        res = sarra("web", *args)
        assert res.returncode == 2 and why in res.stderr, (args, res.stderr)

    # a login in credentials.conf: every request needs it (here on loopback too)
    sarra_home.add_credentials(f"http://op:s3cr%40t@127.0.0.1:{port}/")
    log = tmp_path / "auth.log"
    proc = start_tool("sarra", "web", "--listen", f"127.0.0.1:{port}", log=log)
    wait_for(lambda: "listening on" in log.read_text() or proc.poll() is not None,
             timeout=20, what="sarra web to listen")
    assert proc.poll() is None and "login: op" in log.read_text(), log.read_text()
    base = f"http://127.0.0.1:{port}/"
    status, headers, _b = http(base)
    assert status == 401 and "Basic" in headers["WWW-Authenticate"]
    wrong = "Basic " + b64encode(b"op:guess").decode()
    assert http(base + "api/status", headers={"Authorization": wrong})[0] == 401
    right = "Basic " + b64encode(b"op:s3cr@t").decode()
    status, _h, body = http(base, headers={"Authorization": right})
    assert status == 200 and b"s3cr" not in body
    status, _h, body = http(base + "api/status", headers={"Authorization": right})
    assert status == 200 and json.loads(body)["configurations"] == []
    proc.terminate()
    assert proc.wait(10) == 0
    assert "s3cr" not in log.read_text()


def test_console_shows_the_switchs_sources_posts_and_deliveries(sarra_home, unique, nginx,
                                                                  tmp_path, browser):
    """A small switch: a dd_sara takes what guest posts on its own user
    exchange (xs_guest_<suffix>: labelled guest), its log messages go to the
    log router (dd_shovel), both started by ``sarra start``; the console
    lists the source guest with its posts and the deliveries reported."""
    src, data = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    data.mkdir()
    for i in range(4):
        (src / f"s{i}.dat").write_bytes(os.urandom(900 + i))
    source_web, switch_web = nginx(src, workers=1), nginx(data, workers=1)
    xs, xin = f"xs_guest_{unique}", f"xwin_{unique}"
    xpublic, xreport = f"xwpub_{unique}", f"xwrep_{unique}"
    exchanges(xs, xin, xpublic, xreport)
    sara, router = f"sw_{unique}", f"lr_{unique}"
    sarra_home.write_config("sara", sara, (
        f"broker {BROKER}\nexchange {xs}\nsource_from_exchange on\ncluster lab1\n"
        f"directory {data}/${{SOURCE}}\npost_broker {BROKER}\npost_exchange {xpublic}\n"
        f"post_base_dir {data}\npost_base_url {switch_web.url}\n"
        f"report_exchange {xin}\nexpire 10m\n"))
    sarra_home.write_config("shovel", router, (
        f"broker {BROKER}\nexchange {xin}\ntopic_prefix v02.report\n"
        f"source_from_exchange on\npost_exchange {xreport}\nexpire 10m\n"))
    try:
        for tool, name in (("sara", sara), ("shovel", router)):
            run_tool(tool, "declare", name, timeout=60)
        started = sarra("start", f"sara/{sara}", f"shovel/{router}")
        assert started.returncode == 0, started.stdout + started.stderr
        url = start_web(tmp_path / "web.log")
        browser.get(url)
        res = run_tool("post", "--post_broker", BROKER, "--post_exchange", xs,
                       "--post_base_url", source_web.url, "--post_base_dir", src, src,
                       timeout=60)
        assert "posted 4 of 4 files" in res.stdout
        wait_for(lambda: compare_trees(src, data / "guest") == [], timeout=30,
                 what="the switch's copy of guest's files")

        def guest_row():
            return browser.execute_script("""
                const r = document.querySelector('#sources tr[data-source="guest"]');
                return r && !document.getElementById('switch').hidden ?
                    [...r.children].map(td => td.textContent) : null;""")
        row = wait_for(lambda: (r := guest_row()) and r[2] == "4" and r[4] == "4" and
                       float(r[1]) > 0 and float(r[3]) > 0 and r, timeout=30,
                       what=f"guest with 4 posts and 4 deliveries (shown: {guest_row()})")
        assert row[0] == "guest" and row[6] == "0"
    finally:
        sarra("stop", f"sara/{sara}", f"shovel/{router}")
        delete_queues(*(f.read_text().strip() for f in sarra_home.state_dir.rglob("*.qname")))
        exchanges(xs, xin, xpublic, xreport, delete=True)
