"""ARCHITECTURE.md stays true: every file, folder and ``file.py:Name`` it
cites exists (the name defined in that file, read with ast), every
``Class.member`` it names is a member of a class defined in a file it
cites, and no module of sarra/ imports from a layer above its own in the
document's table of layers."""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "ARCHITECTURE.md"

SPAN = re.compile(r"`([^`\n]+)`")
PY_REF = re.compile(r"^(?P<file>[\w./-]*\w\.py)(?::(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))?$")
PATH_REF = re.compile(r"^[\w.-]+(?:/[\w.-]+)*/?$")
MEMBER_REF = re.compile(r"^(?P<cls>[A-Z]\w*)\.(?P<member>[A-Za-z_]\w*)$")
LAYER_ROW = re.compile(r"^\|\s*(\d+)\s*\|(.*)\|\s*$")


def spans() -> list[str]:
    assert DOC.is_file(), "ARCHITECTURE.md is missing (README.md's Layout points to it)"
    return SPAN.findall(DOC.read_text(encoding="utf-8"))


@functools.cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _targets(node: ast.AST) -> list[str]:
    """The plain names an assignment (or import) statement binds."""
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    return []


def top_level(module: ast.Module) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in module.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = node
        for n in _targets(node):
            names.setdefault(n, node)
    return names


def members(cls: ast.ClassDef) -> set[str]:
    """Methods, class attributes, and attributes a method sets on ``self``."""
    found: set[str] = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        found.update(_targets(node))
    for node in ast.walk(cls):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                        and t.value.id == "self"):
                    found.add(t.attr)
    return found


def defined(path: Path, dotted: str) -> bool:
    first, *rest = dotted.split(".")
    node = top_level(tree(path)).get(first)
    if node is None:
        return False
    if not rest:
        return True
    if not isinstance(node, ast.ClassDef) or len(rest) != 1:
        return False
    return rest[0] in members(node)


def py_files(name: str) -> list[Path]:
    """The file a reference names: a path from the repository's top, or a
    bare file name found under sarra/."""
    if "/" in name:
        p = REPO / name
        return [p] if p.is_file() else []
    return sorted((REPO / "sarra").rglob(name))


def py_refs() -> list[tuple[str, str | None]]:
    out = []
    for s in spans():
        m = PY_REF.match(s)
        if m:
            out.append((m["file"], m["name"]))
    return out


def test_the_document_cites_files_and_names():
    refs = py_refs()
    assert len(refs) > 40 and sum(1 for _f, n in refs if n) > 30


@pytest.mark.parametrize("ref", sorted({f"{f}:{n}" if n else f for f, n in py_refs()}))
def test_each_cited_python_file_and_name_exists(ref):
    file, _, name = ref.partition(":")
    found = py_files(file)
    assert found, f"ARCHITECTURE.md cites {file}, which does not exist"
    if name:
        assert any(defined(p, name) for p in found), \
            f"ARCHITECTURE.md cites {ref}: no {name} defined in {file}"


def test_each_cited_path_exists():
    missing = []
    for s in spans():
        if PY_REF.match(s) or "/" not in s.rstrip("/") or not PATH_REF.match(s):
            continue
        if not (REPO / s.rstrip("/")).exists():
            missing.append(s)
    assert not missing, f"ARCHITECTURE.md cites paths that do not exist: {missing}"


def test_each_class_member_named_belongs_to_a_cited_class():
    classes: dict[str, list[ast.ClassDef]] = {}
    for file in {f for f, _n in py_refs()}:
        for p in py_files(file):
            for node in tree(p).body:
                if isinstance(node, ast.ClassDef):
                    classes.setdefault(node.name, []).append(node)
    wrong = []
    for s in spans():
        m = MEMBER_REF.match(s)
        if m is None:
            continue
        if not any(m["member"] in members(c) for c in classes.get(m["cls"], [])):
            wrong.append(s)
    assert not wrong, f"ARCHITECTURE.md names members no cited class has: {wrong}"


# -- layers --------------------------------------------------------------------

def layers() -> dict[str, int]:
    """``sarra/x.py`` or ``sarra/x/`` -> its layer, from the document's table."""
    table: dict[str, int] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = LAYER_ROW.match(line)
        if m:
            for s in SPAN.findall(m[2]):
                table[s] = int(m[1])
    return table


def layer_of(path: str, table: dict[str, int]) -> int | None:
    for key, n in table.items():
        if path == key or (key.endswith("/") and path.startswith(key)):
            return n
    return None


def module_path(parts: list[str]) -> str | None:
    """``['sarra', 'flow', 'engine']`` -> ``sarra/flow/engine.py`` (or the
    package's ``__init__.py``); None when there is no such module."""
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return "/".join(parts) + ".py"
    if (base / "__init__.py").is_file():
        return "/".join(parts) + "/__init__.py"
    return None


def imports_of(path: Path) -> set[str]:
    """The sarra modules ``path`` imports, as paths from the repository's top."""
    rel = path.relative_to(REPO).with_suffix("").parts
    package = list(rel[:-1])      # a module's package; an __init__'s own
    out: set[str] = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "sarra":
                    out.add(module_path(a.name.split(".")))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == "sarra":
                base = []
            else:
                continue
            mod = base + (node.module.split(".") if node.module else [])
            for a in node.names:
                out.add(module_path(mod + [a.name]) or module_path(mod))
    return {m for m in out if m}


def test_the_table_of_layers_names_what_exists():
    table = layers()
    assert set(table.values()) == {1, 2, 3, 4, 5}
    assert [k for k in table if not (REPO / k.rstrip("/")).exists()] == []


def test_no_module_imports_a_layer_above_its_own():
    table = layers()
    upward = []
    for p in sorted((REPO / "sarra").rglob("*.py")):
        rel = p.relative_to(REPO).as_posix()
        mine = layer_of(rel, table)
        if mine is None:
            continue          # sarra/__init__.py, or a module the table does not place
        for target in sorted(imports_of(p)):
            theirs = layer_of(target, table)
            if theirs is not None and theirs > mine:
                upward.append(f"{rel} (layer {mine}) imports {target} (layer {theirs})")
    assert not upward, "imports against ARCHITECTURE.md's layers:\n" + "\n".join(upward)
