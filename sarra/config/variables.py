"""``${...}`` in option values: what each reference is and what it gives.

The references are those of sr3 and v2 configurations (sr3_options(7),
"Variables"; v2's sr_subscribe(1) and UPGRADING), the same meaning here:

- ``${%...}``: a strftime pattern (Python's ``datetime.strftime``: ``%f``
  works), the time in UTC; it may begin with an offset ``%o+N`` or
  ``%o-N`` and a unit s, m, h, d or w (none: seconds): ``${%o-1d%Y%m%d}``
  is yesterday's date. ``%%`` is a percent sign.
- ``${YYYYMMDD}``, ``${YYYY}``, ``${MM}``, ``${DD}``, ``${HH}``, ``${JJJ}``
  (day of the year): v2's date names, UTC, each with an optional offset
  ``-ND`` or ``+ND`` (v2's ``${YYYYMMDD-1D}``; units D, H, M (minutes), S, W).
- ``${0}``, ``${1}``...: the groups of the accept pattern that matched the
  message (``${1}`` the first, ``${0}`` the whole match, as Python numbers
  them; with ``sundew_compat_regex_first_match_is_zero`` ``${0}`` is the first).
- ``${SOURCE}`` (the post's source), ``${BUP}``/``${baseUrlPath}`` (the
  path of its base URL) and ``${BUPL}``/``${baseUrlPathLast}`` (that path's
  last component): per message.
- ``${BD}`` (base_dir), ``${PBD}`` (post_base_dir, base_dir when unset);
  v2's ``${DR}`` and ``${PDR}`` are the same two.
- a name: a built-in of the loader (PROGRAM, CONFIG, HOSTNAME, RANDID,
  BROKER_USER, POST_BROKER_USER) or an environment variable.

Every time is the time of the expansion, plus ``var_time_offset``. This
module knows the forms; sarra/config/loader.py decides when each is
replaced (while loading, or for each message in ``directory`` and
``rename``: sarra/flow/filter.py).
"""
import datetime
import re
from typing import Callable

REF = re.compile(r"\$\{([^{}]*)\}")

DATE_NAMES = {"YYYYMMDD": "%Y%m%d", "YYYY": "%Y", "MM": "%m", "DD": "%d", "HH": "%H",
              "JJJ": "%j"}
_DATE = re.compile(r"(YYYYMMDD|YYYY|MM|DD|HH|JJJ)(?:([+-])(\d+)([DHMSW]))?", re.I)
_OFFSET = re.compile(r"%o([+-])(\d+(?:\.\d*)?|\.\d+)([smhdw]?)(?=%|$)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MESSAGE_VARS = ("SOURCE", "BUP", "BUPL", "baseUrlPath", "baseUrlPathLast")
BASE_VARS = {"BD": "base_dir", "DR": "base_dir", "PBD": "post_base_dir",
             "PDR": "post_base_dir"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# kinds of reference
TIME, GROUP, MESSAGE, BASE, NAME = "time", "group", "message", "base", "name"


def kind(inner: str) -> str | None:
    """What ``${inner}`` is (TIME, GROUP, MESSAGE, BASE, NAME), None when it
    is no reference sarra knows."""
    if inner.startswith("%"):
        return TIME
    if _date(inner):
        return TIME
    if inner.isdigit() and inner.isascii():
        return GROUP
    if inner in MESSAGE_VARS:
        return MESSAGE
    if inner in BASE_VARS:
        return BASE
    if _NAME.fullmatch(inner):
        return NAME
    return None


def _date(inner: str):
    match = _DATE.fullmatch(inner)
    if match and match.group(1) not in DATE_NAMES:   # the name itself is upper case
        return None
    return match


def time_format(inner: str) -> tuple[float, str]:
    """(offset in seconds, strftime pattern) of a TIME reference; ValueError
    with the reason when its form is wrong."""
    date = _date(inner)
    if date:
        name, sign, count, unit = date.groups()
        offset = 0.0
        if sign:
            offset = int(count) * _UNITS[unit.lower()] * (-1 if sign == "-" else 1)
        return offset, DATE_NAMES[name]
    offset, pattern = 0.0, inner
    match = _OFFSET.match(inner)
    if match:
        sign, count, unit = match.groups()
        offset = float(count) * _UNITS[unit] * (-1 if sign == "-" else 1)
        pattern = inner[match.end():]
    elif inner.startswith("%o"):
        raise ValueError(f"'{inner}': an offset is %o+N or %o-N with a unit s, m, h, d "
                         "or w (e.g. %o-1d%Y%m%d)")
    if not pattern:
        raise ValueError(f"'{inner}': no strftime pattern after the offset")
    return offset, pattern


def time_value(inner: str, now: float) -> str:
    """The text of a TIME reference at ``now`` (seconds since the epoch,
    any offset already added), in UTC."""
    offset, pattern = time_format(inner)
    when = datetime.datetime.fromtimestamp(now + offset, datetime.timezone.utc)
    return when.strftime(pattern)


def group_index(inner: str, first_match_is_zero: bool = False) -> int:
    """The regex group a GROUP reference stands for (0: the whole match)."""
    return int(inner) + (1 if first_match_is_zero else 0)


def references(text: str) -> list[str]:
    """The inner text of every ``${...}`` in ``text``, in order."""
    return REF.findall(text or "")


def substitute(text: str, resolve: Callable[[str], str]) -> str:
    """``text`` with each ``${inner}`` replaced by ``resolve(inner)``."""
    if "${" not in text:
        return text
    return REF.sub(lambda m: resolve(m.group(1)), text)


def parse_signed_duration(raw: str | None) -> float:
    """A duration that may be negative: '-5m', '+1h', '30' (seconds)."""
    if raw is None:
        raise ValueError("needs a value")
    match = re.fullmatch(r"\s*([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", raw, re.I)
    if not match:
        raise ValueError(f"'{raw}' is not a duration (e.g. -5m, 1h, 30; s/m/h/d/w)")
    sign, count, unit = match.groups()
    return float(count) * _UNITS[unit.lower()] * (-1 if sign == "-" else 1)
