"""Time stamps read (sarra/message.py:parse_time, its hour computed once):
what datetime makes of every stamp, valid or not, whatever its hour was
seen before."""
import datetime

import pytest
from hypothesis import given, settings, strategies as st

from sarra.errors import MessageError
from sarra.message import parse_time


def reference(text: str) -> float:
    s = text.strip()
    if len(s) > 8 and s[8] == "T":
        s = s[:8] + s[9:]
    head, _, frac = s.partition(".")
    if len(head) != 14 or not head.isdigit() or (frac and not frac.isdigit()):
        raise MessageError("not a stamp", "time")
    try:
        when = datetime.datetime(int(head[:4]), int(head[4:6]), int(head[6:8]),
                                 int(head[8:10]), int(head[10:12]), int(head[12:14]),
                                 tzinfo=datetime.timezone.utc)
    except ValueError:
        raise MessageError("not a date", "time") from None
    return when.timestamp() + (float("0." + frac) if frac else 0.0)


def outcome(fn, text):
    try:
        return fn(text)
    except MessageError:
        return "refused"


@settings(max_examples=2000, deadline=None)
@given(year=st.integers(0, 9999), fields=st.tuples(*[st.integers(0, 99)] * 5),
       frac=st.none() | st.text("0123456789", max_size=9), t=st.booleans())
def test_parse_time_is_datetimes(year, fields, frac, t):
    text = f"{year:04d}" + "".join(f"{v:02d}" for v in fields)
    if t:
        text = text[:8] + "T" + text[8:]
    if frac is not None:
        text += "." + frac
    assert outcome(parse_time, text) == outcome(reference, text)
    assert outcome(parse_time, text) == outcome(reference, text)    # its hour known now


@pytest.mark.parametrize("text", ["20261204181500", "20261204181560", "20261204186000",
                                  "20260229000000", "20280229235959.999", "2026120418150",
                                  " 20261204T181500.5 ", "20261204181500.", "2026120418150x"])
def test_edges(text):
    assert outcome(parse_time, text) == outcome(reference, text)
