"""sr3 and v2 configuration text -> sarra configuration text (``sarra convert``).

A pure function of the text: each line is kept, rewritten (a camelCase or
old name -> the option's own name, a value an alias changes, an sr3
callback or v2 plugin -> what sarra does instead) or, when sarra has no
meaning for it, commented out with the reason; every line touched is
a ``Change``. sr3's default topic prefixes are v03 (sarra's v02.post): a
file from an sr3 tree that sets none gets ``topic_prefix v03`` (and
``post_topic_prefix v03`` for the tools that post). Converting converted
text changes nothing.
"""
import difflib
from dataclasses import dataclass

from .. import tools
from .options import (ALIAS_ADJUST, HOOKS_INSTEAD, IGNORED, PLUGIN_KEYWORDS, PLUGINS,
                      SPECIAL_KEYWORDS, known_names, lookup, plugin_for)

SR3, V2 = "sr3", "v2"
# how an alias's value becomes the option's (the Change's why)
ADJUSTED = {"no_download": "inverted", "notify_only": "inverted",
            "tlsRigour": "off for lax, on for medium and strict"}
MARK = "#sarra-convert: "        # the start of a line convert commented out
HOOK_STAGES = ("on_message", "on_part", "on_file", "on_post")
# sr3's and v2's component directories -> sarra's tools
COMPONENTS = {"subscribe": "subscribe", "sarra": "sara", "sender": "sender",
              "shovel": "shovel", "winnow": "winnow", "watch": "watch", "post": "post",
              "cpost": "post", "cpump": "shovel", "report": "log"}


@dataclass(frozen=True)
class Change:
    line: int | None          # in the original text (None: added)
    before: str | None        # the line as it was (None: added)
    after: str | None         # what it is now (None: removed)
    why: str
    mappable: bool = True     # False: commented out, sarra has no meaning for it

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "added"
        if not self.mappable:
            return f"{where}: not mappable: {self.before} ({self.why}): commented out"
        if self.before is None:
            return f"{where}: {self.after} ({self.why})"
        if self.after is None:
            return f"{where}: {self.before}: removed ({self.why})"
        return f"{where}: {self.before} -> {self.after}" + (f" ({self.why})" if self.why else "")


def tool_of(component: str) -> str | None:
    """The sarra tool of an sr3/v2 component directory (None: none)."""
    tool = COMPONENTS.get(component, component)
    return tool if tool in tools.CONFIGURED or tool == "post" else None


class _Converter:
    def __init__(self, text: str, tool: str, inherited: set[str]):
        self.text, self.tool = text, tool
        self.sets = set(inherited) | options_set(text)
        self.changes: list[Change] = []
        self.out: list[str] = []
        self.origin: list[int | None] = []     # each output line's line in the original
        self.number: int | None = None

    def emit(self, *lines: str) -> None:
        self.out += lines
        self.origin += [self.number] * len(lines)

    def line(self, number: int, raw: str) -> None:
        self.number = number
        words = raw.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            self.emit(raw)
            return
        keyword, value = words[0], (words[1].strip() if len(words) > 1 else None)
        if keyword in SPECIAL_KEYWORDS:
            if keyword == "declare" and not (value or "").startswith("env "):
                return self.unmappable(number, raw, "only 'declare env NAME=value' has a "
                                       "meaning in a configuration; users, exchanges and "
                                       "permissions are dd_audit's (switch.yaml)")
            self.emit(raw)
        elif keyword in IGNORED:
            self.drop(number, raw, IGNORED[keyword])
        elif keyword in PLUGIN_KEYWORDS or (keyword in HOOK_STAGES and value and
                                            value.split()[0] in PLUGINS and
                                            value.split()[0] != "log"):
            self.plugin(number, raw, value)
        else:
            self.option(number, raw, keyword, value)

    def option(self, number: int, raw: str, keyword: str, value: str | None) -> None:
        found = lookup(keyword)
        if found is None:
            close = difflib.get_close_matches(keyword, known_names(), n=1, cutoff=0.8)
            return self.unmappable(number, raw, "no such option in sarra" +
                                   (f" (did you mean '{close[0]}'?)" if close else ""))
        option, adjust = found
        try:
            new_value = adjust(value) if keyword in ALIAS_ADJUST and adjust else value
        except ValueError as exc:
            return self.unmappable(number, raw, str(exc))
        if option.name == keyword and new_value == value:
            self.emit(raw)
            return
        new = option.name + (f" {new_value}" if new_value is not None else "")
        why = "" if new_value == value else f"{keyword} is {option.name} " \
            f"{ADJUSTED.get(keyword, 'in bytes')}"
        self.replace(number, raw, [new], why)

    def plugin(self, number: int, raw: str, value: str | None) -> None:
        name = (value or "").split()[0] if value else ""
        what = plugin_for(name)
        if what is None:
            return self.unmappable(number, raw, "an sr3 callback or v2 plugin sarra does not "
                                   "have; " + HOOKS_INSTEAD.split(": ", 1)[1])
        kind, detail = what
        if kind == "log" and detail is None:
            if "log_events" in self.sets:
                return self.drop(number, raw, "log_events says where lines are logged")
            self.sets.add("log_events")
            return self.replace(number, raw, ["log_events after_accept,after_work"],
                                "the log callback's points")
        if kind == "log":
            return self.replace(number, raw, [f"{stage} log" for stage in detail],
                                "sarra's log hook")
        if kind == "nodupe":
            new = [] if "nodupe_ttl" in self.sets else ["nodupe_ttl 300"]
            self.sets.add("nodupe_ttl")
            new += [f"nodupe_basis {detail}"] if detail else []
            if not new:
                return self.drop(number, raw, "nodupe_ttl is set")
            return self.replace(number, raw, new, "the duplicate cache")
        self.drop(number, raw, f"sarra does it itself: {detail}")

    # -- what happens to a line -------------------------------------------
    def replace(self, number: int, raw: str, new: list[str], why: str) -> None:
        indent = raw[:len(raw) - len(raw.lstrip())]
        self.emit(*[indent + n for n in new])
        self.changes.append(Change(number, raw.strip(), "; ".join(new), why))

    def drop(self, number: int, raw: str, why: str) -> None:
        self.emit(MARK + raw.strip())
        self.changes.append(Change(number, raw.strip(), None, why))

    def unmappable(self, number: int, raw: str, why: str) -> None:
        self.emit(MARK + raw.strip())
        self.changes.append(Change(number, raw.strip(), None, why, mappable=False))

    def sr3_defaults(self) -> None:
        """sr3's topic prefixes are v03 by default; sarra's v02.post."""
        added = []
        info = tools.tool(self.tool)
        if self.tool == "log":           # v2's sr_report: sr3 has none
            return
        if info.consumes and "topic_prefix" not in self.sets:
            added.append("topic_prefix v03")
        if "post_topic_prefix" not in self.sets:
            added.append("post_topic_prefix v03")
        if added:
            head = [MARK + "sr3's default topic prefix (sarra's is v02.post)"] + added
            self.out, self.origin = head + self.out, [None] * len(head) + self.origin
            self.changes += [Change(None, None, a, "sr3's default; sarra's is v02.post")
                             for a in added]


@dataclass
class Converted:
    text: str
    changes: list[Change]
    origin: list[int | None]     # the original line of each line of ``text`` (None: added)

    def original_line(self, line: int | None) -> int | None:
        """The original's line number for ``line`` of the converted text."""
        return self.origin[line - 1] if line and 0 < line <= len(self.origin) else None


def convert_text(text: str, tool: str, flavour: str = V2,
                 inherited: set[str] | frozenset = frozenset(),
                 whole: bool = True) -> Converted:
    """``text`` (a configuration of ``tool``, from an sr3 or v2 tree) as sarra
    reads it, and the changes made. ``inherited``: options the tree's
    default.conf sets (so sr3's defaults are not added again); ``whole``
    False for default.conf and included files (sr3's defaults go in the
    configurations themselves)."""
    conv = _Converter(text, tool, set(inherited))
    for number, raw in enumerate(text.splitlines(), 1):
        conv.line(number, raw)
    if flavour == SR3 and whole:
        conv.sr3_defaults()
    out = "\n".join(conv.out)
    return Converted(out + ("\n" if text.endswith("\n") or not text else ""), conv.changes,
                     conv.origin)


def options_set(text: str) -> set[str]:
    """The options (their own names) ``text`` sets: a default.conf's, for ``inherited``."""
    found = set()
    for raw in text.splitlines():
        words = raw.split(None, 1)
        if words and not words[0].startswith("#"):
            hit = lookup(words[0])
            if hit:
                found.add(hit[0].name)
    return found
