"""Packaging of sarra: one console script per tool, plus ``sarra`` (service-provider mode).

The service-provider command is ``sarra``, not ``dd``: ``dd`` is coreutils'
/usr/bin/dd (a .deb cannot ship it, and a venv on PATH would shadow it).

Metadata lives here (pyproject.toml only names the build backend). The package
is not imported at build time (its dependencies may not be installed yet): the
version is read from sarra/__init__.py, the tools from sarra/tools.py, which
imports nothing.
"""
import importlib.util
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _tools_table():
    spec = importlib.util.spec_from_file_location("_sarra_tools",
                                                  os.path.join(HERE, "sarra", "tools.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# every dd_<tool> console script, and sarra
CONSOLE_SCRIPTS = _tools_table().console_scripts()

# Lower bounds: what the code needs, down to what Debian 12 (bookworm) ships where
# the code works with it (the .deb depends on the python3-* packages); upper
# bounds stop before the next major version. tests/packaging checks bookworm's
# versions against these ranges.
INSTALL_REQUIRES = [
    "pika>=1.2,<2",          # bookworm: python3-pika 1.2.0 (dd_post with confirms checked)
    "requests>=2.28,<3",     # bookworm: python3-requests 2.28.1
    "xxhash>=3.0,<5",        # bookworm: python3-xxhash 3.2.0
    "watchdog>=2.1,<8",      # bookworm has 2.2.1: observer.py adapts to its schedule()
    "PyYAML>=6.0,<7",        # bookworm: python3-yaml 6.0
    "psutil>=5.9,<8",        # bookworm: python3-psutil 5.9.4
    "paramiko>=2.11,<5",     # bookworm: python3-paramiko 2.12.0 (the SFTP transfer)
    "prometheus_client>=0.16,<1",   # bookworm: python3-prometheus-client 0.16.0 (sarra metrics)
]


def _read(name: str) -> str:
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


def _version() -> str:
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']',
                      _read(os.path.join("sarra", "__init__.py")), re.M)
    if not match:
        raise RuntimeError("no __version__ in sarra/__init__.py")
    return match.group(1)


setup(
    name="sarra",
    version=_version(),
    description="File-tree replication and notification switch (v02 AMQP posts and logs)",
    long_description=_read("README.md"),
    long_description_content_type="text/markdown",
    license="GPL-2.0-or-later",
    classifiers=[
        "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking",
    ],
    python_requires=">=3.10",
    packages=find_packages(include=["sarra", "sarra.*"]),
    # the web console's page, script and style (sarra web): served from the package
    package_data={"sarra.web": ["static/*.html", "static/*.js", "static/*.css"]},
    install_requires=INSTALL_REQUIRES,
    # build (+ wheel, which setuptools < 70.1 needs for bdist_wheel): the
    # packaging tests build the sdist and the wheel with `python -m build --no-isolation`
    # mqtt: the MQTT broker driver (paho-mqtt 2.x; bookworm's python3-paho-mqtt is 1.6)
    extras_require={"mqtt": ["paho-mqtt>=2,<3"],
                    "test": ["pytest>=7", "hypothesis>=6", "pytest-timeout>=2",
                             "build>=1", "wheel>=0.40",
                             "selenium>=4.10",      # the web console in headless Chromium
                             "jsonschema>=4",       # WIS2 notification messages against their schema
                             "paho-mqtt>=2,<3"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
    zip_safe=False,
)
