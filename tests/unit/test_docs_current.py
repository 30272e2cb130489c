"""What README.md and the admin guide say is not implemented yet matches the
code, so that neither can go stale again.

The options both name as accepted but ignored are exactly the option
table's ``NOT_YET`` (what draws the "not implemented yet" warning); the
README's paragraph points to the admin guide's section and names none of the
switch description's keys (``links:`` was listed there long after it was
implemented) and no vhost limit (``dd_audit`` handles any vhost).
"""
import re
from pathlib import Path

from sarra.config import OPTIONS
from sarra.config.options import NOT_YET
from sarra.switch.description import KEYS, LINK_KEYS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ADMIN_GUIDE = ROOT / "doc" / "admin-guide.md"
SECTION = "Not implemented yet"


def _readme_not_yet() -> str:
    paragraphs = re.split(r"\n\s*\n", README.read_text(encoding="utf-8"))
    found = [p for p in paragraphs if p.startswith("Not yet")]
    assert len(found) == 1, "README.md has no single 'Not yet' paragraph"
    return found[0]


def _guide_not_yet() -> list[str]:
    """The bullets of the admin guide's '## Not implemented yet', each on one line."""
    text = ADMIN_GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"^## {SECTION}\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    assert match, f"doc/admin-guide.md has no section '## {SECTION}'"
    bullets = re.split(r"^- ", match.group(1), flags=re.M)[1:]
    assert bullets, f"'## {SECTION}' lists nothing"
    return [" ".join(b.split()) for b in bullets]


def _options_named(text: str) -> set[str]:
    return {w for w in re.findall(r"`([a-z_]+)`", text) if w in OPTIONS}


def test_readme_lists_the_options_not_implemented_yet():
    assert _options_named(_readme_not_yet()) == set(NOT_YET)


def test_admin_guide_lists_the_options_not_implemented_yet():
    ignored = [b for b in _guide_not_yet() if "no effect" in b]
    if not NOT_YET:         # every option acts: no bullet says otherwise
        assert ignored == []
        return
    assert len(ignored) == 1, "one bullet lists the options accepted without effect"
    assert _options_named(ignored[0]) == set(NOT_YET)
    # the warning quoted there is the one the tools log (sarra/cli.py)
    cli = (ROOT / "sarra" / "cli.py").read_text(encoding="utf-8")
    assert "is not implemented yet: ignored" in ignored[0]
    assert "option '%s' (%s) is not implemented yet: ignored" in cli


def test_readme_points_to_the_admin_guide_and_says_what_it_says():
    readme = " ".join(_readme_not_yet().split())
    assert f'"{SECTION}"' in readme
    bullets = _guide_not_yet()
    assert len(bullets) == 3, "a new admin-guide bullet: say it in README's 'Not yet' too"
    for topic in ("neighbour's broker", "whole files", "v02 only"):
        assert topic in readme, f"README's 'Not yet' says nothing of {topic!r}"
        assert any(topic in b for b in bullets), f"the admin guide says nothing of {topic!r}"


def test_readme_claims_nothing_that_is_implemented():
    readme = _readme_not_yet()
    named_keys = set(re.findall(r"`([a-z_]+):`", readme))
    assert not named_keys & set(KEYS + LINK_KEYS), \
        "the switch description's keys are implemented (sarra/switch/description.py)"
    assert "vhost" not in readme and "virtual host" not in readme
