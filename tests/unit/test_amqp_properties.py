"""The properties of what the AMQP driver publishes are encoded in one pass
(sarra/broker/amqp.py:_Properties): the very bytes pika's encoder gives,
for every header table, content type and expiration; what the one pass
does not do (another property, a value that is not text) is pika's."""
import pika
import pytest
from hypothesis import given, settings, strategies as st

from sarra.broker.amqp import _Properties

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
short = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


def both(**kw):
    ours = _Properties(**kw)
    theirs = pika.BasicProperties(**kw)
    try:
        want = b"".join(theirs.encode())
    except Exception as exc:                    # pika refuses it: so do we
        with pytest.raises(type(exc)):
            ours.encode()
        return None
    got = b"".join(ours.encode())
    assert got == want
    # and pika reads back what it would have read
    back = pika.BasicProperties()
    back.decode(got)
    return back


@settings(max_examples=300, deadline=None)
@given(headers=st.dictionaries(short, text, max_size=15),
       content_type=st.none() | short, mode=st.none() | st.sampled_from([1, 2]),
       expiration=st.none() | st.integers(1, 10**9).map(str) | short)
def test_the_same_bytes_as_pika(headers, content_type, mode, expiration):
    back = both(headers=headers, content_type=content_type, delivery_mode=mode,
                expiration=expiration)
    if back is not None:
        assert back.headers == headers


@pytest.mark.parametrize("kw", [
    dict(headers={"a": 1, "b": "x"}),                      # not text: pika's
    dict(headers={"a": b"bytes"}),
    dict(headers={"a": {"nested": "t"}}),
    dict(headers={"a": "b"}, priority=3, app_id="me"),    # another property
    dict(headers=None, content_type="text/plain"),
    dict(headers={"k" * 256: "v"}),                        # too long a key: pika raises
    dict(headers={"a": "\udc80"}),                          # not encodable: pika raises
    dict(headers={"a": "b"}, content_type=b"bytes/type"),
])
def test_what_the_one_pass_does_not_do_is_pikas(kw):
    both(**kw)
