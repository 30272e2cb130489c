"""The wire reference is the project's own: doc/protocol.md.

No file of the repository cites the specification that used to live
outside it (in a sibling ``shared`` directory: its protocol and design
documents), and every citation of a section of doc/protocol.md
("doc/protocol.md §3.2", also "doc/protocol.md §2, §5") names a section
that exists, as do the cross-references inside doc/protocol.md itself.
Pure file reads over what git tracks.
"""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_DOC = ROOT / "doc" / "protocol.md"
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()
# spelled in pieces, so that this file does not name them itself
OUTSIDE = ("../" + "shared", "/work/" + "shared", "PROTOCOL" + ".md", "DESIGN" + ".md")

HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? \S", re.M)
SECTION = r"§(\d+(?:\.\d+)*)"
# a section of another document ("doc/user-guide.md §11")
OTHER_DOC = re.compile(r"(?<![\w/.-])(?!doc/protocol\.md)[\w/.-]+\.md`?[ \t]+§[\d.]+"
                       r"(?:(?:,[ \t]*|[ \t]+and[ \t]+)§[\d.]+)*")
# "doc/protocol.md §2.3", "doc/protocol.md §2, §5", "doc/protocol.md §6.3 and §6.4";
# the name and the first § may be split by a line break (and a comment mark)
CITATION = re.compile(r"doc/protocol\.md(?:[ \t]+|[ \t]*\n[ \t]*(?:#+[ \t]?)?)"
                      r"(§[\d.]+(?:(?:,[ \t]*|[ \t]+and[ \t]+)§[\d.]+)*)")


def tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True,
                             capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.decode().split("\0") if p]


def texts():
    """(path, text) of every tracked text file."""
    for rel in tracked():
        path = ROOT / rel
        if not path.is_file() or path.is_symlink():
            continue
        try:
            yield rel, path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue          # binary


def sections() -> set[str]:
    return set(HEADING.findall(PROTOCOL_DOC.read_text(encoding="utf-8")))


def test_the_protocol_doc_has_numbered_sections():
    found = sections()
    assert {"1", "2", "2.2", "3", "4", "5", "6", "9", "12"} <= found
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    numbers = HEADING.findall(text)
    assert len(numbers) == len(set(numbers)), "a section number is used twice"


def test_nothing_cites_the_outside_specification():
    found = []
    for rel, text in texts():
        if rel == THIS:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for word in OUTSIDE:
                if word in line:
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert found == [], "cite doc/protocol.md (or another doc/ file) instead:\n" + \
        "\n".join(found)


def test_every_citation_of_the_protocol_doc_names_a_section():
    known = sections()
    cited, missing = 0, []
    for rel, text in texts():
        for m in CITATION.finditer(text):
            for number in re.findall(SECTION, m.group(1)):
                cited += 1
                if number not in known:
                    line = text.count("\n", 0, m.start()) + 1
                    missing.append(f"{rel}:{line}: §{number}")
    assert missing == [], "no such section in doc/protocol.md:\n" + "\n".join(missing)
    assert cited > 20


def test_the_protocol_docs_own_references_name_sections():
    known = sections()
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    body = OTHER_DOC.sub("", HEADING.sub("", text))
    missing = sorted({n for n in re.findall(SECTION, body) if n not in known})
    assert missing == []
