"""AMQP topic matching (sarra.broker.base.topic_matches).

The rules (AMQP 0-9-1 topic exchange, as RabbitMQ applies them): a routing
key and a binding key are lists of words separated by '.'; an empty key has
no words at all, while '.' is two empty words. In a binding, '*' stands for
exactly one word (possibly empty) and '#' for zero or more words. The table
below was checked against RabbitMQ 127.0.0.1:5672; the contract tests in
tests/integration/test_broker_contract.py run part of it on both drivers.
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sarra.broker import topic_matches


def words(key: str) -> list[str]:
    """A key's words: '' has none, '.' has two empty ones."""
    return key.split(".") if key else []


def reference_match(pattern: str, topic: str) -> bool:
    """Plain recursive word matcher: the obvious reading of the AMQP rules."""
    def match(p: list[str], t: list[str]) -> bool:
        if not p:
            return not t
        head, rest = p[0], p[1:]
        if head == "#":
            # zero words, or swallow one word and stay on '#'
            return match(rest, t) or (bool(t) and match(p, t[1:]))
        if not t:
            return False
        if head == "*" or head == t[0]:
            return match(rest, t[1:])
        return False
    return match(words(pattern), words(topic))


# (pattern, topic, matches) — every row agrees with RabbitMQ
TABLE = [
    # '#' alone: anything, including the empty key
    ("#", "", True), ("#", "a", True), ("#", "a.b.c", True), ("#", ".", True),
    # '*' alone: exactly one word (which may be empty); the empty key has none
    ("*", "a", True), ("*", "", False), ("*", "a.b", False), ("*", ".", False),
    ("*", "ab", True),
    # 'a.#': a, then zero or more words
    ("a.#", "a", True), ("a.#", "a.b", True), ("a.#", "a.b.c", True), ("a.#", "a.", True),
    ("a.#", "ab", False), ("a.#", "b.a", False), ("a.#", "", False),
    # '#.b': zero or more words, then b
    ("#.b", "b", True), ("#.b", "a.b", True), ("#.b", "x.y.b", True), ("#.b", ".b", True),
    ("#.b", "ab", False), ("#.b", "x.ab", False), ("#.b", "b.a", False), ("#.b", "", False),
    # 'a.#.c': a, anything, c
    ("a.#.c", "a.c", True), ("a.#.c", "a.b.c", True), ("a.#.c", "a.b.b.c", True),
    ("a.#.c", "a..c", True), ("a.#.c", "ac", False), ("a.#.c", "a.bc", False),
    ("a.#.c", "a.c.d", False), ("a.#.c", "a", False),
    # '*' with other words
    ("a.*", "a.b", True), ("a.*", "a.", True), ("a.*", "a", False), ("a.*", "a.b.c", False),
    ("*.b", "a.b", True), ("*.b", ".b", True), ("*.b", "b", False),
    ("*.*", "a.b", True), ("*.*", ".", True), ("*.*", "a", False), ("*.*", "a.b.c", False),
    ("a.*.#", "a.b", True), ("a.*.#", "a.b.c.d", True), ("a.*.#", "a", False),
    # '*.#' and '#.*': at least one word
    ("*.#", "a", True), ("*.#", "a.b.c", True), ("*.#", ".", True), ("*.#", "", False),
    ("#.*", "a", True), ("#.*", "a.b", True), ("#.*", "", False),
    # repeated '#' means the same as one
    ("#.#", "", True), ("#.#", "a.b", True), ("#.#.b", "b", True), ("#.#.b", "a.b", True),
    ("#.#.b", "a", False), ("a.#.#.b", "a.b", True), ("a.#.#.b", "a.x.y.b", True),
    # '#' in the middle and at both ends
    ("#.a.#", "a", True), ("#.a.#", "x.a.y", True), ("#.a.#", "xa", False),
    # empty words are words
    ("a..b", "a..b", True), ("a..b", "a.b", False), ("a.*.b", "a..b", True),
    ("", "", True), ("", "a", False), (".", ".", True), (".", "", False),
    # literal text: regex characters are not special, prefixes are not matches
    ("v02.post.a+b", "v02.post.a+b", True), ("v02.post.a+b", "v02.post.aab", False),
    ("a.b", "a.bc", False), ("a.b", "a.b.c", False), ("a.b(", "a.b(", True),
    ("v02.post.#", "v02.post", True), ("v02.post.#", "v02.postx", False),
    ("v02.post.#", "v02.report.a", False),
]


@pytest.mark.parametrize("pattern,topic,expected", TABLE)
def test_table(pattern, topic, expected):
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize("pattern,topic,expected", TABLE)
def test_reference_matcher_agrees_with_table(pattern, topic, expected):
    """The reference matcher used by the property below is itself right."""
    assert reference_match(pattern, topic) is expected


def test_topic_words_may_contain_newlines_and_unicode():
    assert topic_matches("a.*", "a.x\ny")
    assert topic_matches("#.é", "a.é")
    assert not topic_matches("a.*", "a.x\n.y")


_word = st.sampled_from(["a", "b", "", "ab"])
_pattern_word = st.sampled_from(["a", "b", "", "*", "#"])


@settings(max_examples=600, deadline=None)
@given(st.lists(_pattern_word, max_size=5), st.lists(_word, max_size=5),
       st.booleans(), st.booleans())
def test_property_same_as_reference(pattern_words, topic_words, empty_pattern, empty_topic):
    pattern = "" if empty_pattern and not pattern_words else ".".join(pattern_words)
    topic = "" if empty_topic and not topic_words else ".".join(topic_words)
    assert topic_matches(pattern, topic) is reference_match(pattern, topic), (pattern, topic)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab.*#", max_size=3).filter(lambda w: "." not in w),
                max_size=4),
       st.lists(st.text(alphabet="ab.", max_size=3).filter(lambda w: "." not in w),
                max_size=4))
def test_property_words_with_wildcard_characters_inside(pattern_words, topic_words):
    """'*' and '#' are wildcards only as whole words: 'a*' or '#b' is literal."""
    pattern, topic = ".".join(pattern_words), ".".join(topic_words)
    assert topic_matches(pattern, topic) is reference_match(pattern, topic), (pattern, topic)


def test_many_hashes_do_not_backtrack_forever():
    pattern = ".".join(["#", "a"] * 12 + ["c"])
    topic = ".".join(["a"] * 40 + ["b"])
    assert not topic_matches(pattern, topic)
