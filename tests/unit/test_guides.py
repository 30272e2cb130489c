"""The guides cannot go stale: every sarra command in their shell blocks
parses (tool, action, options and their values), and every configuration
block uses options that exist for some tool, in every guide (hooks.md,
sender.md and switch.md included).

These checks hold the text to the code without running anything. The
guides' commands are run, block by block in order, against real servers,
by tests/guides: test_admin_guide.py (doc/admin-guide.md), test_user_guide.py
(doc/user-guide.md and README.md), with the runner in tests/guides/runner.py
(the ``<!-- guide: ... -->`` comments in the markdown place files, machines
and skips); tests/guides/test_coverage.py checks that every shell block of
those three is run or marked skip. hooks.md's Python hook is loaded and
run by tests/unit/test_hooks_doc.py."""
import re
import shlex
from pathlib import Path

import pytest

from sarra.cli import OPERATOR_ACTIONS
from sarra.config.loader import parse_argv
from sarra.config.options import ALIAS_ADJUST, SPECIAL_KEYWORDS, lookup, parse_value
from sarra.errors import ConfigError
from sarra.switch.command import _parser as audit_parser

DOC = Path(__file__).resolve().parents[2] / "doc"
GUIDES = sorted(DOC.glob("*.md")) + [DOC.parent / "README.md"]
TOOLS = {f"dd_{t}": t for t in ("post", "watch", "subscribe", "sara", "sender", "shovel",
                                 "winnow", "log")}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(kind: str):
    for path in GUIDES:
        for m in FENCE.finditer(path.read_text(encoding="utf-8")):
            lang, text = m.group(1), m.group(2)
            if (kind == "sh") == (lang in ("sh", "bash", "console", "shell")):
                yield path.name, text


def commands():
    """(guide, command line) of every sarra command in the shell blocks."""
    for name, text in blocks("sh"):
        text = text.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip().lstrip("$ ").split("  #")[0].split(" # ")[0]
            if "..." in line or "<" in line:
                continue             # a placeholder, not a command
            for part in re.split(r"\s*(?:&&|\|\||;)\s*", line):
                words = part.split()
                if words and words[0] in (*TOOLS, "sarra", "dd_audit"):
                    yield name, part


def config_lines():
    """(guide, line) of blocks that look like configurations."""
    for name, text in blocks("conf"):
        lines = [ln.strip() for ln in text.splitlines()
                 if ln.strip() and not ln.strip().startswith("#")]
        if not lines or any(":" in ln.split()[0] for ln in lines):
            continue                 # YAML, output, or a listing
        known = [ln for ln in lines if lookup(ln.split()[0]) or ln.split()[0]
                 in SPECIAL_KEYWORDS]
        if len(known) * 2 >= len(lines):
            for ln in lines:
                yield name, ln


def test_the_guides_have_commands_and_configurations():
    assert len(list(commands())) > 30
    assert len(list(config_lines())) > 30
    # the reference pages' command lines are checked too, not only the guides'
    assert {"sender.md", "switch.md", "README.md", "user-guide.md",
            "admin-guide.md"} <= {guide for guide, _ in blocks("sh")}
    assert {"sender.md", "README.md", "user-guide.md",
            "admin-guide.md"} <= {guide for guide, _ in commands()}
    assert {"hooks.md", "sender.md"} <= {guide for guide, _ in config_lines()}


def test_command_lines_are_in_shell_blocks():
    """A command shown in a block tagged otherwise (or not at all) would be
    neither parsed here nor run by tests/guides: tag it ```sh."""
    shown = []
    for name, text in blocks("conf"):
        for line in text.splitlines():
            words = line.strip().lstrip("$ ").split()
            if words and words[0] in (*TOOLS, "sarra", "dd_audit", "rabbitmqctl",
                                      "rabbitmq-plugins", "systemctl", "sudo", "pip"):
                shown.append(f"{name}: {line.strip()}")
    assert shown == []


@pytest.mark.parametrize("guide,line", list(commands()))
def test_every_command_of_the_guides_parses(guide, line):
    argv = shlex.split(line)
    tool, args = argv[0], argv[1:]
    if tool == "sarra":
        assert args and args[0] in OPERATOR_ACTIONS, f"{guide}: {line}"
        return
    if tool == "dd_audit":
        audit_parser().parse_intermixed_args(args)
        return
    try:
        inv = parse_argv(TOOLS[tool], args)
    except ConfigError as exc:
        pytest.fail(f"{guide}: `{line}`: {exc}")
    for key, value in inv.overrides:
        found = lookup(key.replace("-", "_"))
        if found is None:
            assert key in SPECIAL_KEYWORDS, f"{guide}: `{line}`: no option {key}"
            continue
        option, adjust = found
        raw = adjust(value) if adjust else value
        try:
            parse_value(option, raw)
        except ValueError as exc:
            pytest.fail(f"{guide}: `{line}`: --{key} {value}: {exc}")
        assert option.applies_to(TOOLS[tool]) or key in ALIAS_ADJUST, \
            f"{guide}: `{line}`: --{key} is not an option of {tool}"


@pytest.mark.parametrize("guide,line", list(config_lines()))
def test_every_configuration_line_of_the_guides_is_an_option(guide, line):
    keyword, _, value = line.partition(" ")
    if keyword in SPECIAL_KEYWORDS:
        return
    found = lookup(keyword)
    assert found is not None, f"{guide}: unknown option in `{line}`"
    option, adjust = found
    value = value.strip() or None
    if value and ("${" in value or "<" in value or "..." in value):
        return                       # a variable or a placeholder
    try:
        parse_value(option, adjust(value) if adjust else value)
    except ValueError as exc:
        pytest.fail(f"{guide}: `{line}`: {exc}")
