"""Property and table tests of sarra.codec: round trips, topics, errors."""
import json
import os
import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sarra import checksum, codec
from sarra.codec import v02, v03
from sarra.errors import MessageError
from sarra.message import STATUS_TEXT, Message, Report, format_time
from sarra.parts import MAX_BLOCKS

# characters for path components: anything but '/', NUL and line breaks
# (the v02 body is one line); spaces, '#', '*', '%' and non-ASCII included
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/")
SPECIALS = st.sampled_from([" ", "#", "*", "%", "%2", ".", "..", "é", "日本", "\U0001f600"])
# %20, %23 and %22 in a name are read back as ' ', '#', '*' (doc/protocol.md §2.3)
AMBIGUOUS = re.compile("%2[023]")


NAMES = st.lists(st.one_of(st.text(NAME_CHARS, min_size=1, max_size=12), SPECIALS),
                 min_size=1, max_size=3).map("".join)
LONG_NAMES = st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "#", " ", "日", "*%"]),
                       st.integers(50, 300))


@st.composite
def relpaths(draw):
    comps = draw(st.lists(st.one_of(NAMES, NAMES, LONG_NAMES), min_size=1, max_size=6))
    path = "/".join(comps)
    if draw(st.booleans()):
        path = "/" + path
    assume(not AMBIGUOUS.search(path))
    return path


BASE_URLS = st.sampled_from(["http://host.example.com/", "sftp://user@h:22/", "file:",
                             "https://h/with space/", "http://h/a#b/", "ftp://u@localhost:2121"])
TIMES = st.builds(format_time, st.floats(0, 4e9, allow_nan=False)) | st.sampled_from(
    ["20261125173448.22790432", "20150813161959", "20160302212715.58"])
HEADER_KEYS = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1,
                      max_size=20).filter(lambda k: k not in RESERVED_KEYS)
RESERVED_KEYS = {"sum", "parts", "message", "link", "oldname", "hlink", "mtime", "atime",
                 "content"} | set(v03.RESERVED)
HEADER_VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@st.composite
def content_sums(draw):
    method = draw(st.sampled_from("dsxn0az"))
    if method in "dsxn":
        size = {"d": 16, "s": 64, "x": 16, "n": 16}[method]
        return f"{method},{draw(st.binary(min_size=size, max_size=size)).hex()}"
    if method == "0":
        return f"0,{draw(st.integers(0, 9999)):04d}"
    if method == "a":
        return f"a,{draw(HEADER_VALUES)}"
    return f"z,{draw(st.sampled_from('dsx'))}"


@st.composite
def parts_headers(draw):
    size = draw(st.integers(0, 1 << 40))
    if draw(st.booleans()) or size < 2:
        return f"1,{size},1,0,0"
    bsz = draw(st.integers(max(1, -(-size // MAX_BLOCKS)), size))   # at most MAX_BLOCKS
    blktot, brem = divmod(size, bsz)
    blktot += 1 if brem else 0
    return f"{draw(st.sampled_from('ip'))},{bsz},{blktot},{brem},{draw(st.integers(0, blktot - 1))}"


@st.composite
def messages(draw, report=False):
    relpath = draw(relpaths())
    headers = draw(st.dictionaries(HEADER_KEYS, HEADER_VALUES, max_size=4))
    op = draw(st.sampled_from(["file", "file", "delete", "link", "mkdir", "rmdir"]))
    if op == "file":
        headers["sum"] = draw(content_sums())
        headers["parts"] = draw(parts_headers())
        if draw(st.booleans()):
            headers["mtime"] = headers["atime"] = draw(TIMES)
    elif op == "link":
        headers["link"] = draw(NAMES)
        headers["sum"] = checksum.sum_name("L", headers["link"])
    else:
        headers["sum"] = checksum.sum_name({"delete": "R", "mkdir": "m", "rmdir": "r"}[op],
                                           relpath)
    if draw(st.booleans()):
        headers["oldname"] = draw(relpaths().filter(lambda p: len(p.encode()) <= 255))
    rep = None
    if report:
        word = st.text(NAME_CHARS.filter(lambda c: not c.isspace()), max_size=20)
        rep = Report(draw(st.sampled_from([201, 205, 304, 417, 499, 503])), draw(word),
                     draw(word), draw(st.floats(-1e6, 1e6, allow_nan=False)),
                     draw(HEADER_VALUES))
    return Message(draw(TIMES), draw(BASE_URLS), relpath, headers=headers, report=rep)


def check_topic(topic: str, prefix: str) -> None:
    assert len(topic.encode("utf-8")) <= 255
    assert topic.startswith(prefix)
    assert not re.search(r"[# ]", topic[len(prefix):])


# -- round trips ---------------------------------------------------------------

@settings(max_examples=40, deadline=None, database=None)
@given(msg=messages())
@example(msg=Message("20150813161959.854", "http://h/", "a b/c#d/e*f/%x/" + "é" * 300,
                     headers={"sum": "d," + "0" * 32, "parts": "1,5,1,0,0"}))
def test_v02_post_round_trip(msg):
    topic, headers, body, ctype = codec.encode(msg)
    check_topic(topic, "v02.post")
    assert "\n" not in body and body.count(" ") == 2
    back = codec.decode(topic, headers, body.encode("utf-8"), ctype, "xpublic")
    assert (back.pubtime, back.base_url, back.relpath) == (msg.pubtime, msg.base_url, msg.relpath)
    assert back.headers == msg.headers and back.report is None
    assert back.exchange == "xpublic" and back.topic == topic
    assert codec.encode(back) == (topic, headers, body, ctype)


@settings(max_examples=40, deadline=None, database=None)
@given(msg=messages(report=True))
def test_v02_log_round_trip(msg):
    topic, headers, body, _ = codec.encode(msg, "v02.post")
    check_topic(topic, "v02.report")
    text = msg.report.message or STATUS_TEXT[msg.report.code]   # default text
    assert len(body.split(" ")) == 7 and headers["message"] == text
    back = codec.decode(topic, headers, body)
    assert back.relpath == msg.relpath and back.headers == msg.headers
    assert back.report.code == msg.report.code
    assert (back.report.host, back.report.user) == (msg.report.host, msg.report.user)
    assert "%f" % back.report.duration == "%f" % msg.report.duration
    assert back.report.message == text
    assert codec.encode(back) == (topic, headers, body, "text/plain")


@settings(max_examples=40, deadline=None, database=None)
@given(msg=messages(), prefix=st.sampled_from(["v03", "v03.post"]))
def test_v03_post_round_trip(msg, prefix):
    topic, headers, body, ctype = codec.encode(msg, prefix)
    check_topic(topic, prefix)
    assert headers == {} and ctype == "application/json"
    obj = json.loads(body)
    assert "T" == obj["pubTime"][8] and "sum" not in obj and "parts" not in obj
    back = codec.decode(topic, headers, body.encode("utf-8"), ctype)
    assert (back.pubtime, back.base_url, back.relpath) == (msg.pubtime, msg.base_url, msg.relpath)
    assert back.headers == msg.headers
    assert back.operation == msg.operation and back.size == msg.size
    assert json.loads(codec.encode(back, prefix)[2]) == obj
    # and across formats: v03 -> v02 -> v03
    v2 = codec.decode(*codec.encode(back)[:3])
    assert json.loads(codec.encode(v2, prefix)[2]) == obj


@settings(max_examples=30, deadline=None, database=None)
@given(msg=messages(report=True))
def test_v03_log_round_trip(msg):
    topic, _, body, _ = codec.encode(msg, "v03")
    check_topic(topic, "v03")
    rep = json.loads(body)["report"]
    assert rep["code"] == msg.report.code and rep["message"] == msg.report.message
    assert rep["timeCompleted"][8] == "T"
    back = codec.decode(topic, {}, body)
    assert back.report.code == msg.report.code and back.report.message == msg.report.message
    assert (back.report.host, back.report.user) == (msg.report.host, msg.report.user)
    assert back.headers == msg.headers
    assert json.loads(codec.encode(back, "v03")[2]) == json.loads(body)


# -- topics ------------------------------------------------------------------

@settings(max_examples=75, deadline=None, database=None)
@given(relpath=st.text(st.characters(blacklist_categories=("Cs",)), max_size=400),
       prefix=st.sampled_from(["v02.post", "v02.report", "v03", "v03.post"]))
def test_topic_is_bounded_valid_utf8(relpath, prefix):
    topic = codec.topic_for(prefix, relpath)
    topic.encode("utf-8")
    check_topic(topic, prefix)
    assert ".." not in topic


@pytest.mark.parametrize("relpath,topic", [
    ("foo", "v02.post"), ("/foo", "v02.post"), ("a/b/c/d/foo.txt", "v02.post.a.b.c.d"),
    ("/data/shared/products/foo", "v02.post.data.shared.products"),
    ("a b/c#d/e*f/file", "v02.post.a%20b.c%23d.e*f"), ("a.b/c/", "v02.post.a.b"),
    ("a//b/f", "v02.post.a.b"), ("d01", "v02.post"),
])
def test_topic_words(relpath, topic):
    assert codec.topic_for("v02.post", relpath) == topic


def test_topic_truncation_warns_on_character_boundary(caplog):
    relpath = "/".join(["é" * 30] * 20) + "/f"
    topic = codec.topic_for("v02.post", relpath)
    assert 253 <= len(topic.encode("utf-8")) <= 255
    assert "truncated" in caplog.text


# -- errors ------------------------------------------------------------------

GOOD = {"sum": "d,acbd18db4cc2f85cedef654fccc4a4d8", "parts": "1,3,1,0,0"}
BODY = "20150813161959.854 http://h/ a/b"
LOG = BODY + " 201 host user 0.5"


def v3(**kw):
    obj = {"pubTime": "20150813T161959.854", "baseUrl": "http://h/", "relPath": "a/b",
           "identity": {"method": "md5", "value": "rL0Y20zC+Fzt72VPzMSk2A=="}, "size": 3}
    obj.update(kw)
    return json.dumps({k: v for k, v in obj.items() if v is not DROP})


DROP = object()
BAD = [  # (topic, headers, body, content_type, field)
    ("v02.post", GOOD, "20150813161959.854 http://h/", None, "body"),
    ("v02.post", GOOD, "", None, "body"),
    ("v02.post", GOOD, b"20150813161959.854 http://h/ \xff\xfe", None, "body"),
    ("v02.post", GOOD, "2015081316195 http://h/ a", None, "pubtime"),
    ("v02.post", GOOD, "20151313161959.854 http://h/ a", None, "pubtime"),
    ("v02.post", GOOD, "20150813161959.x http://h/ a", None, "pubtime"),
    ("v02.post", GOOD, "20150813161959.854  a", None, "base_url"),
    ("v02.post", GOOD, "20150813161959.854 http://h/ ", None, "relpath"),
    ("v02.post", {"parts": "1,3,1,0,0"}, BODY, None, "sum"),
    ("v02.post", None, BODY, None, "sum"),
    ("v02.post", {"sum": "nocomma"}, BODY, None, "sum"),
    ("v02.post", {"sum": ",abc"}, BODY, None, "sum"),
    ("v02.post", {**GOOD, "parts": "1,3,1,0"}, BODY, None, "parts"),
    ("v02.post", {**GOOD, "parts": "q,3,1,0,0"}, BODY, None, "parts"),
    ("v02.post", {**GOOD, "parts": "i,3,2,0,2"}, BODY, None, "parts"),
    ("v02.post", {**GOOD, "parts": "i,x,2,0,0"}, BODY, None, "parts"),
    ("v02.post", {**GOOD, "x": b"\xff"}, BODY, None, "headers.x"),
    ("v02.post", ["not", "a", "table"], BODY, None, "headers"),
    ("v02.report", GOOD, BODY, None, "body"),
    ("v02.report", GOOD, LOG + " extra", None, "body"),
    ("v02.log", GOOD, BODY + " 2o1 host user 0.5", None, "code"),
    ("v02.report", GOOD, BODY + " 201 host user fast", None, "duration"),
    ("v02.report", GOOD, BODY + " 201 host user inf", None, "duration"),
    ("v03", {}, "{", None, "json"),
    ("v03", {}, "[1, 2]", None, "json"),
    ("v02.post", {}, '"just a string"', "application/json", "json"),
    ("v03", {}, v3(pubTime=DROP), None, "pubtime"),
    ("v03", {}, v3(pubTime="yesterday"), None, "pubtime"),
    ("v03", {}, v3(baseUrl=5), None, "base_url"),
    ("v03", {}, v3(relPath=DROP), None, "relpath"),
    ("v03", {}, v3(relPath="\ud800"), None, "relpath"),
    ("v03", {}, v3(identity="md5"), None, "identity"),
    ("v03", {}, v3(identity={"method": "md5", "value": "@@@"}), None, "identity"),
    ("v03", {}, v3(identity={"method": "md5"}), None, "identity"),
    ("v03", {}, v3(fileOp="remove"), None, "fileOp"),
    ("v03", {}, v3(fileOp={"link": 5}), None, "fileOp"),
    ("v03", {}, v3(size=-1), None, "size"),
    ("v03", {}, v3(size="big"), None, "size"),
    ("v03", {}, v3(blocks={"method": "magic", "size": 4, "number": 0, "count": 3,
                           "remainder": 2}), None, "blocks"),
    ("v03", {}, v3(blocks={"method": "inplace", "size": 4, "number": 0}), None, "blocks"),
    ("v03", {}, v3(blocks={"method": "inplace", "size": 4, "number": 5, "count": 3,
                           "remainder": 2}), None, "blocks"),
    ("v03", {}, v3(blocks={"method": "inplace", "size": 4, "number": 0,
                           "manifest": {"0": {"size": 4}}, "count": 3}), None, "blocks"),
    ("v03", {}, v3(report={"message": "Downloaded"}), None, "report"),
    ("v03", {}, v3(report=[201]), None, "report"),
    ("v03", {}, v3(report={"code": 201, "timeCompleted": "soon"}), None, "report"),
]


@pytest.mark.parametrize("topic,headers,body,ctype,field", BAD)
def test_malformed_input_names_the_field(topic, headers, body, ctype, field):
    with pytest.raises(MessageError) as info:
        codec.decode(topic, headers, body, ctype)
    assert info.value.field == field, str(info.value)


def post(**headers) -> Message:
    return Message("20150813161959.854", "http://h/", "a/b", headers={**GOOD, **headers})


@pytest.mark.parametrize("prefix", ["v02.post", "v03"])
def test_encode_errors(prefix):
    with pytest.raises(MessageError) as info:
        codec.encode(Message("20150813161959.854", "http://h/", "a/b"), prefix)
    assert info.value.field == "sum"
    with pytest.raises(MessageError) as info:
        codec.encode(Message("20150813161959.854", "http://h/", "", headers=GOOD), prefix)
    assert info.value.field == "relpath"
    with pytest.raises(MessageError) as info:
        codec.encode(Message("now", "http://h/", "a", headers=GOOD), prefix)
    assert info.value.field == "pubtime"
    with pytest.raises(MessageError) as info:
        codec.encode(Message("20150813161959.854", "http://h/", "a\nb", headers=GOOD), prefix)
    assert info.value.field == "relpath"


def test_header_over_255_bytes_is_refused_not_truncated():
    assert codec.encode(post(rename="r" * 255))[1]["rename"] == "r" * 255
    with pytest.raises(MessageError) as info:
        codec.encode(post(rename="r" * 256))
    assert info.value.field == "rename"
    with pytest.raises(MessageError) as info:
        codec.encode(post(rename="é" * 128))          # 256 bytes, 128 characters
    assert info.value.field == "rename"
    with pytest.raises(MessageError) as info:
        codec.encode(post(**{"k" * 256: "v"}))
    assert info.value.field == "k" * 256
    # v03 carries headers in the JSON body: no limit there
    assert json.loads(codec.encode(post(rename="r" * 300), "v03")[2])["rename"] == "r" * 300


def test_log_host_with_space_is_refused():
    msg = post()
    msg.report = Report(201, "my host", "u", 0.0, "Downloaded")
    with pytest.raises(MessageError) as info:
        codec.encode(msg)
    assert info.value.field == "host"


# -- decoding details ----------------------------------------------------------

def test_pika_header_values_become_strings():
    headers = {**GOOD, "b": b"bytes", "i": 5, "d": {"k": [1, 2]}, "n": None, "t": True}
    msg = codec.decode("v02.post", headers, BODY)
    assert msg.headers["b"] == "bytes" and msg.headers["i"] == "5"
    assert json.loads(msg.headers["d"]) == {"k": [1, 2]}
    assert msg.headers["n"] == "" and msg.headers["t"] == "True"


def test_body_escapes_decoded_only_for_20_23_22():
    msg = codec.decode("v02.post", GOOD, "20150813161959.854 http://h/a%20b/ x%20y%23z%22w%41%25")
    assert msg.base_url == "http://h/a b/" and msg.relpath == "x y#z*w%41%25"
    assert codec.encode(msg)[2] == "20150813161959.854 http://h/a%20b/ x%20y%23z*w%41%25"


def test_v02_extra_body_fields_and_trailing_newline():
    msg = codec.decode("v02.post", GOOD, BODY + " future use\nsecond line")
    assert msg.relpath == "a/b"
    assert codec.decode("v02.post", GOOD, BODY + "\r\n").relpath == "a/b"


def test_format_detection():
    assert codec.format_of("v02.post", BODY) == "v02"
    assert codec.format_of("v02.post", ' {"pubTime": 1}') == "v03"
    assert codec.format_of("v02.post", "[1]") == "v03"
    assert codec.format_of("v03.a", BODY) == "v03"
    assert codec.format_of("x", BODY, "application/json; charset=utf-8") == "v03"
    assert codec.format_of("", BODY, "text/plain") == "v02"


def test_v03_identity_conversions():
    cases = [({"method": "cod", "value": "sha512"}, "z,s"),
             ({"method": "cod", "value": "md5"}, "z,d"),
             ({"method": "random", "value": "0042"}, "0,0042"),
             ({"method": "arbitrary", "value": "v1,2"}, "a,v1,2"),
             ({"method": "md5name", "value": "rL0Y20zC+Fzt72VPzMSk2A=="},
              "n,acbd18db4cc2f85cedef654fccc4a4d8"),
             ({"method": "xxh128", "value": "AAAAAAAAAAAAAAAAAAAAAA=="}, "x," + "0" * 32)]
    for identity, sum_header in cases:
        msg = codec.decode("v03", {}, v3(identity=identity))
        assert msg.headers["sum"] == sum_header
        assert json.loads(codec.encode(msg, "v03")[2])["identity"] == identity
    # old key name
    msg = codec.decode("v03", {}, v3(identity=DROP, integrity={"method": "md5",
                                                               "value": "rL0Y20zC+Fzt72VPzMSk2A=="}))
    assert msg.headers["sum"] == "d,acbd18db4cc2f85cedef654fccc4a4d8"


def test_v03_without_identity_gets_md5_of_basename():
    msg = codec.decode("v03", {}, v3(identity=DROP, relPath="x/y/foo"))
    assert msg.headers["sum"] == "n,acbd18db4cc2f85cedef654fccc4a4d8"
    assert "identity" not in json.loads(codec.encode(msg, "v03")[2])
    unknown = {"method": "sha3_256", "value": "AAAA"}
    msg = codec.decode("v03", {}, v3(identity=unknown, relPath="foo"))
    assert msg.headers["sum"] == "n,acbd18db4cc2f85cedef654fccc4a4d8"
    assert json.loads(codec.encode(msg, "v03")[2])["identity"] == unknown


def test_v03_rename_hlink_and_content():
    body = v3(fileOp={"rename": "old/b", "hlink": "c/d", "future": 1},
              content={"encoding": "utf-8", "value": "foo"}, n=[1], mtime="20150813T161959.5")
    msg = codec.decode("v03", {}, body)
    assert msg.headers["oldname"] == "old/b" and msg.headers["hlink"] == "c/d"
    assert msg.headers["mtime"] == "20150813161959.5"
    assert msg.extras["content"] == {"encoding": "utf-8", "value": "foo"}
    assert msg.operation == "file" and msg.size == 3
    assert json.loads(codec.encode(msg, "v03")[2]) == json.loads(body)
    topic, headers, _, _ = codec.encode(msg)
    assert "content" not in headers and headers["oldname"] == "old/b"


def test_v03_transitional_array_and_v02_keys():
    body = json.dumps(["20150813161959.854", "http://h/", "a/b", GOOD])
    msg = codec.decode("v03.post.a", None, body)
    assert msg.headers == GOOD and msg.pubtime == "20150813161959.854"


def test_v03_blocks_with_count_and_remainder():
    blocks = {"method": "partitioned", "size": "4", "count": "3", "remainder": "2", "number": "2"}
    msg = codec.decode("v03", {}, v3(blocks=blocks, size=2))
    assert msg.headers["parts"] == "p,4,3,2,2"
    assert (msg.parts.offset, msg.parts.length, msg.size) == (8, 2, 10)


def test_v03_report_from_late_v2_and_timecompleted():
    msg = codec.decode("v03", {}, v3(report={"resultCode": 201, "elapsedTime": 1.5,
                                             "host": "h", "user": "u"}))
    assert msg.report == Report(201, "h", "u", 1.5, "")
    msg = codec.decode("v03", {}, v3(report={"code": 201, "message": "Downloaded",
                                             "timeCompleted": "20150813T162000.854"}))
    assert msg.report.code == 201 and abs(msg.report.duration - 1.0) < 1e-6
    body = codec.encode(msg, "v02.report")[2]
    assert body.endswith(" 201   1.000000")
    assert json.loads(codec.encode(msg, "v03")[2])["report"]["timeCompleted"] == \
        "20150813T162000.854"


# -- robustness: nothing but MessageError out of the decoders -----------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=4), max_leaves=12)
V03_KEYS = st.sampled_from(["pubTime", "baseUrl", "relPath", "identity", "integrity",
                            "fileOp", "size", "blocks", "report", "mtime", "sum", "parts"])


@st.composite
def v03_objects(draw):
    obj = json.loads(v3())
    for key in draw(st.lists(V03_KEYS, max_size=3)):
        obj[key] = draw(JSON_VALUES)
    return obj


def only_message_errors(fn, *args):
    try:
        fn(*args)
    except MessageError:
        pass


@settings(max_examples=75, deadline=None, database=None)
@given(obj=v03_objects())
def test_v03_decoder_fuzz(obj):
    only_message_errors(v03.decode, "v03", {}, json.dumps(obj))


@settings(max_examples=75, deadline=None, database=None)
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       topic=st.sampled_from(["v02.post", "v02.report", "v02.log", ""]),
       headers=st.dictionaries(st.sampled_from(["sum", "parts", "message", "x"]),
                               JSON_VALUES | st.binary(max_size=10), max_size=4))
def test_v02_decoder_fuzz(body, topic, headers):
    only_message_errors(v02.decode, topic, headers, body)
    only_message_errors(v02.decode, topic, headers, b"20150813161959.854 http://h/ " + body)


@settings(max_examples=30, deadline=None, database=None)
@given(body=st.binary(max_size=100))
def test_dispatcher_fuzz(body):
    for ctype in (None, "application/json", "text/plain"):
        only_message_errors(codec.decode, "v03", None, body, ctype)
        only_message_errors(codec.decode, "v02.post", None, b"{" + body, ctype)


def test_random_bytes_file_name_survives_as_surrogates(tmp_path):
    raw = os.fsdecode(b"caf\xe9")        # a latin-1 file name on a UTF-8 system
    with pytest.raises(MessageError):
        codec.encode(Message("20150813161959.854", "http://h/", raw, headers=GOOD))
    assert checksum.sum_name("n", raw).startswith("n,")


def test_log_message_repeats_the_headers_of_a_bad_post():
    """A log message about a post that lacked a sum (reported 417) is
    itself well formed: it decodes with the post's headers as they were."""
    msg = codec.decode("v02.report", {"parts": "q,z"}, LOG)
    assert msg.report.code == 201 and msg.headers == {"parts": "q,z"}
