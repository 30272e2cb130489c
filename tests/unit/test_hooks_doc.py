"""doc/hooks.md's examples as a user would take them: the Python hook of
"Writing a hook in Python" saved where its first line says, named in a
configuration by the line the page shows, loaded by the real loader and run
on messages; and the built-in filters' example lines, loaded the same way."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from sarra.config import load_config
from sarra.message import Message
from sarra.plugins import load_hooks

HOOKS_MD = Path(__file__).resolve().parents[2] / "doc" / "hooks.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(lang: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(HOOKS_MD.read_text(encoding="utf-8"))
            if m.group(1) == lang]


def _hook_lines() -> list[tuple[str, str]]:
    """(stage, spec) of every hook line of the page's configuration blocks."""
    lines = []
    for text in _blocks("conf"):
        for line in text.splitlines():
            stage, _, spec = line.strip().partition(" ")
            if stage in ("on_message", "on_part", "on_file", "on_post"):
                lines.append((stage, spec.strip()))
    return lines


@pytest.fixture
def my_site(tmp_path, monkeypatch, sarra_home):
    """The page's Python block, saved as the file its first line names, on
    the tool's Python path."""
    (code,) = _blocks("python")
    first = code.splitlines()[0]
    assert first.startswith("# "), first
    target = tmp_path / first[2:].strip()             # my_site/hooks.py
    target.parent.mkdir(parents=True)
    target.write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield target
    for name in [n for n in sys.modules if n == "my_site" or n.startswith("my_site.")]:
        del sys.modules[name]


def _message(relpath: str) -> Message:
    return Message(pubtime="20261125120003.117", base_url="http://switch.example.com/",
                   relpath=relpath, headers={"sum": "d,d41d8cd98f00b204e9800998ecf8427e",
                                             "parts": "1,0,1,0,0", "source": "alice"})


def test_the_python_hook_of_the_page_loads_and_filters_posts(my_site):
    shown = [spec for stage, spec in _hook_lines() if stage == "on_post"]
    assert shown == ["my_site.hooks:OnlyPublic"]      # the page's configuration line
    hooks = load_hooks(load_config("subscribe", None, [("on_post", shown[0])]))
    assert hooks.names("on_post") == shown
    assert hooks.run("on_post", _message("public/obs/a.csv")) is True
    assert hooks.run("on_post", _message("private/obs/a.csv")) is False
    assert hooks.run("on_message", _message("private/obs/a.csv")) is True   # not its stage

    # an argument of its line replaces the default prefix
    hooks = load_hooks(load_config("subscribe", None, [("on_post", f"{shown[0]} obs/")]))
    assert hooks.run("on_post", _message("obs/2026/a.csv")) is True
    assert hooks.run("on_post", _message("public/obs/a.csv")) is False


# The hook lines of the page that load without anything of the reader's
# (a command, a directory): the built-in filters. A comment after a value is
# part of the value (user-guide section 11): the page puts comments on lines
# of their own.
FILTERS = [(stage, spec) for stage, spec in _hook_lines()
           if shlex.split(spec)[0] in ("size", "age")]


@pytest.mark.parametrize("stage,spec", FILTERS)
def test_the_filter_lines_of_the_page_load(stage, spec, sarra_home):
    hooks = load_hooks(load_config("subscribe", None, [(stage, spec)]))
    assert hooks.names(stage) == [spec]


def test_the_page_shows_the_filters():
    assert len(FILTERS) >= 4, FILTERS
