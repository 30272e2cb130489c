"""Property tests: no hostile message escapes the places meant to hold it.

Generated bodies and headers (random bytes; random JSON, JSON nested deep
and lone surrogates; v02 lines of random fields, log fields with durations
such as 1e30; header values over 255 bytes and of odd types: bytes, ints,
floats, None, decimals, dates, nested tables and arrays, some nested
hundreds deep) go through

- ``codec.decode``: only MessageError escapes;
- ``codec.salvage``: nothing escapes;
- the retry queue, for the messages that decoded: ``put``, ``save``, a fresh
  queue loading the file, ``take_due``: nothing escapes, the message comes
  back as it went;
- ``Reporter.report`` on the memory broker: at most MessageError, and what
  it publishes is a log message its source can decode;
- the engine (``Flow.step`` of a subscriber over the memory broker, file:
  downloads, as tests/unit/test_engine.py): every message of a batch of
  such deliveries is settled: the queue is empty, nothing unacknowledged,
  and each message is acknowledged with a log message about it, or kept
  in the quarantine folder.

Bounded (``max_examples``) so that the file runs in a few seconds.
"""
from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sarra import codec
from sarra.broker import Outgoing
from sarra.broker.memory import MemoryBroker
from sarra.components import PRESETS, flow_for
from sarra.config import load_config
from sarra.errors import MessageError
from sarra.flow.publish import Reporter
from sarra.flow.retry import RetryQueue
from sarra.message import Message, format_time
from sarra.worklist import Job

SETTINGS = dict(deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# -- what a hostile sender may put in a message -----------------------------------

SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
AWKWARD = st.sampled_from([" ", "\n", "\r", "\x00", "%20", "%23", "#", "/", "..", "../",
                           "é", "日本", "\U0001f600", "\\", '"', "*"])
WILD = st.lists(st.one_of(st.characters(), SURROGATES, AWKWARD), max_size=12).map("".join)
LONG = st.builds(lambda c, n: c * n, st.sampled_from(["n", "é", "\ud800", "日", " "]),
                 st.integers(250, 400))
TEXT = st.one_of(WILD, LONG, st.text(max_size=8))


def nested(depth: int, kind: str, leaf="x"):
    """A value nested ``depth`` deep (built without recursion)."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


class Deep:
    """A value nested ``depth`` deep, built where it is used (``real``):
    hypothesis prints examples with repr(), which would recurse through it."""

    def __init__(self, depth: int, kind: str):
        self.depth, self.kind = depth, kind

    def __repr__(self) -> str:
        return f"Deep({self.depth}, {self.kind!r})"

    def build(self):
        return nested(self.depth, self.kind)


def real(headers):
    """``headers`` with each Deep value built."""
    if headers is None:
        return None
    return {k: v.build() if isinstance(v, Deep) else v for k, v in headers.items()}


DEEP = st.builds(Deep, st.sampled_from([3, 60, 300, 480, 600, 800, 990, 1500]),
                 st.sampled_from(["list", "dict"]))
DEEP_JSON = st.builds(lambda d, k: ("[" * d + "]" * d) if k == "list"
                      else ('{"a":' * d + "0" + "}" * d),
                      st.sampled_from([1, 60, 300, 480, 600, 800, 990, 1100, 50_000]),
                      st.sampled_from(["list", "dict"]))
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(TEXT, inner, max_size=3)),
                    max_leaves=8)
ODD = st.one_of(TEXT, st.binary(max_size=12), st.integers(-2 ** 70, 2 ** 70), st.floats(),
                st.none(), st.booleans(), st.decimals(allow_nan=False, places=3),
                st.datetimes(), JSON, DEEP)

GOOD_SUM = "d," + hashlib.md5(b"data").hexdigest()
HEADER_VALUES = {
    "sum": st.sampled_from([GOOD_SUM, "s,xyz", "d,", ",", "z,d", "L," + "0" * 128, "R,0",
                            "m,0", "n,zz", "x,00"]),
    "parts": st.sampled_from(["1,4,1,0,0", "p,99999999999999999999,2,5,1",
                              "i,99999999999999999999,2,5,1", "i,2,3,0,2", "p,1,4,0,3",
                              "1,-1,1,0,0", "i,0,0,0,0", "1,99999999999999999999,1,0,0",
                              "i,4611686018427387904,2,0,1"]),
    "mtime": st.sampled_from(["20260101000000.000", "\ud800", "9" * 300, "x"]),
    "atime": st.sampled_from(["20260101000000.000", "\udfff"]),
    "link": st.sampled_from(["../../x", "/etc", "t"]),
    "oldname": st.sampled_from(["a.bin", "../a", "\ud800"]),
    "newname": st.sampled_from(["b.bin", "../../b"]),
    "source": st.sampled_from(["alice", "../x", "", "a b"]),
    "message": TEXT,
}
KNOWN = st.sampled_from(sorted(HEADER_VALUES)).flatmap(
    lambda k: st.tuples(st.just(k), st.one_of(HEADER_VALUES[k], ODD)))
OTHER = st.tuples(st.one_of(TEXT, st.text(min_size=256, max_size=300)), ODD)
HEADERS = st.lists(st.one_of(KNOWN, OTHER), max_size=6).map(dict)


def pubtime() -> str:
    return format_time(time.time())


PUBTIMES = st.one_of(st.builds(pubtime), st.sampled_from(
    ["20261301000000.000", "20260101T000000.000", "0", "99999999999999.999", ""]), WILD)
DURATIONS = st.sampled_from(["1e30", "0.5", "nan", "inf", "-1e300", "1e308", "9" * 400,
                             "3155760000", "-0", "1e-400"])


def base_urls(src: str | None = None):
    local = [f"file:{src}/", f"file:{src}"] if src else ["file:/tmp/"]
    # no host to resolve: nothing waits on the network
    return st.sampled_from(local + ["file:/nonexistent/", "http://127.0.0.1:9/",
                                    "gopher://h/", "relative/", "file:"])


def v02_lines(src: str | None = None):
    report = st.tuples(st.sampled_from(["201", "499", "x", "9" * 30]),
                       st.sampled_from(["host", "h st", ""]), st.sampled_from(["alice", ""]),
                       DURATIONS)
    return st.builds(
        lambda t, b, r, rep, tail: " ".join([t, b, r, *(rep or ())]) + tail,
        PUBTIMES, base_urls(src), st.one_of(st.sampled_from(["a.bin", "d/e f.bin"]), TEXT),
        st.none() | report, st.sampled_from(["", "\n", "\nsecond line", " extra"]))


def v03_bodies(src: str | None = None):
    ident = st.one_of(st.just({"method": "md5",
                               "value": base64.b64encode(hashlib.md5(b"data").digest())
                               .decode()}), JSON)
    rep = st.fixed_dictionaries({"code": st.sampled_from([201, -1, "499", 10 ** 30])},
                                optional={"elapsedTime": st.sampled_from([1e30, 0.25, -1e300,
                                                                          float("inf")]),
                                          "timeCompleted": PUBTIMES, "message": TEXT,
                                          "host": TEXT, "user": TEXT})
    blocks = st.fixed_dictionaries({"method": st.sampled_from(["inplace", "partitioned", "x"]),
                                    "size": st.sampled_from([4, 0, 10 ** 20, -1]),
                                    "number": st.sampled_from([0, 1, 10 ** 20]),
                                    "count": st.sampled_from([1, 2, 10 ** 7]),
                                    "remainder": st.sampled_from([0, 3, 10 ** 20])})
    fileop = st.one_of(st.just({"link": "t"}), st.just({"remove": ""}),
                       st.just({"rename": "a.bin"}), st.just({"directory": ""}), JSON)
    obj = st.fixed_dictionaries(
        {"pubTime": st.one_of(st.builds(lambda: pubtime()[:8] + "T" + pubtime()[8:]),
                              PUBTIMES),
         "baseUrl": base_urls(src),
         "relPath": st.one_of(st.sampled_from(["a.bin", "v3/x.bin"]), TEXT)},
        optional={"identity": ident, "size": st.sampled_from([4, 0, -3, 10 ** 30, "4"]),
                  "report": rep, "blocks": blocks, "fileOp": fileop, "mtime": TEXT,
                  "x_long": LONG, "content": JSON, "integrity": JSON})
    extra = st.dictionaries(TEXT, JSON, max_size=3)
    return st.builds(
        lambda o, e, deep: _with_deep(json.dumps({**e, **o}), deep),
        obj, extra, st.none() | DEEP_JSON)


def _with_deep(body: str, deep: str | None) -> str:
    """``body`` (a JSON object) with a field holding ``deep``."""
    return body if deep is None else body[:-1] + ', "deep": ' + deep + "}"


def bodies(src: str | None = None):
    return st.one_of(st.binary(max_size=64), v02_lines(src), v03_bodies(src), DEEP_JSON,
                     JSON.map(lambda v: json.dumps(v)), TEXT,
                     st.builds(lambda d: d + d, DEEP_JSON))


# mostly sound messages with one hostile part: what gets past the decoder
RELPATHS = st.one_of(st.sampled_from(["a.bin", "d/e f.bin", "v3/x.bin", "new/n.bin",
                                      "../../etc/passwd", "/abs/a.bin", "a.bin/", ".",
                                      "d/\u00e9\ud800.bin"]),
                     st.lists(st.sampled_from(["a", "..", "é", "x y", "#", "日"]), min_size=1,
                              max_size=4).map("/".join))
SOUND_SUMS = st.sampled_from([GOOD_SUM, GOOD_SUM, "d," + hashlib.md5(b"other").hexdigest(),
                              "z,d", "0,1", "s," + hashlib.sha512(b"data").hexdigest(),
                              "n," + hashlib.md5(b"a.bin").hexdigest()])


def _v02_escape(text: str) -> str:
    return text.replace(" ", "%20").replace("#", "%23")


def sound_v02(src: str):
    """(headers, body): a v02 post that decodes, hostile headers added."""
    return st.builds(
        lambda base, rel, s, parts, extra: (
            {**extra, "sum": s, **({"parts": parts} if parts else {})},
            f"{pubtime()} {_v02_escape(base)} {_v02_escape(rel)}"),
        st.one_of(st.just(f"file:{src}/"), base_urls(src)), RELPATHS, SOUND_SUMS,
        st.one_of(st.none(), st.just("1,4,1,0,0"), HEADER_VALUES["parts"]), HEADERS)


def sound_v03(src: str):
    """(headers, body): a v03 post that decodes (mostly), hostile fields added."""
    ident = {"method": "md5", "value": base64.b64encode(hashlib.md5(b"data").digest()).decode()}
    hostile = st.dictionaries(st.sampled_from(["mtime", "atime", "x_long", "content", "deep",
                                               "oldname", "report", "fileOp", "blocks", "link",
                                               "source", "x"]),
                              st.one_of(TEXT, LONG, JSON, st.builds(Deep, st.sampled_from(
                                  [60, 480, 800]), st.sampled_from(["list", "dict"]))),
                              max_size=3)
    return st.builds(
        lambda base, rel, extra, headers: (headers, json.dumps(
            {"pubTime": pubtime()[:8] + "T" + pubtime()[8:], "baseUrl": base, "relPath": rel,
             "identity": ident, "size": 4, **extra}, default=lambda deep: deep.build())),
        st.one_of(st.just(f"file:{src}/"), base_urls(src)), RELPATHS, hostile,
        st.none() | HEADERS)


def messages(src: str = "/tmp"):
    """(headers, body): anything, or a message that mostly decodes."""
    return st.one_of(st.tuples(st.none() | HEADERS, bodies(src)), sound_v02(src), sound_v03(src))


SRC = "/tmp/hostile-engine-src"   # in generated bodies; the engine test puts its src there
V3_DEEP_FIELD = ('{"pubTime": "20260101T000000.000", "baseUrl": "http://127.0.0.1:9/", '
                 '"relPath": "a.bin", "identity": {"method": "md5", "value": '
                 '"jXd/OF09/siBXSD3SWAm3A=="}, "size": 4, "deep": ' + "[" * 600 + "]" * 600
                 + "}")
V3_SURROGATE_SUM = ('{"pubTime": "20260101T000000.000", "baseUrl": "file:' + SRC + '/", '
                    '"relPath": "a.bin", "sum": "\\ud800"}')
V02_POST = "20260101000000.000 file:" + SRC + "/ a.bin"


TOPICS = st.one_of(st.sampled_from(["v02.post.a", "v02.report.a", "v03.post.a", "v03",
                                    "", "v02.post", "v02.log.x"]), WILD)
CONTENT_TYPES = st.one_of(st.none(), st.sampled_from(["application/json", "text/plain",
                                                      "application/json; charset=x"]), WILD)


def wire(body) -> bytes:
    """A body as it comes off a broker: bytes (a str body's surrogates kept as
    the invalid UTF-8 a sender may write)."""
    return body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")


# -- decode, salvage --------------------------------------------------------------

@settings(max_examples=300, **SETTINGS)
@given(TOPICS, messages(), CONTENT_TYPES, st.booleans())
@example("v02.post.a", ({"atime": ["\ud800"]}, V02_POST), None, False)   # salvage raised
@example("v02.post.a", ({"deep": Deep(1500, "list")}, V02_POST), None, True)
def test_decode_raises_only_message_error_and_salvage_nothing(topic, message, ctype, as_bytes):
    headers, body = message
    headers, body = real(headers), wire(body) if as_bytes else body
    try:
        m = codec.decode(topic, headers, body, ctype, "xs_alice")
    except MessageError:
        m = None
    assert m is None or isinstance(m, Message)
    found = codec.salvage(topic, headers, body)
    assert found is None or isinstance(found, Message)
    if found is not None:     # enough to send a log message: short string headers
        assert all(isinstance(v, str) and len(v.encode()) <= 255 for v in found.headers.values())


# -- the retry queue -----------------------------------------------------------

def _same_text(text: str) -> str:
    """``text`` as JSON gives it back: a pair of surrogates (which no broker
    delivers) is read as the one character it stands for."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def fields(m: Message) -> tuple:
    return (tuple(_same_text(t) for t in (m.pubtime, m.base_url, m.relpath, m.topic,
                                          m.exchange)),
            {_same_text(k): _same_text(v) for k, v in m.headers.items()})


@settings(max_examples=150, **SETTINGS)
@given(st.lists(st.tuples(TOPICS, messages(), CONTENT_TYPES), min_size=1, max_size=4))
@example([("v02.post", (None, V3_DEEP_FIELD), None)])      # asdict() raised RecursionError
@example([("v02.post", ({"x": "n" * 300, "y": "\ud800"}, V02_POST.replace(SRC, "/t")), None)])
def test_what_decoded_goes_through_the_retry_queue_and_comes_back(items):
    decoded = []
    for topic, (headers, body), ctype in items:
        try:
            decoded.append(codec.decode(topic, real(headers), wire(body), ctype, "xs_alice"))
        except MessageError:
            pass
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "retry.01.jsonl")
        q = RetryQueue(path, base_delay=0)
        assert q.put([Job(m, tries=1) for m in decoded]) == []
        q.save()
        again = RetryQueue(path, base_delay=0)
        assert len(again) == len(decoded)
        jobs = again.take_due(len(decoded) + 5)
        assert len(jobs) == len(decoded)
        for m, j in zip(decoded, jobs):
            back = j.msg
            assert fields(back) == fields(m)
            assert j.tries == 1
        # settled and saved: the file is empty again
        again.settle(jobs)
        again.save()
        assert len(RetryQueue(path)) == 0


# -- the report encoder -------------------------------------------------------------

@st.composite
def odd_messages(draw):
    """A message as a hook may leave it: any text, headers of any type."""
    return Message(draw(PUBTIMES), draw(TEXT), draw(TEXT),
                   dict(draw(st.lists(st.tuples(TEXT, ODD), max_size=4))),
                   topic=draw(TOPICS), received=draw(st.sampled_from([0.0, time.time()])))


def _surrogate_free(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=150, **SETTINGS)
@given(st.lists(st.one_of(st.tuples(TOPICS, messages(), CONTENT_TYPES), odd_messages()),
                min_size=1, max_size=3),
       st.sampled_from([201, 304, 417, 499, 503, 0]), TEXT)
@example([("v02.post", (None, V02_POST), None)], 417, "invalid message: '\ud800'")
def test_report_raises_at_most_message_error_and_its_log_messages_decode(items, code, text):
    """A message that decoded, or that salvage read, always gets its log
    message (its pubtime is a time), one its source can decode; one a hook
    mangled may not (MessageError), but nothing else escapes."""
    space = f"memory://hostile-report-{uuid.uuid4().hex[:8]}/"
    broker = MemoryBroker(space)
    broker.connect()
    broker.declare_exchange("xs_alice")
    broker.declare_queue("q")
    broker.bind("q", "xs_alice", "#")
    reporter = Reporter(broker, "xs_alice", "alice", "host.example.com")
    sent = []
    for item in items:
        if isinstance(item, Message):
            item.headers = real(item.headers)
            msgs, sound = [item], False
        else:
            topic, (headers, body), ctype = item
            headers = real(headers)
            msgs, sound = [codec.salvage(topic, headers, body)], True
            try:
                msgs.append(codec.decode(topic, headers, wire(body), ctype, "xs_alice"))
            except MessageError:
                pass
        for m in filter(None, msgs):
            m.received = m.received or time.time()
            try:
                reporter.report(m, code, text)
            except MessageError:
                assert not sound, f"no log message about a message that decoded: {m!r}"
                continue
            sent.append((m, sound))
    q = broker._sp().queues["q"]
    assert len(q) == len(sent)
    for (m, sound), d in zip(sent, q):
        assert all(len(str(k).encode()) <= 255 and len(v.encode()) <= 255
                   for k, v in d.headers.items())
        if not sound:
            continue
        rep = codec.decode(d.topic, d.headers, d.body, d.content_type, d.exchange)
        assert rep.report is not None and rep.report.code == code
        assert rep.report.user == "alice"
        if _surrogate_free(m.relpath) and "%2" not in m.relpath:
            assert rep.relpath == m.relpath


# -- the engine ----------------------------------------------------------------------

@contextmanager
def subscriber():
    """A subscriber flow over a fresh memory broker space, its state in a
    fresh directory: (flow, producer, the log messages' queue, src)."""
    tmp = tempfile.mkdtemp(prefix="hostile-engine-")
    saved = {k: os.environ.get(k) for k in ("SARRA_CONFIG_DIR", "SARRA_STATE_DIR")}
    os.environ["SARRA_CONFIG_DIR"] = os.path.join(tmp, "conf")
    os.environ["SARRA_STATE_DIR"] = os.path.join(tmp, "state")
    space = f"memory://hostile-{uuid.uuid4().hex[:8]}/"
    producer = MemoryBroker(space)
    producer.connect()
    for ex in ("xpublic", "xs_anonymous"):
        producer.declare_exchange(ex)
    producer.declare_queue("q_logs")
    producer.bind("q_logs", "xs_anonymous", "#")
    src = os.path.join(tmp, "src")
    os.makedirs(os.path.join(src, "v3"))
    for name in ("a.bin", "v3/x.bin", "d/e f.bin"):
        os.makedirs(os.path.dirname(os.path.join(src, name)), exist_ok=True)
        with open(os.path.join(src, name), "wb") as f:
            f.write(b"data")
    cfg = load_config("subscribe", None, [
        ("broker", space), ("exchange", "xpublic"), ("directory", os.path.join(tmp, "dst")),
        ("mirror", "on"), ("accept", ".*"), ("retry_delay", "0"), ("attempts", "1"),
        ("timeout", "2")], PRESETS["subscribe"])
    flow = flow_for("subscribe", cfg)
    try:
        flow.connect()
        yield flow, producer, src
    finally:
        flow.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)




SUFFIXES = st.sampled_from(["", ".a", ".v3", ".d.x"]) | WILD.map(lambda w: "." + w)
DELIVERY = st.tuples(SUFFIXES, messages(SRC), CONTENT_TYPES).map(lambda t: (t[0], *t[1], t[2]))
V02_DEEP_HEADER = ({"sum": GOOD_SUM, "deep": Deep(800, "list")}, V02_POST)


@settings(max_examples=60, **SETTINGS)
@given(st.lists(DELIVERY, min_size=1, max_size=8))
@example([("", None, V3_SURROGATE_SUM, None)])    # report_malformed: shorten() raised
@example([("", *V02_DEEP_HEADER, None)])           # the in-hand key: _jsonable() recursed
@example([("", None, V3_DEEP_FIELD, None)])       # to the retry queue: asdict() recursed
def test_the_engine_settles_every_message_of_a_hostile_batch(deliveries):
    with subscriber() as (flow, producer, src):
        for n, (suffix, headers, body, ctype) in enumerate(deliveries):
            body = body.replace(SRC, src) if isinstance(body, str) else body
            producer.publish(Outgoing("xpublic", "v02.post" + suffix,
                                      {**(real(headers) or {}), "x-seq": str(n)}, wire(body),
                                      ctype or "text/plain"))
        queue = flow.source.queue
        expected = sum(1 for d in producer._sp().queues[queue])
        flow.step(timeout=0.05)

        assert len(producer._sp().queues[queue]) == 0, "deliveries left in the queue"
        assert flow.source.broker._unacked == {}, "deliveries not acknowledged"
        logs = {}
        for d in producer._sp().queues["q_logs"]:
            rep = codec.decode(d.topic, d.headers, d.body, d.content_type, d.exchange)
            assert rep.report is not None
            logs.setdefault(d.headers.get("x-seq"), []).append(rep.report.code)
            event(f"log {rep.report.code}")
        kept = {}
        for path in glob.glob(os.path.join(flow.quarantine.folder, "*.json")):
            with open(path, encoding="ascii") as f:
                entry = json.load(f)
            record = entry["message"]
            seq = (record.get("headers") or record.get("fields", {}).get("headers") or {})
            kept.setdefault(seq.get("x-seq"), []).append(entry["stage"])
            event(f"kept at {entry['stage']}")
        routed = [d for d in deliveries]          # every one matched v02.post.#
        assert expected == len(routed)
        for n in range(len(deliveries)):
            assert str(n) in logs or str(n) in kept, (
                f"message {n} neither reported nor kept aside: logs {logs}, kept {kept}")
            if str(n) in kept and str(n) in logs:
                assert 417 in logs[str(n)]      # kept aside: reported 417
