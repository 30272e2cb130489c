"""``include URL``, against a private nginx (http, which needs include_http
on; without it the include is refused): the fragment's values apply and
``sarra show`` names ``include URL:LINE``; it is cached in the state
directory, fetched again by a run (not by ``status``), its cached copy used
with a warning when the server fails, an error naming the URL when nothing
is cached; a running instance's housekeeping fetches it again and says
that a restart applies the change; a fragment may not include, declare,
name hooks or read environment variables."""
from __future__ import annotations

import logging
import os

import pytest

from sarra import cli
from sarra.components import flow_for
from sarra.config import load_config
from sarra.config.remote import cache_path
from sarra.errors import ConfigError


@pytest.fixture
def served(nginx, tmp_path, sarra_home):
    web = tmp_path / "web"
    web.mkdir()
    (web / "common.inc").write_text("prefetch 7\nexpire 2h\n")
    server = nginx(web, workers=1)
    return web, server.url.rstrip("/") + "/common.inc"


def _config(sarra_home, url: str, allow: bool = True, name: str = "inc") -> None:
    sarra_home.write_config("subscribe", name, (
        "broker memory://include-test/\nexchange xpublic\n"
        + ("include_http on\n" if allow else "")
        + f"include {url}\ndirectory /tmp\naccept .*\n"))


def test_http_needs_include_http_and_the_fragment_applies(served, sarra_home, capsys):
    web, url = served
    _config(sarra_home, url, allow=False)
    with pytest.raises(ConfigError) as err:
        load_config("subscribe", "inc", refresh=True)
    assert "needs include_http on; use https" in str(err.value) and err.value.line == 3
    assert not os.path.exists(cache_path(url))                     # nothing was fetched
    cfg = load_config("subscribe", "inc", [("include_http", "on")], refresh=True)
    assert cfg.prefetch == 7                                       # the command line allows it
    _config(sarra_home, url)
    cfg = load_config("subscribe", "inc", refresh=True)
    assert (cfg.prefetch, cfg.expire) == (7, 7200.0) and cfg.notes == []
    assert open(cache_path(url)).read() == "prefetch 7\nexpire 2h\n"
    assert cli.operate(["show", "subscribe/inc"]) == 0
    out = capsys.readouterr().out
    assert f"# include {url}:1" in [line.split("  ")[-1].strip() for line in out.splitlines()
                                    if line.startswith("prefetch ")]


def test_cached_copy_refresh_and_failures(served, sarra_home):
    web, url = served
    _config(sarra_home, url)
    assert load_config("subscribe", "inc", refresh=True).prefetch == 7
    (web / "common.inc").write_text("prefetch 9\n")
    assert load_config("subscribe", "inc").prefetch == 7            # status: the cached copy
    assert load_config("subscribe", "inc", refresh=True).prefetch == 9   # a run fetches it
    (web / "common.inc").unlink()                                   # the server fails (404)
    cfg = load_config("subscribe", "inc", refresh=True)
    assert cfg.prefetch == 9
    assert len(cfg.notes) == 1 and f"include {url}: HTTP 404 Not Found: using the copy " \
        "cached " in cfg.notes[0]
    os.unlink(cache_path(url))
    with pytest.raises(ConfigError) as err:
        load_config("subscribe", "inc", refresh=True)
    assert f"cannot include {url}: HTTP 404 Not Found (and no copy of it is cached" in \
        str(err.value) and err.value.option == "include"


def test_a_running_instance_fetches_it_again_and_tells_of_a_change(served, sarra_home,
                                                                   caplog):
    web, url = served
    _config(sarra_home, url)
    flow = flow_for("subscribe", load_config("subscribe", "inc", refresh=True))
    try:
        with caplog.at_level(logging.WARNING):
            flow.housekeeper.refresh_includes()
            assert caplog.records == []                              # the same text
            (web / "common.inc").write_text("prefetch 11\n")
            flow.housekeeper.refresh_includes()
            flow.housekeeper.refresh_includes()                      # told once
        said = [r.getMessage() for r in caplog.records]
        assert said == [f"include {url} changed since this instance started: its new text "
                        "is cached, a restart applies it (sarra restart subscribe/inc)"]
        assert load_config("subscribe", "inc").prefetch == 11        # the next start's
    finally:
        flow.close()


@pytest.mark.parametrize("line,what", [
    ("include /etc/hostname", "may not include files"),
    ("on_file exec /bin/true", "name hooks"),
    ("callback log", "name hooks"),
    ("declare env X=1", "declare variables"),
    ("directory ${HOME}/x", "${HOME}: a fragment included from a URL reads no environment"),
])
def test_a_fragment_cannot_pull_anything_from_here(served, sarra_home, line, what):
    web, url = served
    (web / "common.inc").write_text(f"prefetch 3\n{line}\n")
    _config(sarra_home, url)
    with pytest.raises(ConfigError) as err:
        load_config("subscribe", "inc", refresh=True)
    assert what in str(err.value)
    assert err.value.file == url and err.value.line == 2


def test_a_redirect_does_not_lead_from_https_to_http(nginx, tmp_path, sarra_home):
    """Redirects are followed, but to http only when http is allowed: an https
    include cannot be downgraded by its server (or by someone on the way)."""
    from sarra.config.remote import FetchError, fetch
    web = tmp_path / "web"
    web.mkdir()
    (web / "common.inc").write_text("prefetch 4\n")
    server = nginx(web, workers=1, extra="location = /moved { return 301 /common.inc; }")
    moved = server.url.rstrip("/") + "/moved"
    assert fetch(moved, allow_http=True) == "prefetch 4\n"
    with pytest.raises(FetchError, match=r"redirected to http://.*/common.inc, not https"):
        fetch(moved, allow_http=False)
