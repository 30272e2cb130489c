"""Managing configurations: ``sarra show``, ``add``, ``edit``, ``remove``,
``enable`` and ``disable`` (sarra(1)).

A configuration is the file ``<config_dir>/<tool>/<name>.conf``; a disabled
one is renamed ``<name>.conf.off`` (as sr3 does), which ``start``,
``sanity`` and every action on all configurations skip, and ``list`` shows
as disabled. Nothing is written that does not load: ``add`` and ``edit``
check the new text as the tool would read it (includes, variables,
options) and leave the configuration as it was when it does not.
"""
import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import service, tools
from .config import load_config, mask, paths
from .config.loader import (COMMAND_LINE, DISABLED, config_hint, did_you_mean,
                            disabled_names, scan_options, show_value)
from .config.options import OPTIONS
from .errors import ConfigError

# where the etc/ examples are: beside the package (a source tree), then where
# the .deb and the .rpm put them
EXAMPLE_DIRS = (Path(__file__).resolve().parents[1] / "etc",
                Path("/usr/share/doc/sarra/examples"))


# the tools whose configurations these actions manage: the daemons', dd_log's,
# and dd_post's (dd_post -c NAME)
MANAGED = tools.CONFIGURED + ("post",)


def split_item(item: str) -> tuple[str, str]:
    """(tool, name) of ``TOOL/NAME`` (a trailing .conf dropped); ConfigError
    naming what is wrong."""
    tool, slash, name = item.partition("/")
    if tool not in MANAGED:
        raise ConfigError(f"'{item}' is not TOOL/CONFIG{did_you_mean(tool, MANAGED)}"
                          f" (tools with configurations: {', '.join(MANAGED)})",
                          option="config")
    if not slash or not name or "/" in name:
        raise ConfigError(f"'{item}': name the configuration, {tool}/NAME", option="config")
    return tool, name[:-5] if name.endswith(".conf") else name


def _existing(tool: str, name: str) -> str:
    path = paths.config_file(tool, name)
    if not os.path.isfile(path):
        raise ConfigError("no such configuration" + config_hint(tool, name), path)
    return path


# ------------------------------------------------------------------- show

def _where(origin: str, main: str | None) -> str:
    """An origin as ``show`` writes it: default, command line, NAME.conf:LINE
    for the configuration's own lines, include FILE:LINE for the others
    (default.conf too)."""
    if origin in ("default", COMMAND_LINE):
        return origin
    file, _, line = origin.rpartition(":")
    if main and os.path.abspath(file) == os.path.abspath(main):
        return f"{os.path.basename(file)}:{line}"
    if os.path.basename(file) == "default.conf":
        return f"default.conf:{line}"
    return f"include {file}:{line}"


def show(tool: str, name: str, overrides: list[tuple[str, str]]) -> list[str]:
    """The effective configuration: every option the tool uses, its value
    (passwords hidden) and where it comes from; then the accept/reject lines."""
    main = _existing(tool, name)
    cfg = load_config(tool, name, overrides, tools.tool(tool).presets)
    unused = set(tools.tool(tool).unused)
    lines = [f"# {tool}/{name}: {main}" + (f" (read: {', '.join(cfg.files)})"
                                            if cfg.files != [main] else "")]
    rows = []
    for option in OPTIONS.values():
        if not option.applies_to(tool) or option.name in unused:
            continue
        value = cfg.get(option.name)
        where = _where(cfg.origin(option.name), main)
        if option.kind == "list" and value:
            rows += [(option.name, mask(str(v)), where) for v in value]   # one a line
        else:
            rows.append((option.name, "none" if value is None else show_value(option, value),
                         where))
    width = min(24, max(len(r[0]) for r in rows))
    vwidth = min(40, max(len(r[1]) for r in rows))
    given = [r for r in rows if r[2] != "default"]     # what was set first, then the defaults
    lines += [f"{n:<{width}}  {v:<{vwidth}}  # {w}"
              for n, v, w in given + [r for r in rows if r[2] == "default"]]
    for m in cfg.masks:
        where = _where(f"{m.file}:{m.line}", main) if m.line else COMMAND_LINE
        placed = f"directory {m.directory}, mirror {'on' if m.mirror else 'off'}" \
            if m.kind == "accept" else ""
        lines.append(f"{m.kind} {mask(m.pattern)}  # {where}"
                     + (f" ({placed})" if placed else ""))
    for note in cfg.notes:
        lines.append(f"# warning: {note}")
    return lines


# ------------------------------------------------------------- add, edit

def example_files() -> dict[str, Path]:
    """The etc/ examples: 'tool/name' -> file."""
    found: dict[str, Path] = {}
    for folder in EXAMPLE_DIRS:
        for tool in MANAGED:
            for f in sorted((folder / tool).glob("*.conf")) if (folder / tool).is_dir() else ():
                found.setdefault(f"{tool}/{f.stem}", f)
    return found


def _check(tool: str, name: str, source: str) -> None:
    """ConfigError unless ``source`` loads as configuration ``tool/name``."""
    load_config(tool, name, [], tools.tool(tool).presets, source=source)


def install(tool: str, name: str, text: str, replace: bool, shown: str) -> str:
    """Write ``text`` as the configuration, checked first (beside the final
    file, so its includes are found as they will be); the final name only
    once it loads. An error names ``shown`` (where the text is) and its line."""
    final = paths.config_file(tool, name)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = os.path.join(os.path.dirname(final), f".{name}.conf.new.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        try:
            _check(tool, name, tmp)
        except ConfigError as exc:
            raise ConfigError(exc.reason, shown if exc.file in (tmp, None) else exc.file,
                              exc.line, exc.option) from None
        if not replace and os.path.exists(final):
            raise ConfigError(f"{tool}/{name} exists already (sarra edit changes it, "
                              "sarra remove removes it)", final)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return final


def add(item: str, source: str | None) -> str:
    """``sarra add TOOL/NAME [FILE]`` (no FILE: the etc/ example TOOL/NAME),
    or ``sarra add TOOL FILE`` (named after FILE). The path written."""
    if source is None:
        tool, name = split_item(item)
        examples = example_files()
        found = examples.get(f"{tool}/{name}")
        if found is None:
            raise ConfigError(f"no example {tool}/{name}{did_you_mean(f'{tool}/{name}', examples)}"
                              f" (examples: {', '.join(sorted(examples)) or 'none found'}); "
                              f"or give a file: sarra add {tool}/{name} FILE", option="config")
        source = str(found)
    elif "/" not in item:
        tool, name = split_item(f"{item}/{os.path.basename(source)}")
    else:
        tool, name = split_item(item)
    if name in disabled_names(tool):
        raise ConfigError(f"{tool}/{name} exists already, disabled (sarra enable enables it)",
                          paths.config_file(tool, name) + ".off")
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source) from None
    return install(tool, name, text, replace=False, shown=source)


def editor() -> list[str]:
    """The editor's command: $VISUAL, else $EDITOR (with its arguments), else vi."""
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(command)


def edit(item: str) -> tuple[str, bool]:
    """``sarra edit TOOL/NAME``: the editor on a copy; the copy replaces the
    configuration only if it loads. (path, changed). A copy that does not
    load is kept (ConfigError says where), the configuration unchanged."""
    tool, name = split_item(item)
    path = _existing(tool, name)
    with open(path, encoding="utf-8") as f:
        before = f.read()
    draft = paths.state_path(tool, name, f"{name}.conf.edit")
    with open(draft, "w", encoding="utf-8") as f:
        f.write(before)
    try:
        rc = subprocess.call(editor() + [draft])
    except OSError as exc:
        raise ConfigError(f"cannot run the editor {' '.join(editor())}: {exc.strerror} "
                          "(set EDITOR)", option="EDITOR") from None
    with open(draft, encoding="utf-8") as f:
        after = f.read()
    if rc != 0:
        raise ConfigError(f"the editor exited {rc}: {tool}/{name} unchanged (your text is "
                          f"in {draft})", option="EDITOR")
    if after == before:
        os.unlink(draft)
        return path, False
    try:
        install(tool, name, after, replace=True, shown=draft)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; not saved: {tool}/{name} is unchanged, your text is in "
                          f"{draft}") from None
    os.unlink(draft)
    return path, True


# ---------------------------------------------- remove, enable, disable

def _stopped_first(tool: str, name: str, what: str) -> None:
    try:
        instances = load_config(tool, name, [], tools.tool(tool).presets).instances
    except ConfigError:          # a broken one may be removed: its pid files say
        numbers = [int(p[-6:-4]) for p in service.pid_files(tool, name)
                   if p[-6:-4].isdigit()]          # <tool>_<config>_NN.pid
        instances = max(numbers, default=1)
    if tools.tool(tool).daemon and service.running(tool, name, instances):
        raise ConfigError(f"{tool}/{name} is running: stop it before you {what} it "
                          f"(sarra stop {tool}/{name})", paths.config_file(tool, name))


def remove(item: str) -> str:
    """``sarra remove TOOL/NAME``: its file (enabled or disabled); not while
    it runs. Its queue and state stay (``sarra cleanup`` first deletes them)."""
    tool, name = split_item(item)
    path = paths.config_file(tool, name)
    if name in disabled_names(tool):
        path += ".off"
    else:
        _existing(tool, name)
        _stopped_first(tool, name, "remove")
    os.unlink(path)
    return path


def disabled_lines(selection: list[str]) -> list[str]:
    """``sarra list``'s lines for the disabled configurations of the tools
    selected (all when none is named; TOOL/NAME items select theirs)."""
    out = []
    for tool in sorted(tools.CONFIGURED):
        for name in disabled_names(tool):
            if not selection or tool in selection or f"{tool}/{name}" in selection:
                path = paths.config_file(tool, name) + ".off"
                out.append(f"{tool}/{name}: {path} (disabled: sarra enable {tool}/{name})")
    return out


def disable(item: str) -> str:
    tool, name = split_item(item)
    if name in disabled_names(tool):
        raise ConfigError(f"{tool}/{name} is disabled already", option="config")
    path = _existing(tool, name)
    _stopped_first(tool, name, "disable")
    os.replace(path, path[:-len(".conf")] + DISABLED)
    return path[:-len(".conf")] + DISABLED


def enable(item: str) -> str:
    tool, name = split_item(item)
    path = paths.config_file(tool, name)
    if name not in disabled_names(tool):
        _existing(tool, name)
        raise ConfigError(f"{tool}/{name} is enabled already", option="config")
    if os.path.exists(path):
        raise ConfigError(f"both {path} and {path}.off exist: remove one", path)
    os.replace(path + ".off", path)
    return path


# ----------------------------------------------------------- the command

MANAGE_ACTIONS = tools.MANAGE_ACTIONS


def command(action: str, args: list[str]) -> int:
    """``sarra ACTION ...`` for the actions of MANAGE_ACTIONS; exit status."""
    try:
        overrides, args = scan_options(args) if action == "show" else ([], args)
        wanted = {"add": (1, 2)}.get(action, (1, 1))
        if not wanted[0] <= len(args) <= wanted[1]:
            raise ConfigError(f"usage: sarra {action} TOOL/CONFIG" +
                              (" [FILE] (or: sarra add TOOL FILE)" if action == "add" else
                               " [--option value ...]" if action == "show" else ""),
                              option="config")
        if action == "show":
            tool, name = split_item(args[0])
            print("\n".join(show(tool, name, overrides)))
        elif action == "add":
            print(f"added {add(args[0], args[1] if len(args) > 1 else None)}")
        elif action == "edit":
            path, changed = edit(args[0])
            print(f"saved {path}" if changed else f"no change: {path}")
        else:
            done = {"remove": remove, "enable": enable, "disable": disable}[action](args[0])
            print(f"{action}d: {done}" if action != "remove" else f"removed {done}")
    except ConfigError as exc:
        print(f"sarra: {exc}", file=sys.stderr)
        return 2
    return 0


