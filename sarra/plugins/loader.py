"""Loading the hooks a configuration names, and running their chains.

``on_file WORDS...`` (and on_message, on_part, on_post), repeatable: the
first word names the hook, the others are its arguments (split like a
shell does). The name is a built-in's short name (``BUILTINS``), or a
class, ``package.module:Class`` or ``package.module.Class``, imported when
the flow is built (never eval). Everything that can be wrong with a hook
(unknown name, import error, bad arguments, no method for the stage) is a
ConfigError naming the option, when the tool starts.
"""
import difflib
import logging
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, PluginError, SarraError
from ..message import Message
from ..registry import Registry, load_dotted
from .base import STAGES, HookClass, Verdict, verdict

log = logging.getLogger(__name__)

BUILTINS = Registry("hook", {
    "log": "sarra.plugins.files:Log",
    "move_to": "sarra.plugins.files:MoveTo",
    "exec": "sarra.plugins.command:Exec",
    "size": "sarra.plugins.filters:Size",
    "age": "sarra.plugins.filters:Age",
    "set_complete": "sarra.plugins.sets:SetComplete",
}, error=PluginError)

NAME_WIDTH = 60      # characters of a hook's text in logs and reports


@dataclass
class Bound:
    """One configured hook at one stage: its text and the method to call."""
    name: str
    call: Callable[[Message], Verdict]
    obj: Any


def _resolve(word: str, stage: str) -> HookClass:
    if word in BUILTINS:
        return BUILTINS.get(word)
    if ":" not in word and "." not in word:
        close = difflib.get_close_matches(word, BUILTINS.names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown hook '{word}'{hint}: use a built-in "
                          f"({', '.join(BUILTINS.names())}), package.module:Class "
                          "or exec COMMAND", option=stage)
    return load_dotted(word, PluginError)


def load_hook(cfg, stage: str, spec: str) -> Bound:
    """The hook ``spec`` (``NAME ARGS...``) set up for ``stage`` of ``cfg``'s flow."""
    if stage not in STAGES:
        raise ValueError(f"no hook stage '{stage}'")
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise ConfigError(f"'{spec}': {exc}", option=stage) from None
    if not words:
        raise ConfigError("needs a hook: NAME [ARGS...], package.module:Class [ARGS...] "
                          "or exec COMMAND [ARGS...]", option=stage)
    word, args = words[0], words[1:]
    name = spec if len(spec) <= NAME_WIDTH else spec[:NAME_WIDTH - 3] + "..."
    factory = None
    try:
        factory = _resolve(word, stage)
        if not callable(factory):
            raise PluginError(f"'{word}' is not a class")
        obj = factory(cfg, *args)
    except ConfigError as exc:
        if exc.option:
            raise
        raise ConfigError(f"hook '{name}': {exc.reason}", option=stage) from exc
    except SarraError as exc:
        raise ConfigError(f"hook '{name}': {exc}", option=stage) from exc
    except TypeError as exc:    # the arguments do not fit its constructor
        usage = getattr(factory, "USAGE", None)
        why = f"usage: {usage}" if usage else str(exc)
        raise ConfigError(f"hook '{name}': wrong arguments ({why})", option=stage) from exc
    except Exception as exc:
        raise ConfigError(f"hook '{name}': {exc}", option=stage) from exc
    method = getattr(obj, stage, None)
    if not callable(method):
        has = [s for s in STAGES if callable(getattr(obj, s, None))]
        raise ConfigError(f"hook '{word}' has no {stage}() method (it works at: "
                          f"{', '.join(has) or 'no stage'})", option=stage)
    return Bound(name, method, obj)


class Hooks:
    """The chains of hooks of one flow, one per stage, in configuration order."""

    def __init__(self, chains: dict[str, list[Bound]] | None = None):
        chains = chains or {}
        unknown = set(chains) - set(STAGES)
        if unknown:
            raise ValueError(f"no hook stage {', '.join(sorted(unknown))}")
        self._chains = {s: list(chains.get(s, [])) for s in STAGES}

    def has(self, stage: str) -> bool:
        return bool(self._chains[stage])

    def __bool__(self) -> bool:
        return any(self._chains.values())

    def names(self, stage: str) -> list[str]:
        return [b.name for b in self._chains[stage]]

    def run(self, stage: str, msg: Message) -> bool:
        """Run ``stage``'s chain on ``msg``: True when every hook passed, False
        when one skipped it (the chain ends there). A hook that raises or a
        command that fails is logged (ERROR, traceback at DEBUG) and raised
        as PluginError (its text fits a report): the caller reports the
        message with 503 and carries on."""
        return self.skipped_by(stage, msg) is None

    def skipped_by(self, stage: str, msg: Message) -> str | None:
        """Like ``run``: None when every hook passed, else the name of the
        hook that skipped ``msg``."""
        for hook in self._chains[stage]:
            try:
                passed = verdict(hook.call(msg))
            except Exception as exc:   # a plugin never stops the flow
                text = str(exc) if isinstance(exc, PluginError) else \
                    f"{type(exc).__name__}: {exc}"
                log.error("%s hook '%s' failed on %s: %s", stage, hook.name, msg.relpath, text)
                log.debug("traceback", exc_info=True)
                raise PluginError(f"{stage} hook '{hook.name}' failed: {text}") from exc
            if not passed:
                return hook.name
        return None

    def close(self) -> None:
        """Let every hook that can release what it holds."""
        seen: set[int] = set()
        for chain in self._chains.values():
            for b in chain:
                if id(b.obj) in seen or not callable(getattr(b.obj, "close", None)):
                    continue
                seen.add(id(b.obj))
                try:
                    b.obj.close()
                except Exception as exc:
                    log.warning("closing hook '%s': %s", b.name, exc)


def load_hooks(cfg) -> Hooks:
    """Every hook ``cfg`` names (options on_message, on_part, on_file, on_post),
    each constructed once; ConfigError naming the option at the first bad one."""
    chains: dict[str, list[Bound]] = {}
    for stage in STAGES:
        specs = getattr(cfg, stage, None) or []
        chains[stage] = [load_hook(cfg, stage, spec) for spec in specs]
    return Hooks(chains)
