"""Every command of the guides is run by a test, or says why not.

doc/admin-guide.md, doc/user-guide.md and README.md are read whole; each
```sh block (and each file a ``<!-- guide: file -->`` comment places) must be
inside one of the spans the tests of tests/guides run (their SPANS: the
start and stop headings they give parse_guide), or be marked
``<!-- guide: skip REASON -->``. A block added outside every span, a span
whose heading was renamed: this fails, naming the guide's line. No server
needed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.guides import test_admin_guide, test_user_guide
from tests.guides.runner import parse_guide
from tests.helpers import REPO_ROOT

SPANS: dict[Path, list[tuple[str | None, str | None]]] = {}
for module in (test_admin_guide, test_user_guide):
    for guide, spans in module.SPANS.items():
        SPANS.setdefault(guide, []).extend(spans)
GUIDES = [REPO_ROOT / "doc" / "admin-guide.md", REPO_ROOT / "doc" / "user-guide.md",
          REPO_ROOT / "README.md"]
_FENCE = re.compile(r"^```(\S*)\s*$", re.M)


def test_the_spans_are_those_of_the_guides():
    assert sorted(SPANS) == sorted(GUIDES)


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_each_span_begins_and_ends_at_a_heading_and_has_commands(guide):
    headings = [ln for ln in guide.read_text(encoding="utf-8").splitlines()
                if re.match(r"#{1,6} ", ln)]
    for start, stop in SPANS[guide]:
        for heading in (start, stop):
            assert heading is None or any(h.startswith(heading) for h in headings), \
                f"{guide.name}: no heading {heading!r}"
        assert any(st.kind == "sh" for st in parse_guide(guide, start, stop)), (start, stop)


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_command_of_the_guide_is_run_or_marked_skip(guide):
    run = {st.line for span in SPANS[guide] for st in parse_guide(guide, *span)
           if st.kind in ("sh", "file")}
    steps = parse_guide(guide)
    not_run = [f"{st.where()}: {st.text.splitlines()[0]}" for st in steps
               if st.kind in ("sh", "file") and st.line not in run]
    assert not_run == [], "neither in a span a test runs nor marked skip:\n" + "\n".join(not_run)
    # a shell block tagged otherwise would escape the runner (and this test)
    langs = {m.group(1) for m in _FENCE.finditer(guide.read_text(encoding="utf-8"))}
    assert not langs & {"bash", "shell", "console", "shell-session"}, langs


def test_what_is_skipped_says_why():
    skipped = [(guide.name, st.line, st.reason) for guide in GUIDES
               for st in parse_guide(guide) if st.kind == "skip"]
    assert all(len(reason.split()) >= 4 for _, _, reason in skipped), skipped
    # the admin guide's: one, and joining a cluster's machines (the test's
    # nodes are clustered by tools/localrabbit.start_cluster)
    assert [name for name, _, _ in skipped] == ["admin-guide.md", "admin-guide.md",
                                                 "README.md", "README.md"]
