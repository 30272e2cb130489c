"""The console's configuration builder: a dd_subscribe configuration
composed from the fields of a form, checked by the loader the tools use
(``sarra/config/loader.py:load_config``, on a private copy of the text),
written on request as ``<config_dir>/subscribe/<name>.conf``.

Every field is checked before anything else: a name that is not a plain
file name, a value holding a line break or another control character (it
would add lines, hence options, to the configuration), a password in the
broker URL (passwords live in credentials.conf), an oversized value. An
error is given for the field it concerns; nothing is written unless the
whole configuration loads, and an existing configuration is never
replaced. The result is ``Built``: the text, the errors by field, and the
path written (None: nothing was).
"""
import os
import re
import tempfile
from dataclasses import dataclass, field

from ..config import load_config, paths
from ..config.credentials import mask, strip_password
from ..errors import ConfigError

TOOL = "subscribe"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
VALUE_MAX = 1000          # characters of one value
LIST_MAX = 50             # patterns of one list field
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")
TEXT_FIELDS = ("broker", "exchange", "directory", "strip")
LIST_FIELDS = ("subtopic", "reject", "accept")
# a configuration's option -> the form's field (what a loader error concerns)
OPTION_FIELD = {"broker": "broker", "exchange": "exchange", "subtopic": "subtopic",
                "directory": "directory", "mirror": "mirror", "strip": "strip",
                "accept": "accept", "reject": "reject"}


@dataclass
class Built:
    text: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    written: str | None = None

    def to_json(self) -> dict:
        return {"text": self.text, "errors": self.errors, "written": self.written,
                "ok": not self.errors}


def _value(form: dict, name: str, errors: dict) -> str:
    raw = form.get(name, "")
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        errors[name] = "must be text"
        return ""
    if len(raw) > VALUE_MAX:
        errors[name] = f"longer than {VALUE_MAX} characters"
        return ""
    if CONTROL.search(raw):
        errors[name] = "holds a line break or another control character"
        return ""
    return raw.strip()


def _values(form: dict, name: str, errors: dict) -> list[str]:
    raw = form.get(name, [])
    if isinstance(raw, str):
        raw = raw.split("\n")       # one pattern a line (the text area)
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        errors[name] = "must be a list of patterns"
        return []
    if len(raw) > LIST_MAX:
        errors[name] = f"more than {LIST_MAX} patterns"
        return []
    out = []
    for item in raw:
        item = item.rstrip("\r")
        if len(item) > VALUE_MAX:
            errors[name] = f"a pattern is longer than {VALUE_MAX} characters"
            return []
        if CONTROL.search(item):
            errors[name] = "a pattern holds a control character"
            return []
        if item.strip():
            out.append(item.strip())
    return out


def compose(form: dict) -> tuple[list[tuple[str, str]], str, dict[str, str]]:
    """(lines as (field, text), the name, errors by field) of a form."""
    errors: dict[str, str] = {}
    name = _value(form, "name", errors)
    if "name" not in errors and not NAME.fullmatch(name):
        errors["name"] = ("a name of letters, digits, '.', '_' and '-' (64 at most, "
                          "not starting with '.' or '-')")
    if name.endswith(".conf"):
        errors["name"] = "give the name without '.conf'"
    text = {f: _value(form, f, errors) for f in TEXT_FIELDS}
    lists = {f: _values(form, f, errors) for f in LIST_FIELDS}
    mirror = form.get("mirror", False)
    if not isinstance(mirror, bool):
        errors["mirror"] = "must be true or false"
    if "broker" not in errors:
        if not text["broker"]:
            errors["broker"] = "needed (amqp://user@host/)"
        else:
            if strip_password(text["broker"]) != text["broker"]:
                text["broker"] = mask(text["broker"])       # never shown back
                errors["broker"] = ("no password here: it goes in credentials.conf "
                                    "(amqp://user@host/ names the account)")
    if "directory" not in errors and not text["directory"]:
        errors["directory"] = "needed: where the files go"
    if "accept" not in errors and not lists["accept"]:
        errors["accept"] = "at least one pattern (.* takes everything not rejected)"
    lines = [("broker", f"broker {text['broker']}")]
    if text["exchange"]:
        lines.append(("exchange", f"exchange {text['exchange']}"))
    lines += [("subtopic", f"subtopic {s}") for s in lists["subtopic"]]
    lines.append(("directory", f"directory {text['directory']}"))
    lines.append(("mirror", f"mirror {'on' if mirror is True else 'off'}"))
    if text["strip"]:
        lines.append(("strip", f"strip {text['strip']}"))
    lines += [("reject", f"reject {r}") for r in lists["reject"]]
    lines += [("accept", f"accept {a}") for a in lists["accept"]]
    return lines, name, errors


def build(form: dict, write: bool = False) -> Built:
    """The configuration of ``form``, checked; written when ``write`` and
    nothing is wrong."""
    lines, name, errors = compose(form)
    text = "".join(line + "\n" for _f, line in lines)
    built = Built(text=text, errors=errors)
    if errors:
        return built
    _check(lines, text, built)
    if write and not built.errors:
        _write(name, text, built)
    return built


def _check(lines: list[tuple[str, str]], text: str, built: Built) -> None:
    """Load the text as dd_subscribe would (from a private copy); an error
    is given to the field of its line (or option)."""
    with tempfile.TemporaryDirectory(prefix="sarra-builder-") as tmp:
        path = os.path.join(tmp, "built.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            load_config(TOOL, path)
        except ConfigError as exc:
            where = lines[exc.line - 1][0] if exc.line and exc.file == path and \
                exc.line <= len(lines) else OPTION_FIELD.get(exc.option or "", "name")
            built.errors[where] = exc.reason.replace(path, "the configuration")


def _write(name: str, text: str, built: Built) -> None:
    """``<config_dir>/subscribe/<name>.conf``, whole or not at all, never
    over an existing one (written aside, then linked to its name)."""
    final = paths.config_file(TOOL, name)
    folder = os.path.join(paths.config_dir(), TOOL)
    if os.path.dirname(os.path.abspath(final)) != os.path.abspath(folder):
        built.errors["name"] = "not a plain configuration name"
        return
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, final)
        finally:
            os.unlink(tmp)
    except FileExistsError:
        built.errors["name"] = f"{TOOL}/{name} exists already: choose another name"
        return
    except OSError as exc:
        built.errors["name"] = f"cannot write {final}: {exc.strerror}"
        return
    built.written = final
