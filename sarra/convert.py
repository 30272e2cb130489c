"""``sarra convert``: sr3 (~/.config/sr3) and v2 (~/.config/sarra) trees of
configurations written as sarra configurations (sarra(1)).

Each ``<component>/<name>.conf`` of the tree becomes ``<tool>/<name>.conf``
in sarra's configuration directory (sr3's and v2's ``sarra`` is dd_sara,
v2's ``report`` dd_log...), its text converted line by line
(sarra/config/convert.py), every line changed or not mappable reported.
A configuration is written only if it loads (sarra/manage.py:install, as
``sarra add``); one there already is never replaced by a different text
(converting twice changes nothing; a configuration changed since it was
converted is kept), but for a v2 tree converted in place (sarra's own
directory, ~/.config/sarra: the original kept as NAME.conf.orig). Included files (``*.inc``,
other files of a component directory) are converted beside them,
``default.conf`` too; ``credentials.conf`` lines sarra's lacks are added
to it (mode 0600, never printed).
"""
import os
import sys
from pathlib import Path

from .config import paths
from .config.convert import SR3, V2, convert_text, options_set, tool_of
from .errors import ConfigError
from .manage import install

def default_sources() -> list[tuple[Path, str]]:
    """The trees there are: ~/.config/sr3 (sr3), ~/.config/sarra (v2)."""
    home = Path(os.path.expanduser("~")) / ".config"
    return [(home / d, f) for d, f in (("sr3", SR3), ("sarra", V2)) if (home / d).is_dir()]


def flavour_of(tree: Path) -> str:
    return SR3 if tree.name == "sr3" or (tree / "flow").is_dir() else V2


class Converter:
    """One run of ``sarra convert``: its report lines and whether all went."""

    def __init__(self, dry_run: bool = False):
        self.dry_run = dry_run
        self.lines: list[str] = []
        self.failed = 0
        self.target = Path(paths.config_dir())

    def say(self, text: str) -> None:
        self.lines.append(text)

    def tree(self, root: Path, flavour: str) -> None:
        self.say(f"{flavour} tree {root}:")
        default = root / "default.conf"
        inherited = options_set(default.read_text(encoding="utf-8")) \
            if default.is_file() else set()
        if default.is_file():
            self.file(default, self.target / "default.conf", "subscribe", flavour, set(),
                      check=False)
        if (root / "credentials.conf").is_file():
            self.credentials(root / "credentials.conf")
        for entry in sorted(root.iterdir()):
            if entry.name in ("default.conf", "credentials.conf"):
                continue
            if not entry.is_dir():
                self.say(f"  {entry.name}: not mappable (sr3's admin.conf and others: the "
                         "switch's users and exchanges are dd_audit's switch.yaml): skipped"
                         if entry.suffix == ".conf" else f"  {entry.name}: skipped")
                continue
            tool = tool_of(entry.name)
            if tool is None:
                why = "Python plugins: sarra runs its own hooks, doc/hooks.md" \
                    if entry.name == "plugins" else \
                    f"no sarra tool for sr3's or v2's '{entry.name}'"
                self.say(f"  {entry.name}/: not mappable ({why}): skipped")
                self.failed += entry.name != "plugins"
                continue
            files = sorted(p for p in entry.iterdir() if p.is_file())
            # included files first, so that the configurations' includes are there
            for path in sorted(files, key=lambda p: p.suffix == ".conf"):
                if path.name.endswith(".orig"):      # what an in-place conversion kept
                    continue
                self.file(path, self.target / tool / path.name, tool, flavour, inherited,
                          check=path.suffix == ".conf")   # a .conf.off stays disabled

    def file(self, src: Path, out: Path, tool: str, flavour: str, inherited: set[str],
             check: bool) -> None:
        label = f"{src.parent.name}/{src.name} -> {out.relative_to(self.target)}"
        try:
            text = src.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.say(f"  {label}: cannot read: {exc}")
            self.failed += 1
            return
        done = convert_text(text, tool, flavour, inherited, whole=check)
        new = done.text
        self.say(f"  {label}:" + ("" if done.changes else " no line changed"))
        self.lines += [f"    {c}" for c in done.changes]
        if out.exists():
            if out.read_text(encoding="utf-8") == new:
                self.say("    unchanged (already converted)")
                return
            if out.resolve() != src.resolve():
                self.say(f"    {out} exists with another text (changed since it was "
                         "converted?): kept; remove it to convert again")
                self.failed += 1
                return
        if self.dry_run:
            self.say("    not written (--dry-run)")
            return
        if out.resolve() == src.resolve():         # a v2 tree converted in place
            backup = out.with_name(out.name + ".orig")
            if not backup.exists():
                backup.write_text(text, encoding="utf-8")
                self.say(f"    the original is kept as {backup}")
        try:
            if check:
                install(tool, out.name[:-len(".conf")], new, replace=True, shown=str(src))
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(f".{out.name}.new")
                tmp.write_text(new, encoding="utf-8")
                os.replace(tmp, out)
        except ConfigError as exc:
            if exc.file == str(src):       # the converted text's line: the original's
                line = done.original_line(exc.line)
                exc = ConfigError(exc.reason if line else f"{exc.reason} (in a line sarra "
                                  "convert added)", exc.file, line, exc.option)
            self.say(f"    not written: it does not load: {exc}")
            self.failed += 1
            return
        self.say(f"    written {out}")

    def credentials(self, src: Path) -> None:
        mine = self.target / "credentials.conf"
        have = mine.read_text(encoding="utf-8").splitlines() if mine.exists() else []
        new = [ln for ln in src.read_text(encoding="utf-8").splitlines()
               if ln.strip() and not ln.lstrip().startswith("#") and ln not in have]
        if src.resolve() == mine.resolve() or not new:
            self.say("  credentials.conf: nothing to add")
            return
        if not self.dry_run:
            self.target.mkdir(parents=True, exist_ok=True)
            fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write("".join(ln + "\n" for ln in new))
            os.chmod(mine, 0o600)
        self.say(f"  credentials.conf: {len(new)} line{'s' if len(new) != 1 else ''} "
                 f"added to {mine}" + (" (--dry-run: not written)" if self.dry_run else ""))


def command(args: list[str]) -> int:
    """``sarra convert [DIR ...] [--from sr3|v2] [--dry-run]``."""
    dry = "--dry-run" in args
    args = [a for a in args if a != "--dry-run"]
    flavour = None
    if "--from" in args:
        i = args.index("--from")
        if i + 1 >= len(args) or args[i + 1] not in (SR3, V2):
            print("sarra: --from needs sr3 or v2", file=sys.stderr)
            return 2
        flavour = args[i + 1]
        del args[i:i + 2]
    trees = [(Path(a), flavour or flavour_of(Path(a))) for a in args] or \
        [(t, flavour or f) for t, f in default_sources()]
    for tree, _f in trees:
        if not tree.is_dir():
            print(f"sarra: {tree}: not a directory", file=sys.stderr)
            return 2
    if not trees:
        print("sarra: nothing to convert: neither ~/.config/sr3 nor ~/.config/sarra exists "
              "(name a directory: sarra convert DIR)", file=sys.stderr)
        return 2
    conv = Converter(dry_run=dry)
    for tree, f in trees:
        conv.tree(tree, f)
    print("\n".join(conv.lines))
    return 1 if conv.failed else 0
