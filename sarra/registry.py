"""Lazy name -> "module:attr" tables.

Every family of backends (URL schemes, codecs, plugins...) is one Registry.
Nothing is imported until a name is asked for, so a missing optional package
breaks only the entry that needs it, with a message saying what to install.
"""
import importlib
from typing import Any

from .errors import SarraError


class Registry:
    def __init__(self, family: str, table: dict[str, str],
                 error: type[SarraError] = SarraError,
                 requires: dict[str, str] | None = None):
        self.family = family
        self._table = dict(table)
        self._error = error
        self._requires = requires or {}
        self._loaded: dict[str, Any] = {}

    def names(self) -> list[str]:
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def register(self, name: str, target: str) -> None:
        self._table[name] = target
        self._loaded.pop(name, None)

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        target = self._table.get(name)
        if target is None:
            raise self._error(f"unknown {self.family} '{name}' "
                              f"(known: {', '.join(self.names())})")
        obj = load_dotted(target, self._error, self._requires.get(name))
        self._loaded[name] = obj
        return obj


def load_dotted(target: str, error: type[SarraError] = SarraError,
                package_hint: str | None = None) -> Any:
    """Import ``package.module:Attr`` (or ``package.module.Attr``)."""
    if ":" in target:
        modname, _, attr = target.partition(":")
    else:
        modname, _, attr = target.rpartition(".")
    if not modname or not attr:
        raise error(f"'{target}' is not of the form package.module:Name")
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        hint = f" (pip install {package_hint})" if package_hint else ""
        raise error(f"cannot import {modname} for '{target}': {exc}{hint}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise error(f"module {modname} has no '{attr}'") from None
