"""Packaging: sdist and wheel, every tool from a fresh venv, the .deb
(dpkg-buildpackage, its file list, lintian), the rpm spec, the man pages.

Everything is built from a copy of the tree in a temporary directory: nothing
is written into the repository (dpkg-buildpackage writes into the parent of
the source tree, setuptools writes build/ and *.egg-info into it).

No network: the sdist and the wheel are built with ``python -m build
--no-isolation`` (build, wheel and setuptools come with the test extras); the
wheel goes into a new venv with ``--no-deps --no-index``, and the venv finds
the dependencies in this interpreter's site-packages through a .pth file.

The .deb and .rpm tests need dpkg-buildpackage (debhelper, dh-python,
pybuild-plugin-pyproject, lintian) and rpmbuild; tools/setup.sh installs them.
They are skipped, saying why, where those are missing.
"""
from __future__ import annotations

import configparser
import os
import re
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

# the commands every install must provide (sarra is DESIGN.md's `dd`, renamed:
# /usr/bin/dd is coreutils')
TOOLS = ["dd_post", "dd_watch", "dd_subscribe", "dd_sara", "dd_sender", "dd_shovel",
         "dd_winnow", "dd_log", "dd_audit", "sarra"]
# the Python dependencies and their Debian 12 packages
DEB_PYTHON_DEPENDS = {"pika": "python3-pika", "requests": "python3-requests",
                      "xxhash": "python3-xxhash", "watchdog": "python3-watchdog",
                      "PyYAML": "python3-yaml", "psutil": "python3-psutil",
                      "paramiko": "python3-paramiko"}
# the systemd units, kept in debian/ only (the .rpm installs the same files)
UNITS = ["sarra.service", "sarra-sanity.service", "sarra-sanity.timer"]
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
    shutil.copy(REPO / "sarra" / "__init__.py", tmp_path / "sarra")
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
    assert "dd" not in scripts, "`dd` would shadow coreutils' dd"
    assert scripts["sarra"] == "sarra.cli:main_dd"
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    names = {re.split(r"[<>=!~ ;\[]", r, 1)[0] for r in requires}
    assert names == set(DEB_PYTHON_DEPENDS), requires
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
    listed = _ok(_run(["rpm", "-qlp", str(rpms[0])], env=env), "rpm -qlp").split()
    rpm_files = {_strip_gz(f) for f in listed}

    def comparable(path: str) -> str | None:
        path = _strip_gz(path).replace("/lib/systemd/system/", "/usr/lib/systemd/system/")
        path = path.replace("/usr/usr/", "/usr/")
        if path.startswith(("/usr/lib/python3/", "/usr/share/doc/sarra/changelog",
                            "/usr/share/doc/sarra/copyright")):
            return None   # interpreter-specific paths; Debian-only files
        return path

    deb_files = {c for f, mode in deb["files"].items()
                 if not mode.startswith("d") and (c := comparable(f))}
    missing = sorted(deb_files - {comparable(f) for f in rpm_files})
    assert not missing, f"in the .deb, not in the .rpm: {missing}"
    python_files = {f.split("site-packages/", 1)[1] for f in rpm_files if "site-packages/" in f}
    assert "sarra/cli.py" in python_files
    assert {"/etc/sarra", "/var/lib/sarra"} <= rpm_files
