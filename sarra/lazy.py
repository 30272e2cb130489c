"""Modules imported when first used, not when the importing module loads.

Every command line starts a Python process; most of them never touch the
process table (psutil), the broker's HTTP API (requests) or a given broker
driver. ``psutil = lazy.module("psutil")`` binds a stand-in whose first
attribute access imports the module (an ImportError is raised there, as a
top-level import would have raised it at load). tests/unit/test_startup.py
checks what a plain command imports.
"""
import importlib
import sys
from types import ModuleType


class _Deferred:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def _load(self) -> ModuleType:
        mod = sys.modules.get(self._name)
        return mod if mod is not None else importlib.import_module(self._name)

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "loaded" if self._name in sys.modules else "not loaded yet"
        return f"<deferred module {self._name!r} ({state})>"


def module(name: str):
    """A stand-in for ``import name`` that imports it at first use."""
    return _Deferred(name)
