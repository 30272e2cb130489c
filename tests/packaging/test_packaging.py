"""Packaging: sdist and wheel, every tool from a fresh venv, the .deb
(dpkg-buildpackage, its file list, lintian, an install into a throwaway root),
the rpm spec, the man pages.

Everything is built from a copy of the tree in a temporary directory: nothing
is written into the repository (dpkg-buildpackage writes into the parent of
the source tree, setuptools writes build/ and *.egg-info into it).

No network but for one test: the sdist and the wheel are built with ``python
-m build --no-isolation`` (build, wheel and setuptools come with the test
extras); the wheel goes into a new venv with ``--no-deps --no-index``, and the
venv finds the dependencies in this interpreter's site-packages through a .pth
file. test_pip_resolves_the_wheels_dependencies_and_every_tool_runs installs
the wheel as a user would, pip resolving its dependencies from the package
index into another fresh venv (pip's cache makes re-runs quick; it is skipped,
saying so, when the index cannot be reached).

The .deb is installed by dpkg into a throwaway root (dpkg --root
--force-script-chrootless --force-depends: no chroot, the maintainer scripts
run on this machine with DPKG_ROOT set to the root), then removed and purged
(in a second root). Spies first on PATH record what the maintainer scripts run
and refuse what would act on this machine (users and groups, systemctl,
deb-systemd-invoke, py3compile, py3clean, file commands on paths outside the
root); the sarra user and group, sarra's paths, systemd's links and this
machine's dpkg database are compared before and after. On a machine not
running systemd, dpkg runs in a private mount namespace with its own
/run/systemd/system, so that the scripts' systemd branches run too. In the
root: dpkg -s, -L and --verify, the directories and unit links the postinst
makes, and every tool run with /usr/bin/python3, sarra imported from the root
and its dependencies from their Debian packages.

The .deb and .rpm tests need dpkg-buildpackage (debhelper, dh-python,
pybuild-plugin-pyproject, lintian) and rpmbuild, the installed .deb the
Debian packages it depends on (python3-pika, python3-paramiko...);
tools/setup.sh installs them all. The builds are skipped, saying why, where
their tools are missing; the installed tools' tests fail without their
dependencies.
"""
from __future__ import annotations

import configparser
import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from sarra import __version__

REPO = Path(__file__).resolve().parents[2]

# the commands every install must provide (sarra is the operator's command, not `dd`:
# /usr/bin/dd is coreutils')
TOOLS = ["dd_post", "dd_watch", "dd_poll", "dd_subscribe", "dd_sara", "dd_sender", "dd_shovel",
         "dd_winnow", "dd_log", "dd_audit", "sarra"]
# the Python dependencies and their Debian 12 packages
DEB_PYTHON_DEPENDS = {"pika": "python3-pika", "requests": "python3-requests",
                      "xxhash": "python3-xxhash", "watchdog": "python3-watchdog",
                      "PyYAML": "python3-yaml", "psutil": "python3-psutil",
                      "paramiko": "python3-paramiko",
                      "prometheus_client": "python3-prometheus-client"}


def _norm(name: str) -> str:
    """A distribution name as pip compares them (PEP 503: case, '_', '.' and '-' alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# the systemd units, kept in debian/ only (the .rpm installs the same files)
UNITS = ["sarra.service", "sarra-sanity.service", "sarra-sanity.timer"]
# the web console's page, script and style: package data (setup.py), served by sarra web
WEB_STATIC = [f"sarra/web/static/{n}" for n in ("index.html", "app.js", "app.css")]
# Debian 12 packages too old for the range setup.py asks for, and why. The .deb
# depends on them without a version (it must install on bookworm).
BOOKWORM_TOO_OLD: dict[str, str] = {}

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SKIP_DIRS_TOP = {".git", ".venv", "venv", "build", "dist", ".pybuild", ".hypothesis",
                  ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox"}
_SKIP_DEBIAN = {"sarra", ".debhelper", "tmp", "files", "debhelper-build-stamp"}


def _repo_files(kind: str) -> list[Path]:
    """Files of man/, etc/ or doc/ in the repository, relative to that directory."""
    root = REPO / kind
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def _copy_tree(dest: Path) -> Path:
    """A copy of the working tree without VCS data, venvs, caches and build output."""
    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skip = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))}
        if here == REPO:
            skip |= _SKIP_DIRS_TOP & set(names)
        if here == REPO / "debian":
            skip |= {n for n in names if n in _SKIP_DEBIAN or n.endswith((".substvars", ".log"))}
        return skip
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


def _run(cmd, *, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _system_env(home: Path) -> dict[str, str]:
    """A clean environment for Debian's own tools (no venv, no pyenv, no PYTHONPATH)."""
    return {"PATH": SYSTEM_PATH, "HOME": str(home), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp")}


def _ok(proc: subprocess.CompletedProcess, what: str) -> str:
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}"
    return proc.stdout


def _strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


# ---------------------------------------------------------------- sdist and wheel

@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """sdist and wheel built by ``python -m build`` (the wheel from the sdist)."""
    base = tmp_path_factory.mktemp("dists")
    src = _copy_tree(base / "src")
    out = base / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    _ok(_run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
             cwd=base, env=env, timeout=180), "python -m build")
    sdists = list(out.glob("sarra-*.tar.gz"))
    wheels = list(out.glob("sarra-*-py3-none-any.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0], "src": src}


def test_setup_py_works_without_readme(tmp_path):
    (tmp_path / "sarra").mkdir()
    shutil.copy(REPO / "setup.py", tmp_path)
    for name in ("__init__.py", "tools.py"):     # what setup.py reads (the version, the tools)
        shutil.copy(REPO / "sarra" / name, tmp_path / "sarra")
    proc = _run([sys.executable, "setup.py", "--version"], cwd=tmp_path)
    assert _ok(proc, "setup.py --version without README.md").strip().splitlines()[-1] \
        == __version__


def test_sdist_has_docs_man_pages_examples_and_packaging(dists):
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [f"{kind}/{rel}" for kind in ("man", "etc", "doc")
               for rel in _repo_files(kind) if f"{kind}/{rel}" not in names]
    missing += [f for f in ["README.md", "setup.py", "pyproject.toml", "MANIFEST.in",
                            "sarra/cli.py", "packaging/sarra.spec", "debian/control",
                            *WEB_STATIC,
                            "debian/rules", "debian/changelog"]
                + [f"debian/{u}" for u in UNITS] if f not in names]
    assert not missing, f"missing from {dists['sdist'].name}: {missing}"
    junk = [n for n in names if n.endswith((".pyc", ".deb")) or "__pycache__" in n
            or n.startswith((".git/", ".venv/", "debian/sarra/", "debian/.debhelper/"))]
    assert not junk, f"build or VCS leftovers in the sdist: {junk}"


def test_wheel_has_every_console_script_and_bounded_dependencies(dists):
    with zipfile.ZipFile(dists["wheel"]) as whl:
        info = f"sarra-{__version__}.dist-info"
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
        metadata = whl.read(f"{info}/METADATA").decode()
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    scripts = dict(parser["console_scripts"])
    assert sorted(scripts) == sorted(TOOLS), "console scripts: expected exactly " + str(TOOLS)
    with zipfile.ZipFile(dists["wheel"]) as whl:
        missing = [f for f in WEB_STATIC if f not in whl.namelist()]
    assert not missing, f"the web console's files are not in the wheel: {missing}"
    assert "dd" not in scripts, "`dd` would shadow coreutils' dd"
    assert scripts["sarra"] == "sarra.cli:main_dd"
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    names = {_norm(re.split(r"[<>=!~ ;\[]", r, 1)[0]) for r in requires}
    assert names == {_norm(n) for n in DEB_PYTHON_DEPENDS}, requires
    unbounded = [r for r in requires if ">=" not in r or "<" not in r]
    assert not unbounded, f"dependencies without a lower and an upper bound: {unbounded}"


# ---------------------------------------------------------------- a fresh venv

@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory) -> Path:
    """A new venv with the wheel installed (--no-deps, --no-index); the dependencies
    come from this interpreter's site-packages through a .pth file."""
    root = tmp_path_factory.mktemp("venv") / "v"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", str(root)]), "python -m venv")
    py = root / "bin" / "python"
    _ok(_run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
              "--no-index", "--no-compile", str(dists["wheel"])], timeout=120),
        "pip install the wheel into the new venv")
    purelib = Path(_ok(_run([str(py), "-c", "import sysconfig; "
                                            "print(sysconfig.get_paths()['purelib'])"]),
                       "venv purelib").strip())
    (purelib / "_sarra_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return root


def _venv_env(tmp: Path) -> dict[str, str]:
    env = {"PATH": SYSTEM_PATH, "HOME": str(tmp), "LC_ALL": "C.UTF-8",
           "SARRA_CONFIG_DIR": str(tmp / "config"), "SARRA_STATE_DIR": str(tmp / "state"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return env


def test_venv_imports_the_installed_wheel_and_its_dependencies_fit(venv, tmp_path):
    py = str(venv / "bin" / "python")
    code = (
        "import importlib.metadata as md, sarra\n"
        "from packaging.requirements import Requirement\n"
        "print(sarra.__file__)\n"
        "for r in map(Requirement, md.requires('sarra')):\n"
        "    if r.marker and not r.marker.evaluate({'extra': ''}):\n"
        "        continue\n"
        "    v = md.version(r.name)\n"
        "    print(r.name, v, r.specifier, 'ok' if r.specifier.contains(v, prereleases=True)"
        " else 'OUT OF RANGE')\n")
    out = _ok(_run([py, "-c", code], cwd=tmp_path, env=_venv_env(tmp_path)), "import check")
    lines = out.strip().splitlines()
    assert lines[0].startswith(str(venv)), f"sarra imported from {lines[0]}, not the venv"
    assert len(lines) == 1 + len(DEB_PYTHON_DEPENDS), out
    assert "OUT OF RANGE" not in out, out


def test_the_installed_console_serves_its_page_from_the_package(venv, tmp_path):
    """sarra web from the wheel: the page, its script and style are read from
    the installed package (package data), not from the source tree."""
    py = str(venv / "bin" / "python")
    code = ("import sarra.web.server as s\n"
            "print(s.__file__)\n"
            "for n in ('index.html', 'app.js', 'app.css'):\n"
            "    print(n, len(s._resource(n)))\n")
    out = _ok(_run([py, "-c", code], cwd=tmp_path, env=_venv_env(tmp_path)), "the page")
    lines = out.strip().splitlines()
    assert lines[0].startswith(str(venv)), f"sarra imported from {lines[0]}, not the venv"
    sizes = dict(line.split() for line in lines[1:])
    for name in ("index.html", "app.js", "app.css"):
        assert int(sizes[name]) == (REPO / "sarra" / "web" / "static" / name).stat().st_size


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_help_and_version_from_the_venv(venv, tool, tmp_path):
    exe = venv / "bin" / tool
    assert exe.is_file(), f"{tool} not installed by the wheel"
    assert exe.read_text().splitlines()[0] == f"#!{venv}/bin/python"
    env = _venv_env(tmp_path)
    version = _run([str(exe), "--version"], cwd=tmp_path, env=env, timeout=60)
    assert _ok(version, f"{tool} --version").strip().endswith(__version__), version.stdout
    helped = _run([str(exe), "--help"], cwd=tmp_path, env=env, timeout=60)
    assert "usage" in _ok(helped, f"{tool} --help").lower(), helped.stdout


def test_venv_has_no_dd_command(venv):
    assert not (venv / "bin" / "dd").exists()


# ---------------------------------------------------------------- pip, for real

_OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|"
                      r"Temporary failure in name resolution|Network is unreachable|"
                      r"ConnectTimeoutError|ProxyError")


def test_pip_resolves_the_wheels_dependencies_and_every_tool_runs(dists, tmp_path):
    """What a user's ``pip install sarra-*.whl`` does: a fresh venv (no borrowed
    site-packages), pip resolving install_requires from the index (PyPI; pip's
    own cache makes re-runs quick), ``pip check``, then every console script's
    --version run from that venv."""
    root = tmp_path / "v"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", str(root)]), "python -m venv")
    py = root / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    for var in ("PIP_NO_INDEX", "PIP_NO_DEPS", "PIP_NO_CACHE_DIR"):
        env.pop(var, None)
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    # a firewalled index fails in seconds, not after pip's default retries
    proc = _run(pip + ["install", "--no-compile", "--progress-bar", "off", "--timeout", "20",
                       "--retries", "2", str(dists["wheel"])], env=env, timeout=300)
    if proc.returncode != 0 and _OFFLINE.search(proc.stdout):
        pytest.skip(f"the package index cannot be reached:\n{proc.stdout[-1500:]}")
    _ok(proc, "pip install the wheel, resolving its dependencies")
    _ok(_run(pip + ["check"], env=env), "pip check")
    listed = _ok(_run(pip + ["list", "--format", "freeze"], env=env), "pip list")
    installed = {_norm(line.split("==")[0]) for line in listed.split()}
    wanted = {_norm(name) for name in DEB_PYTHON_DEPENDS} | {"sarra"}
    assert wanted <= installed, f"not installed by pip: {sorted(wanted - installed)}"
    assert not list((root / "lib").glob("python*/site-packages/*.pth")), \
        "a .pth file: the venv borrows packages"
    run_env = _venv_env(tmp_path)
    for tool in TOOLS:
        exe = root / "bin" / tool
        assert exe.read_text().splitlines()[0] == f"#!{py}", f"{tool}: not the venv's script"
        version = _run([str(exe), "--version"], cwd=tmp_path, env=run_env, timeout=60)
        assert _ok(version, f"{tool} --version").strip().endswith(__version__), version.stdout


# ---------------------------------------------------------------- man pages

@pytest.mark.parametrize("page", [str(p) for p in _repo_files("man")])
def test_man_page_renders_without_warnings(page, tmp_path):
    path = REPO / "man" / page
    section = path.suffix.lstrip(".")
    assert section in ("1", "5", "7", "8"), f"{page}: not a man page name (name.SECTION)"
    th = next((line for line in path.read_text(encoding="utf-8").splitlines()
               if line.startswith(".TH ")), None)
    assert th is not None, f"{page}: no .TH line"
    assert th.split()[2] == section, f"{page}: .TH says section {th.split()[2]}"
    env = dict(_system_env(tmp_path), MANROFFSEQ="", MANWIDTH="80")
    groff = shutil.which("groff", path=SYSTEM_PATH)
    if groff is None:
        pytest.skip("groff is not installed (apt-get install groff-base)")
    proc = subprocess.run([groff, "-man", "-t", "-Tutf8", "-ww", "-z", str(path)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, f"groff on {page}:\n{proc.stderr}"
    man = shutil.which("man", path=SYSTEM_PATH)
    if man is not None:   # what lintian runs
        proc = subprocess.run([man, "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z",
                               str(path)], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and not proc.stderr, f"man -l {page}:\n{proc.stderr}"


# ---------------------------------------------------------------- versions

def test_packaging_versions_agree_with_the_package():
    changelog = (REPO / "debian" / "changelog").read_text(encoding="utf-8").splitlines()[0]
    deb_version = re.match(r"sarra \(([^)]+)\)", changelog).group(1)
    assert deb_version.split("-")[0] == __version__, f"debian/changelog: {changelog}"
    spec = (REPO / "packaging" / "sarra.spec").read_text(encoding="utf-8")
    assert re.search(r"^Version:\s*(\S+)", spec, re.M).group(1) == __version__


def test_bookworm_packages_fit_the_dependency_ranges():
    """The .deb depends on Debian's python3-* packages: where bookworm's version is
    outside setup.py's range, the tools may break. Only the known cases may."""
    release = Path("/etc/os-release")
    if not release.exists() or "VERSION_CODENAME=bookworm" not in release.read_text():
        pytest.skip("not Debian 12 (bookworm)")
    if shutil.which("apt-cache", path=SYSTEM_PATH) is None:
        pytest.skip("no apt-cache")
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version

    src = (REPO / "setup.py").read_text(encoding="utf-8")
    block = re.search(r"INSTALL_REQUIRES = \[(.*?)\]", src, re.S).group(1)
    reqs = [Requirement(s) for s in re.findall(r'"([^"]+)"', block)]
    pkgs = [DEB_PYTHON_DEPENDS[req.name] for req in reqs]
    out = _ok(_run(["apt-cache", "policy", *pkgs], env=_system_env(Path("/tmp"))),
              "apt-cache policy")
    candidates = dict(re.findall(r"^(\S+):\n(?:\s+Installed:.*\n)?\s+Candidate:\s*(\S+)",
                                 out, re.M))
    outside = {}
    for req, pkg in zip(reqs, pkgs):
        candidate = candidates.get(pkg, "(none)")
        assert candidate != "(none)", f"{pkg} has no candidate in bookworm:\n{out}"
        upstream = re.sub(r"^\d+:", "", candidate).rsplit("-", 1)[0].split("+")[0]
        try:
            fits = req.specifier.contains(Version(upstream), prereleases=True)
        except InvalidVersion:
            fits = False
        if not fits:
            outside[req.name] = f"{pkg} {candidate} vs {req.specifier}"
    print(outside)
    unexpected = {k: v for k, v in outside.items() if k not in BOOKWORM_TOO_OLD}
    assert not unexpected, f"bookworm versions outside setup.py's ranges: {unexpected}"


# ---------------------------------------------------------------- .deb

@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> dict:
    """The .deb built by dpkg-buildpackage -us -uc -b from a copy of the tree."""
    if shutil.which("dpkg-buildpackage", path=SYSTEM_PATH) is None:
        pytest.skip("dpkg-buildpackage is not installed (tools/setup.sh installs it)")
    base = tmp_path_factory.mktemp("deb")
    src = _copy_tree(base / f"sarra-{__version__}")
    env = _system_env(base)
    checked = _run(["dpkg-checkbuilddeps"], cwd=src, env=env)
    if checked.returncode != 0:
        pytest.skip(f"build dependencies missing (tools/setup.sh installs them):\n"
                    f"{checked.stdout}")
    log = _ok(_run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, timeout=300),
              "dpkg-buildpackage -us -uc -b")
    debs = list(base.glob("sarra_*_all.deb"))
    assert len(debs) == 1, sorted(p.name for p in base.iterdir())
    changes = list(base.glob("sarra_*.changes"))
    listing = _ok(_run(["dpkg-deb", "-c", str(debs[0])], env=env), "dpkg-deb -c")
    files = {}
    for line in listing.splitlines():
        fields = line.split(None, 5)
        path = fields[5].split(" -> ")[0]
        files[path[1:].rstrip("/") if path.startswith(".") else path] = fields[0]
    root = base / "root"
    _ok(_run(["dpkg-deb", "-x", str(debs[0]), str(root)], env=env), "dpkg-deb -x")
    control = base / "control"
    _ok(_run(["dpkg-deb", "-e", str(debs[0]), str(control)], env=env), "dpkg-deb -e")
    return {"deb": debs[0], "changes": changes[0] if changes else None, "files": files,
            "root": root, "control": control, "base": base, "log": log, "env": env}


def _unit_dir(files: dict) -> str:
    for d in ("/lib/systemd/system", "/usr/lib/systemd/system"):
        if f"{d}/sarra.service" in files:
            return d
    raise AssertionError("sarra.service is not in the .deb")


def test_deb_installs_tools_man_pages_examples_guides_and_units(deb):
    files = deb["files"]
    plain = {_strip_gz(f) for f in files}
    expected = [f"/usr/bin/{t}" for t in TOOLS]
    expected += [f"/usr/share/man/man{p.suffix[1:]}/{p.name}" for p in _repo_files("man")]
    expected += [f"/usr/share/doc/sarra/examples/{p}" for p in _repo_files("etc")]
    expected += [f"/usr/share/doc/sarra/{p}" for p in _repo_files("doc")]
    expected += ["/usr/share/doc/sarra/README.md", "/usr/share/doc/sarra/copyright",
                 "/usr/lib/python3/dist-packages/sarra/__init__.py",
                 "/usr/lib/python3/dist-packages/sarra/cli.py"]
    expected += [f"{_unit_dir(files)}/{u}" for u in UNITS]
    expected += [f"/usr/lib/python3/dist-packages/{p.relative_to(REPO)}"
                 for p in (REPO / "sarra").rglob("*.py")]
    expected += [f"/usr/lib/python3/dist-packages/{p}" for p in WEB_STATIC]
    missing = [f for f in expected if f not in plain]
    assert not missing, f"missing from {deb['deb'].name}: {missing}"
    for t in TOOLS:
        assert files[f"/usr/bin/{t}"].startswith("-rwxr-xr-x"), f"/usr/bin/{t} not executable"
    assert "/usr/bin/dd" not in files, "/usr/bin/dd belongs to coreutils"
    stray = [f for f in files if f.startswith(("/usr/local", "/etc", "/var", "/home"))
             or "__pycache__" in f or f.endswith(".pyc")]
    assert not stray, f"files that do not belong in the .deb: {stray}"


def test_deb_control_fields(deb):
    fields = _ok(_run(["dpkg-deb", "-f", str(deb["deb"]), "Package", "Version", "Architecture",
                       "Depends"], env=deb["env"]), "dpkg-deb -f")
    info = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
    assert info["Package"] == "sarra"
    assert info["Architecture"] == "all"
    assert info["Version"].split("-")[0] == __version__
    depends = {d.strip().split()[0] for d in info["Depends"].replace("|", ",").split(",")}
    wanted = set(DEB_PYTHON_DEPENDS.values()) | {"adduser"}
    assert wanted <= depends, f"Depends lacks {wanted - depends}: {info['Depends']}"
    assert any(d.startswith("python3") and d not in wanted for d in depends), \
        f"no ${{python3:Depends}} interpreter dependency: {info['Depends']}"


def _unit(root: Path, unit_dir: str, name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string((root / unit_dir.lstrip("/") / name).read_text(encoding="utf-8"))
    return parser


def test_deb_systemd_units(deb):
    unit_dir = _unit_dir(deb["files"])
    main = _unit(deb["root"], unit_dir, "sarra.service")["Service"]
    assert main["Type"] == "oneshot"
    assert main["RemainAfterExit"] == "yes"
    assert main["ExecStart"] == "/usr/bin/sarra start"
    assert main["ExecStop"] == "/usr/bin/sarra stop"
    assert main["ExecReload"] == "/usr/bin/sarra restart"
    assert main["User"] == "sarra"
    sanity = _unit(deb["root"], unit_dir, "sarra-sanity.service")["Service"]
    assert sanity["ExecStart"] == "/usr/bin/sarra sanity"
    assert sanity["User"] == "sarra"
    assert sanity["Type"] == "oneshot"
    timer = _unit(deb["root"], unit_dir, "sarra-sanity.timer")
    assert timer["Timer"]["OnCalendar"] in ("minutely", "*-*-* *:*:00")
    assert "WantedBy" in timer["Install"]
    for name in UNITS:   # the .deb ships debian/'s copies, unchanged
        assert (deb["root"] / unit_dir.lstrip("/") / name).read_bytes() == \
            (REPO / "debian" / name).read_bytes(), name


def test_deb_maintainer_scripts_create_the_user_and_enable_the_units(deb):
    postinst = (deb["control"] / "postinst").read_text(encoding="utf-8")
    assert re.search(r"adduser --system\b.*\bsarra\b", postinst, re.S)
    assert "deb-systemd-helper enable 'sarra.service'" in postinst
    assert "deb-systemd-helper enable 'sarra-sanity.timer'" in postinst
    for script in ("postinst", "postrm", "prerm"):
        path = deb["control"] / script
        if path.exists():
            _ok(_run(["sh", "-n", str(path)], env=deb["env"]), f"sh -n {script}")


def test_lintian_reports_no_errors(deb):
    lintian = shutil.which("lintian", path=SYSTEM_PATH)
    if lintian is None:
        pytest.skip("lintian is not installed (tools/setup.sh installs it)")
    target = deb["changes"] or deb["deb"]
    proc = _run([lintian, "--no-cfg", "--fail-on", "error", str(target)], env=deb["env"],
                timeout=240)
    print(proc.stdout)   # warnings are allowed: pytest -rP shows them
    errors = [line for line in proc.stdout.splitlines() if line.startswith("E:")]
    assert not errors and proc.returncode == 0, proc.stdout


# ---------------------------------------------------------------- .deb, installed

# dpkg installs the .deb into a throwaway root: no chroot, the maintainer scripts
# run on this machine with DPKG_ROOT set to the root (dpkg(1)), as when an image
# is built chrootless. They must act on that root only.
#
# Commands that act on the running system, whatever the paths: the spies put
# before them on PATH record the call and run nothing.
HOST_ONLY_COMMANDS = ["adduser", "addgroup", "deluser", "delgroup", "useradd", "groupadd",
                      "usermod", "userdel", "groupdel", "systemctl", "deb-systemd-invoke",
                      "invoke-rc.d", "update-rc.d", "service", "py3compile", "pypy3compile",
                      "py3clean", "pypy3clean"]
# Commands that may run on paths inside the root: their spies refuse (and record)
# any other absolute path.
FILE_COMMANDS = ["install", "chown", "chgrp", "chmod", "mkdir", "rm", "rmdir", "mv", "cp",
                 "touch", "find"]
# What an install into another root could change on this machine.
HOST_PATHS = ["/etc/sarra", "/var/lib/sarra", "/usr/bin/sarra", "/usr/bin/dd_post",
              "/usr/lib/python3/dist-packages/sarra", "/lib/systemd/system/sarra.service",
              "/etc/systemd/system/multi-user.target.wants/sarra.service",
              "/etc/systemd/system/sarra.service.wants",
              "/var/lib/systemd/deb-systemd-helper-enabled/sarra.service.dsh-also",
              "/var/lib/systemd/deb-systemd-helper-enabled/sarra-sanity.timer.dsh-also",
              "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/sarra.service"]
# the import name of each dependency (DEB_PYTHON_DEPENDS's keys)
IMPORT_NAMES = {"pika": "pika", "requests": "requests", "xxhash": "xxhash",
                "watchdog": "watchdog", "PyYAML": "yaml", "psutil": "psutil",
                "paramiko": "paramiko", "prometheus_client": "prometheus_client"}
HOST_PYTHON = "/usr/bin/python3"   # the .deb's scripts say #!/usr/bin/python3


def _host_state() -> dict:
    """What of this machine an install of sarra could change: the sarra user and
    group, sarra's paths, systemd's links and deb-systemd-helper's state, sarra's
    entry in the host's dpkg database."""
    state: dict = {}
    for path in HOST_PATHS:
        try:
            st = os.lstat(path)
            state[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
        except FileNotFoundError:
            state[path] = None
    for db in ("passwd", "group"):
        proc = _run(["getent", db, "sarra"], env=_system_env(Path("/tmp")))
        state[f"getent {db} sarra"] = (proc.returncode, proc.stdout)
    status = Path("/var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    state["dpkg status"] = [s for s in status.split("\n\n") if s.startswith("Package: sarra\n")]
    state["dpkg info"] = sorted((p.name, p.stat().st_mtime_ns)
                                for p in Path("/var/lib/dpkg/info").glob("sarra.*"))
    return state


def _state_diff(before: dict, after: dict) -> dict:
    return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)}


def _booted_with_systemd(env: dict) -> tuple[list[str], str]:
    """A command prefix under which /run/systemd/system exists, as on a machine
    booted with systemd, so that the maintainer scripts' systemd branches run
    (into the spies): a private mount namespace with its own /run."""
    if Path("/run/systemd/system").is_dir():
        return [], "this machine runs systemd"
    unshare, mount, mkdir = (shutil.which(c, path=SYSTEM_PATH)
                             for c in ("unshare", "mount", "mkdir"))
    if not (unshare and mount and mkdir):
        return [], "no unshare: the scripts' systemd branches did not run"
    prefix = [unshare, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix.append("--map-root-user")
    prefix += ["sh", "-c", f"{mount} -t tmpfs sarra-test /run && "
                           f'{mkdir} -p /run/systemd/system && exec "$@"', "sh"]
    probe = _run(prefix + ["test", "-d", "/run/systemd/system"], env=env)
    if probe.returncode != 0:
        return [], f"no private /run (unshare: {probe.stdout.strip()}): " \
                   "the scripts' systemd branches did not run"
    return prefix, "/run/systemd/system in a private mount namespace"


class DpkgRoot:
    """A throwaway root and the dpkg command that installs into it, chrootless,
    with spies on PATH (HOST_ONLY_COMMANDS, FILE_COMMANDS) recording in calls.log."""

    def __init__(self, base: Path, env: dict):
        self.root = base / "root"
        self.admindir = self.root / "var/lib/dpkg"
        for d in ("info", "updates"):
            (self.admindir / d).mkdir(parents=True)
        for f in ("status", "available"):
            (self.admindir / f).touch()
        self.log = base / "calls.log"
        self.log.touch()
        spies = base / "spies"
        spies.mkdir()
        log = shlex.quote(str(self.log))
        for name in HOST_ONLY_COMMANDS:
            (spies / name).write_text(
                "#!/bin/sh\n"
                f"printf '%s\\n' \"HOST-ONLY {name} $* (DPKG_ROOT=${{DPKG_ROOT-unset}})\" >>{log}\n"
                "exit 0\n", encoding="utf-8")
        inside = shlex.quote(str(self.root))
        for name in FILE_COMMANDS:
            real = shutil.which(name, path=SYSTEM_PATH)
            assert real, f"{name} not found in {SYSTEM_PATH}"
            (spies / name).write_text(
                "#!/bin/sh\n"
                'for a in "$@"; do\n'
                '    case "$a" in\n'
                f"        {inside}|{inside}/*) ;;\n"
                f"        /*) printf '%s\\n' \"REFUSED {name} $* (DPKG_ROOT=${{DPKG_ROOT-unset}})\""
                f" >>{log}; exit 1 ;;\n"
                "    esac\n"
                "done\n"
                f"printf '%s\\n' \"ran {name} $*\" >>{log}\n"
                f"exec {shlex.quote(real)} \"$@\"\n", encoding="utf-8")
        for spy in spies.iterdir():
            spy.chmod(0o755)
        self.env = dict(env, PATH=f"{spies}:{SYSTEM_PATH}")
        self.systemd_prefix, self.systemd_note = _booted_with_systemd(self.env)
        self.dpkg_args = ["dpkg", f"--root={self.root}", f"--admindir={self.admindir}",
                          "--force-not-root", "--force-script-chrootless", "--force-depends",
                          "--log=/dev/null"]

    def dpkg(self, *args: str, what: str | None = None) -> str:
        """Run dpkg ARGS on the root; fail with its output unless it succeeds."""
        proc = _run(self.systemd_prefix + self.dpkg_args + list(args), env=self.env,
                    timeout=120)
        if proc.returncode != 0:   # what the maintainer scripts ran, or were refused
            proc.stdout += "\ncommands run by the maintainer scripts (spies):\n" + \
                "\n".join(self.calls())
        return _ok(proc, what or "dpkg " + " ".join(args))

    def query(self, *args: str) -> subprocess.CompletedProcess:
        return _run(self.dpkg_args + list(args), env=self.env)

    def calls(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines()

    def assert_host_untouched(self, before: dict, output: str) -> None:
        bad = [c for c in self.calls() if c.startswith(("HOST-ONLY", "REFUSED"))]
        assert not bad, ("the maintainer scripts acted on this machine, not on the root "
                         f"({self.systemd_note}):\n" + "\n".join(bad) + f"\n\ndpkg:\n{output}")
        diff = _state_diff(before, _host_state())
        assert not diff, f"installing into {self.root} changed this machine: {diff}\n{output}"


@pytest.fixture(scope="module")
def installed(deb, tmp_path_factory) -> dict:
    """The .deb installed by dpkg -i into a throwaway root."""
    base = tmp_path_factory.mktemp("installed")
    before = _host_state()
    root = DpkgRoot(base, deb["env"])
    output = root.dpkg("-i", str(deb["deb"]), what="dpkg -i into a throwaway root")
    return {"dpkg": root, "root": root.root, "before": before, "output": output}


def _root_python_env(root: Path, tmp: Path) -> dict[str, str]:
    """/usr/bin/python3 finding sarra in the root, its dependencies in the system."""
    return {"PATH": SYSTEM_PATH, "HOME": str(tmp), "LC_ALL": "C.UTF-8",
            "PYTHONPATH": str(root / "usr/lib/python3/dist-packages"),
            "PYTHONNOUSERSITE": "1", "SARRA_CONFIG_DIR": str(tmp / "config"),
            "SARRA_STATE_DIR": str(tmp / "state")}


def _deb_python_depends_installed() -> None:
    missing = []
    for pkg in DEB_PYTHON_DEPENDS.values():
        proc = _run(["dpkg-query", "-W", "-f=${Status}", pkg], env=_system_env(Path("/tmp")))
        if proc.stdout.strip() != "install ok installed":
            missing.append(pkg)
    assert not missing and Path(HOST_PYTHON).exists(), \
        f"not installed on this machine: {missing or HOST_PYTHON} (tools/setup.sh installs them)"


def test_deb_installs_into_a_throwaway_root_without_touching_this_machine(installed):
    root = installed["dpkg"]
    print(root.systemd_note)
    root.assert_host_untouched(installed["before"], installed["output"])
    ran = root.calls()
    print("\n".join(ran))
    # the postinst's DPKG_ROOT branch ran (it made the root's directories)
    assert any(c.startswith("ran install ") and f"{installed['root']}/var/lib/sarra" in c
               for c in ran), ran
    status = _ok(root.query("-s", "sarra"), "dpkg -s sarra (the root's database)")
    assert "Status: install ok installed" in status, status
    assert re.search(rf"^Version: {re.escape(__version__)}\b", status, re.M), status
    verify = root.query("--verify", "sarra")
    assert verify.returncode == 0 and not verify.stdout.strip(), \
        f"dpkg --verify sarra in the root:\n{verify.stdout}"


def test_deb_installed_files_are_in_the_root(installed, deb):
    listing = _ok(installed["dpkg"].query("-L", "sarra"), "dpkg -L sarra (the root's database)")
    listed = set(listing.split("\n")) - {"", "/."}
    expected = [f"/usr/bin/{t}" for t in TOOLS]
    expected += [f"/usr/share/man/man{p.suffix[1:]}/{p.name}.gz" for p in _repo_files("man")]
    expected += [f"{_unit_dir(deb['files'])}/{u}" for u in UNITS]
    expected += ["/usr/lib/python3/dist-packages/sarra/cli.py"]
    missing = [f for f in expected if f not in listed]
    examples = {_strip_gz(f) for f in listed if f.startswith("/usr/share/doc/sarra/examples/")}
    missing += [f"/usr/share/doc/sarra/examples/{p}" for p in _repo_files("etc")
                if f"/usr/share/doc/sarra/examples/{p}" not in examples]
    assert not missing, f"dpkg -L sarra lacks {missing}:\n{listing}"
    absent = [f for f in listed if not os.path.lexists(installed["root"] / f.lstrip("/"))]
    assert not absent, f"listed by dpkg -L, not in {installed['root']}: {absent}"


def test_deb_postinst_enables_the_units_and_makes_the_directories_in_the_root(installed, deb):
    root = installed["root"]
    for d in ("var/lib/sarra", "etc/sarra"):
        st = (root / d).stat()
        assert (root / d).is_dir() and st.st_mode & 0o777 == 0o750, \
            f"{root / d}: {oct(st.st_mode)}\n{installed['output']}"
    # the units debhelper's snippet enables; in a DPKG_ROOT install the postinst
    # enables them itself (debian/sarra.postinst, which must name the same ones)
    postinst = (deb["control"] / "postinst").read_text(encoding="utf-8")
    units = re.findall(r"deb-systemd-helper enable '([^']+)'", postinst)
    assert sorted(units) == ["sarra-sanity.timer", "sarra.service"], units
    branch = re.search(r'for unit in ([^;]+); do\n\s+if deb-systemd-helper', postinst)
    assert branch and sorted(branch.group(1).split()) == sorted(units), \
        f"debian/sarra.postinst's DPKG_ROOT branch does not enable {units}"
    unit_dir = _unit_dir(deb["files"])
    for unit in units:
        wanted_by = _unit(root, unit_dir, unit)["Install"]["WantedBy"]
        link = root / "etc/systemd/system" / f"{wanted_by}.wants" / unit
        assert link.is_symlink() and os.readlink(link) == f"{unit_dir}/{unit}", \
            f"{unit} not enabled in the root ({link})\n{installed['output']}"


def test_root_python_imports_sarra_from_the_root_and_its_dependencies_from_debian(
        installed, tmp_path):
    _deb_python_depends_installed()
    root = installed["root"]
    code = (
        "import importlib, pkgutil, sys\n"
        "import sarra\n"
        "print(sys.prefix)\n"
        "print(sarra.__file__)\n"
        "bad = []\n"
        "for m in pkgutil.walk_packages(sarra.__path__, 'sarra.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{m.name}: {exc!r}')\n"
        "print(bad)\n"
        f"for name in {sorted(IMPORT_NAMES.values())!r}:\n"
        "    print(name, importlib.import_module(name).__file__)\n")
    out = _ok(_run([HOST_PYTHON, "-c", code], cwd=tmp_path,
                   env=_root_python_env(root, tmp_path)), f"{HOST_PYTHON}: import sarra")
    lines = out.strip().splitlines()
    assert lines[0] == "/usr", f"not the system's python: {out}"
    assert lines[1] == f"{root}/usr/lib/python3/dist-packages/sarra/__init__.py", \
        f"sarra imported from {lines[1]}, not from the root"
    # a driver of an optional extra (setup.py extras_require: paho-mqtt, which
    # bookworm has too old for the .deb to depend on) does not import without
    # it; the registry says what to install (sarra/broker/__init__.py); any
    # other module must import
    optional = ("paho",)
    bad = [b for b in ast.literal_eval(lines[2])
           if not any(f"No module named '{name}'" in b for name in optional)]
    assert bad == [], f"modules of the installed sarra that do not import: {bad}"
    for line in lines[3:]:
        name, path = line.split(" ", 1)
        assert path.startswith("/usr/lib/python3/dist-packages/"), \
            f"{name} imported from {path}, not from its Debian package"


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_help_and_version_from_the_root(installed, tool, tmp_path):
    _deb_python_depends_installed()
    root = installed["root"]
    exe = root / "usr/bin" / tool
    assert exe.read_text(encoding="utf-8").splitlines()[0] == f"#!{HOST_PYTHON}"
    env = _root_python_env(root, tmp_path)
    version = _run([HOST_PYTHON, str(exe), "--version"], cwd=tmp_path, env=env, timeout=60)
    assert _ok(version, f"{HOST_PYTHON} {exe} --version").strip().endswith(__version__), \
        version.stdout
    helped = _run([HOST_PYTHON, str(exe), "--help"], cwd=tmp_path, env=env, timeout=60)
    assert "usage" in _ok(helped, f"{HOST_PYTHON} {exe} --help").lower(), helped.stdout


def test_deb_instance_starts_from_a_directory_holding_a_sarra_folder(
        installed, tmp_path):
    """dd_subscribe start as the .deb installs it, run from a directory with
    a folder named sarra: the instance (/usr/bin/python3 -P -m sarra.cli)
    imports the package of the root, connects to the local broker and
    reports; start waits for it and says so."""
    _deb_python_depends_installed()
    root = installed["root"]
    env = _root_python_env(root, tmp_path)
    work = tmp_path / "work"
    (work / "sarra").mkdir(parents=True)
    (work / "sarra" / "__init__.py").write_text("")
    (tmp_path / "config" / "subscribe").mkdir(parents=True)
    (tmp_path / "config" / "subscribe" / "deb.conf").write_text(
        "broker amqp://guest@127.0.0.1/\nexchange amq.topic\n"
        f"subtopic sarra.packaging.{os.getpid()}\nexpire 1m\n"
        f"directory {tmp_path / 'dst'}\naccept .*\nreport_back off\n")
    creds = tmp_path / "config" / "credentials.conf"
    creds.write_text("amqp://guest:guest@127.0.0.1/\n")
    creds.chmod(0o600)
    exe = str(root / "usr/bin/dd_subscribe")
    started = _run([HOST_PYTHON, exe, "start", "deb"], cwd=work, env=env, timeout=60)
    try:
        out = _ok(started, "dd_subscribe start deb")
        assert "subscribe/deb instance 1 started (pid " in out and "not reported" not in out, \
            out
        pid = int((tmp_path / "state/subscribe/deb/subscribe_deb_01.pid").read_text().split()[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[:4] == [HOST_PYTHON, "-P", "-m", "sarra.cli"], argv
        log = (tmp_path / "state/log/subscribe_deb_01.log").read_text()
        assert "bound to amq.topic" in log, log
        status = _run([HOST_PYTHON, exe, "status", "deb"], cwd=work, env=env)
        assert "subscribe/deb: running (1/1 instances)" in _ok(status, "status"), status.stdout
    finally:
        stopped = _run([HOST_PYTHON, exe, "stop", "deb"], cwd=work, env=env, timeout=60)
    assert "subscribe/deb stopped (1 instances)" in _ok(stopped, "stop"), stopped.stdout


def test_deb_removes_and_purges_from_a_throwaway_root(deb, tmp_path):
    """dpkg -r then --purge: the package's files, its state and the units' links go;
    /etc/sarra is left to the administrator; this machine is untouched."""
    before = _host_state()
    dpkg = DpkgRoot(tmp_path, deb["env"])
    root = dpkg.root
    out = dpkg.dpkg("-i", str(deb["deb"]), what="dpkg -i into a throwaway root")
    # byte code, as a run of the tools leaves it (py3clean's job, in the root)
    _ok(_run([HOST_PYTHON, "-c", "import sarra.cli"], cwd=tmp_path,
             env=_root_python_env(root, tmp_path)), f"{HOST_PYTHON} -c 'import sarra.cli'")
    assert list((root / "usr/lib/python3/dist-packages/sarra").glob("__pycache__/*.pyc"))
    for tool in ("log", "subscribe"):   # state the tools keep
        (root / "var/lib/sarra" / tool).mkdir()
        (root / "var/lib/sarra" / tool / "x").write_text("x", encoding="utf-8")
    links = sorted(p.name for p in (root / "etc/systemd/system").rglob("*") if p.is_symlink())
    assert links == ["sarra-sanity.timer", "sarra.service"], links

    out += dpkg.dpkg("-r", "sarra")
    status = dpkg.query("-s", "sarra").stdout
    assert "Status: deinstall ok config-files" in status, status
    files = [f for f, mode in deb["files"].items() if not mode.startswith("d")]
    left = [f for f in files if os.path.lexists(root / f.lstrip("/"))]
    assert not left, f"left in the root by dpkg -r: {left}\n{out}"
    assert not (root / "usr/lib/python3/dist-packages/sarra").exists(), \
        sorted(map(str, (root / "usr/lib/python3/dist-packages/sarra").rglob("*")))

    out += dpkg.dpkg("--purge", "sarra")
    status = dpkg.query("-s", "sarra")
    assert status.returncode != 0 and "not installed" in status.stdout, status.stdout
    assert not (root / "var/lib/sarra").exists(), sorted(map(str, root.rglob("*")))
    assert (root / "etc/sarra").is_dir()   # left to the administrator
    leftovers = [str(p) for p in (root / "etc/systemd").rglob("*") if not p.is_dir()]
    leftovers += [str(p) for p in (root / "var/lib/systemd").rglob("*") if not p.is_dir()]
    leftovers += [str(p) for p in (root / "usr").rglob("*")] if (root / "usr").exists() else []
    assert not leftovers, f"left in the root by dpkg --purge: {leftovers}\n{out}"
    assert not list(dpkg.admindir.glob("info/sarra.*"))
    dpkg.assert_host_untouched(before, out)


# ---------------------------------------------------------------- .rpm

# The Fedora macros this spec uses, reduced to what Debian's rpm can run: enough
# to check %prep, %build, %install and that %files matches what is installed.
_RPM_STUB_MACROS = r"""
%python3_sitelib /usr/lib/python3/site-packages
%_unitdir /usr/lib/systemd/system
%pyproject_wheel @PY@ -m pip wheel -q --no-deps --no-build-isolation --no-index -w %{_builddir}/pyproject-wheeldir .
%pyproject_install @PY@ -m pip install -q --no-deps --no-index --no-compile --target %{buildroot}%{python3_sitelib} %{_builddir}/pyproject-wheeldir/*.whl && mkdir -p %{buildroot}%{_bindir} && mv %{buildroot}%{python3_sitelib}/bin/* %{buildroot}%{_bindir}/ && rmdir %{buildroot}%{python3_sitelib}/bin
%systemd_post() %{nil}
%systemd_preun() %{nil}
%systemd_postun() %{nil}
%systemd_postun_with_restart() %{nil}
%__os_install_post %{nil}
"""


# What the .rpm and the .deb hold differently, and why; everything else is in
# both (files, each package's directories, the Python package's files).
RPM_ONLY = {
    # owned by the .rpm (%dir, with their modes); the .deb's postinst makes them
    "/etc/sarra": "dir",
    "/var/lib/sarra": "dir",
    # pip's records of the install, written by the stub %pyproject_install
    # below (dh_python's install of the .deb does not keep them)
    "sarra-VERSION.dist-info/INSTALLER": "file",
    "sarra-VERSION.dist-info/REQUESTED": "file",
    "sarra-VERSION.dist-info/direct_url.json": "file",
}
DEB_ONLY = {
    # Debian policy: every package's changelog.gz and copyright in its doc dir
    "/usr/share/doc/sarra/changelog": "file",
    "/usr/share/doc/sarra/copyright": "file",
}


def test_rpm_spec_builds_the_same_files_as_the_deb(dists, deb, tmp_path):
    rpmbuild = shutil.which("rpmbuild", path=SYSTEM_PATH)
    if rpmbuild is None:
        pytest.skip("rpmbuild is not installed (apt-get install rpm)")
    macros = tmp_path / "macros.stub"
    macros.write_text(_RPM_STUB_MACROS.replace("@PY@", sys.executable), encoding="utf-8")
    env = dict(_system_env(tmp_path))
    proc = _run([rpmbuild, "-bb", "--nodeps", "--define", f"_topdir {tmp_path / 'top'}",
                 "--define", f"_sourcedir {dists['sdist'].parent}", "--load", str(macros),
                 str(REPO / "packaging" / "sarra.spec")], env=env, timeout=180)
    _ok(proc, "rpmbuild -bb (stub Fedora macros)")
    rpms = list((tmp_path / "top" / "RPMS").rglob("sarra-*.noarch.rpm"))
    assert len(rpms) == 1, proc.stdout[-2000:]
    listed = _ok(_run(["rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\\n]",
                       str(rpms[0])], env=env), "rpm -qp (modes and names)")
    rpm_modes = dict(reversed(line.split(" ", 1)) for line in listed.splitlines())

    def comparable(path: str) -> str:
        """The same name for the same thing in either package: no .gz, /usr/lib's
        units, the Python package's files relative to dist- or site-packages."""
        path = _strip_gz(path).replace("/lib/systemd/system/", "/usr/lib/systemd/system/")
        path = path.replace("/usr/usr/", "/usr/")
        path = re.sub(r"^/usr/lib/python3[^/]*/(?:dist|site)-packages/", "", path)
        return path.replace(f"sarra-{__version__}.dist-info", "sarra-VERSION.dist-info")

    def entries(modes: dict[str, str]) -> dict[str, str]:
        return {comparable(f): "dir" if mode.startswith("d") else "file"
                for f, mode in modes.items()}

    rpm = entries(rpm_modes)
    # the .deb lists every directory of its tree (/usr, /usr/share...): only those
    # the .rpm owns are compared, and the .rpm must own those of the package
    deb = {f: kind for f, kind in entries(deb["files"]).items()
           if kind == "file" or f in rpm or f.startswith(("sarra/", "/usr/share/doc/sarra"))}
    assert {"sarra/cli.py", "/usr/bin/sarra", "/usr/share/man/man1/sarra.1"} <= set(rpm)

    def differences(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
        return {f: kind for f, kind in a.items() if b.get(f) != kind}

    assert differences(rpm, deb) == RPM_ONLY, "in the .rpm, not (so) in the .deb"
    assert differences(deb, rpm) == DEB_ONLY, "in the .deb, not (so) in the .rpm"
    assert rpm_modes["/etc/sarra"].startswith("drwxr-x---")
    assert rpm_modes["/var/lib/sarra"].startswith("drwxr-x---")
