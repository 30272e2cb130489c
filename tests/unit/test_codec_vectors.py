"""Decode every captured sr3 message in tests/vectors (captured from sr3,
see tests/vectors/README.md), and the v02 text
vectors of doc/protocol.md §13.5, and check what each one announces."""
import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from sarra import checksum, codec
from sarra.message import Message, Report
from sarra.parts import Parts

GIB = 1 << 30
BSZ = 128_000_000
LAST_BLOCK = GIB - 8 * BSZ          # 49741824


def vector_dir() -> Path:
    """The captured messages: a copy in tests/vectors (captured
    from sr3), or $SARRA_VECTORS."""
    env = os.environ.get("SARRA_VECTORS")
    if env and Path(env).is_dir():
        return Path(env)
    return Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> list[dict]:
    path = vector_dir() / name
    if not path.is_file():
        pytest.fail(f"missing vector file {path}")
    return json.loads(path.read_text(encoding="utf-8"))["messages"]


def decode(m: dict) -> Message:
    props = m["properties"]
    body = m["body"].encode(m.get("body_encoding", "utf-8"))
    return codec.decode(m["routing_key"], props.get("headers"), body,
                        props.get("content_type"), m["exchange"])


def b64hex(value: str) -> str:
    return base64.b64decode(value).hex()


def by_relpath(name: str) -> dict[str, Message]:
    return {msg.relpath: msg for msg in map(decode, load(name))}


# -- every message of every file ----------------------------------------------

def test_every_vector_decodes():
    files = sorted(vector_dir().glob("*.json"))
    assert len(files) >= 16, f"expected the 16 captured files in {vector_dir()}"
    total = 0
    for path in files:
        for m in json.loads(path.read_text(encoding="utf-8"))["messages"]:
            msg = decode(m)
            total += 1
            assert msg.exchange == m["exchange"] and msg.topic == m["routing_key"]
            assert msg.relpath and msg.base_url and msg.pubtime
            assert msg.sum[0] in checksum.KNOWN_METHODS
            assert msg.report is None
            # every decoded message can be re-encoded in both formats
            codec.encode(msg, "v02.post")
            codec.encode(msg, "v03")
    assert total >= 40


# -- whole files ---------------------------------------------------------------

def test_v02_and_v03_file_describe_the_same_files():
    v02, v03 = by_relpath("v02_file.json"), by_relpath("v03_file.json")
    assert set(v02) == set(v03) == {"d01/f0052.dat", "d01/f0013.dat"}
    raw = {json.loads(m["body"])["relPath"]: json.loads(m["body"]) for m in load("v03_file.json")}
    for relpath, msg in v02.items():
        assert msg.operation == "file" and msg.size == 4096
        assert msg.sum[0] == "s"
        assert msg.sum == v03[relpath].sum
        assert msg.sum[1] == b64hex(raw[relpath]["identity"]["value"])
        assert v03[relpath].headers["parts"] == "1,4096,1,0,0"
        assert v03[relpath].headers["mtime"] == msg.headers["mtime"]
    assert v02["d01/f0052.dat"].sum[1].startswith("de93d7c87b9089f1")


@pytest.mark.parametrize("name", ["v02_file.json", "v02_watch_create.json", "v02_other.json"])
def test_v02_whole_file_reencodes_identically(name):
    for m in load(name):
        headers = m["properties"]["headers"]
        pubtime, base_url, relpath = m["body"].split(" ")
        fresh = Message(pubtime, base_url, relpath, headers=dict(headers))
        topic, out, body, ctype = codec.encode(fresh)
        assert topic == m["routing_key"] and body == m["body"]
        assert out == headers and ctype == "text/plain"
        # and the decoded message re-encodes to the very same thing
        assert codec.encode(decode(m)) == (topic, out, body, ctype)


@pytest.mark.parametrize("name", ["v03_file.json", "v03_watch_create.json",
                                  "v03_bigfile_single.json"])
def test_v03_whole_file_reencodes_identically(name):
    for m in load(name):
        raw = m["body_json"]
        hexsum = b64hex(raw["identity"]["value"])
        headers = {k: v for k, v in raw.items() if isinstance(v, str)
                   and k not in ("pubTime", "baseUrl", "relPath")}
        headers.update(sum=f"s,{hexsum}", parts=f"1,{raw['size']},1,0,0",
                       mtime=raw["mtime"].replace("T", ""),
                       atime=raw["atime"].replace("T", ""))
        fresh = Message(raw["pubTime"].replace("T", ""), raw["baseUrl"],
                        raw["relPath"], headers=headers)
        topic, out, body, ctype = codec.encode(fresh, "v03")
        assert topic == m["routing_key"]
        assert out == {} and ctype == "application/json"
        assert json.loads(body) == raw
        v02_topic, v02_headers, _, _ = codec.encode(fresh, "v02.post")
        assert v02_topic.split(".")[2:] == topic.split(".")[1:]
        assert v02_headers["sum"] == f"s,{hexsum}"
        assert v02_headers["parts"] == f"1,{raw['size']},1,0,0"
        msg = decode(m)
        assert msg.sum == ("s", hexsum) and msg.size == raw["size"]
        assert json.loads(codec.encode(msg, "v03")[2]) == raw


def test_watch_create_sizes():
    (msg,) = map(decode, load("v02_watch_create.json"))
    assert (msg.relpath, msg.size, msg.sum[0], msg.base_url) == \
        ("v02new.txt", 6, "s", "file:/srv/demo/watchsrc/")
    for msg in map(decode, load("v03_watch_create.json")):
        assert msg.operation == "file" and msg.size == 4096
        assert msg.relpath in ("lat0000.dat", "lat0001.dat")


def test_bigfile_single():
    (msg,) = map(decode, load("v03_bigfile_single.json"))
    assert msg.parts == Parts.whole(GIB) and msg.size == GIB
    assert msg.sum[1].startswith("af4986f2d1bd6afd")


def test_block_manifest_file():
    (msg,) = map(decode, load("v02_other.json"))
    assert msg.relpath == "big.bin§block_manifest§" and msg.size == 1621


# -- operations ----------------------------------------------------------------

def test_directories():
    v02, v03 = by_relpath("v02_directory.json"), by_relpath("v03_directory.json")
    assert set(v02) == set(v03) == {"d01", "d09"}
    for relpath in v02:
        for msg in (v02[relpath], v03[relpath]):
            assert msg.operation == "mkdir" and msg.size is None
            assert msg.headers["sum"] == checksum.sum_name("m", relpath)
            assert msg.headers["mode"] == "755"


def test_deletes():
    (v2,) = map(decode, load("v02_delete.json"))
    (v3,) = map(decode, load("v03_delete.json"))
    assert (v2.relpath, v2.operation, v2.size) == ("lat0003.dat", "delete", None)
    assert v2.headers["sum"] == checksum.sum_name("R", "lat0003.dat")
    assert (v3.relpath, v3.operation, v3.size) == ("lat0002.dat", "delete", None)
    assert v3.headers["sum"] == checksum.sum_name("R", "lat0002.dat")
    assert json.loads(codec.encode(v3, "v03")[2])["fileOp"] == {"remove": ""}


def test_symlinks():
    (v2,) = map(decode, load("v02_symlink.json"))
    (v3,) = map(decode, load("v03_symlink.json"))
    assert (v2.relpath, v2.operation, v2.size) == ("link2", "link", None)
    assert "link" not in v2.headers          # the sr3 gap noted in the README
    assert (v3.relpath, v3.operation) == ("link1", "link")
    assert v3.headers["link"] == "lat0001.dat"
    assert v3.headers["sum"] == checksum.sum_name("L", "lat0001.dat")
    topic, headers, body, _ = codec.encode(v3, "v02.post")
    assert headers["link"] == "lat0001.dat" and headers["sum"].startswith("L,")
    assert json.loads(codec.encode(v3, "v03")[2])["fileOp"] == {"link": "lat0001.dat"}


# -- partitioned ------------------------------------------------------------

@pytest.mark.parametrize("name", ["v02_partitioned.json", "v02_partitioned_all.json"])
def test_v02_partitioned(name):
    msgs = list(map(decode, load(name)))
    for msg in msgs:
        p = msg.parts
        assert msg.relpath == "big.bin" and msg.operation == "file"
        assert (p.method, p.bsz, p.blktot) == ("i", BSZ, 9)
        assert p.offset == p.bno * BSZ
        assert p.length == (LAST_BLOCK if p.bno == 8 else BSZ)
        assert p.offset + p.length <= msg.size
        if p.bno == 8:   # only the last block carries a real remainder (sr3 quirk)
            assert msg.size == GIB
    if name.endswith("_all.json"):
        assert sorted(m.parts.bno for m in msgs) == list(range(9))
        assert sum(m.parts.length for m in msgs) == GIB


@pytest.mark.parametrize("name", ["v03_partitioned.json", "v03_partitioned_all.json"])
def test_v03_partitioned(name):
    for m in load(name):
        msg, raw = decode(m), m["body_json"]
        p = msg.parts
        bno = raw["blocks"]["number"]
        assert (p.method, p.bsz, p.blktot, p.bno) == ("i", BSZ, 9, bno)
        assert p.brem == LAST_BLOCK and msg.size == GIB   # derived from the manifest
        assert p.offset == bno * BSZ and p.length == raw["size"]
        assert msg.sum == ("s", b64hex(raw["identity"]["value"]))
        manifest = msg.extras["blocks"]["manifest"]
        assert b64hex(manifest[str(bno)]["identity"]) == msg.sum[1]
        out = json.loads(codec.encode(msg, "v03")[2])
        assert out["blocks"] == raw["blocks"] and out["size"] == raw["size"]
        assert out["identity"] == raw["identity"]


def test_v02_and_v03_blocks_have_the_same_sums():
    v02 = {m.parts.bno: m for m in map(decode, load("v02_partitioned_all.json"))}
    v03 = {m.parts.bno: m for m in map(decode, load("v03_partitioned_all.json"))}
    assert set(v02) == set(v03) == set(range(9))
    for bno in v02:
        assert v02[bno].sum == v03[bno].sum
        assert v02[bno].parts.offset == v03[bno].parts.offset
        assert v02[bno].parts.length == v03[bno].parts.length


# -- doc/protocol.md §13.5 text vectors ------------------------------------

TV2_HEADERS = {"parts": "1,124,1,0,0", "sum": "d,cfbcb85aac0460038babc0c5a8ec0513",
               "from_cluster": "DD", "source": "metpx", "to_clusters": "DD,DDI.CMC,DDI.EDM"}
TV2_REL = "bulletins/alphanumeric/20160328/UA/CWAO/14/UANT01_CWAO_281438___22422"
LOGS = [  # (topic, body, headers, code, duration, topic derivable from relpath)
    ("v02.report.bulletins.alphanumeric.20160328.UA.CWAO.14",
     f"20160328143820.166 http://dd2.weather.gc.ca/ {TV2_REL} 201 "
     "boule.bsqt.example.com anonymous -0.736602",
     {**TV2_HEADERS, "message": "Downloaded"}, 201, -0.736602, True),
    ("v02.report.bulletins.alphanumeric.20160328.UA.CWAO.14.UANT01_CWAO_281438___22422",
     f"20160328143820.166 http://boule.bsqt.example.com/ {TV2_REL} 201 "
     "boule.bsqt.example.com anonymous -0.648599",
     {**TV2_HEADERS, "message": "Published"}, 201, -0.648599, False),
    ("v02.report.observations.swob-ml.20160328.CWRM",
     "20160328130240.645 http://dd2.weather.gc.ca/ observations/swob-ml/20160328/"
     "CWRM/2016-03-28-1300-CWRM-AUTO-swob.xml 201 boule.example.com anonymous 1128.560235",
     {"parts": "1,6451,1,0,0", "sum": "d,f17299b2afd78ae8d894fe85d3236488",
      "from_cluster": "DD", "source": "metpx", "to_clusters": "DD,DDI.CMC,DDI.EDM",
      "rename": "/var/www/html/observations/swob-ml/20160328/CWRM/"
                "2016-03-28-1300-CWRM-AUTO-swob.xml",
      "message": "Downloaded"}, 201, 1128.560235, True),
    ("v02.report.20160302.MSC-CMC.METADATA.ccstn.dat:pull-ccstn:NCP:JICC:5:Codecon:20160302212706",
     "20160302212715.58 http://ddi2.edm.ec.gc.ca/ 20160302/MSC-CMC/METADATA/ccstn.dat:"
     "pull-ccstn:NCP:JICC:5:Codecon:20160302212706 201 dms-op3-host3.edm.ec.gc.ca dms 6.955598",
     {"parts": "1,55024600,1,0,0", "sum": "d,3da695f047174462ebe5d0352f4f8295",
      "from_cluster": "DDI.CMC", "source": "metpx", "to_clusters": "DDI.CMC,DDI.EDM",
      "rename": "/apps/dms/dms-decoder-jicc/data/import/jicc.201603022127.ccstn.dat:"
                "pull-ccstn:NCP:JICC:5:Codecon:20160302212706",
      "message": "Downloaded"}, 201, 6.955598, False),
]


@pytest.mark.parametrize("topic,body,headers,code,duration,same_topic", LOGS)
def test_protocol_log_vectors_round_trip(topic, body, headers, code, duration, same_topic):
    msg = codec.decode(topic, headers, body.encode())
    assert msg.report == Report(code, body.split(" ")[4], body.split(" ")[5],
                                duration, headers["message"])
    assert "message" not in msg.headers
    assert msg.pubtime == body.split(" ")[0]
    out_topic, out_headers, out_body, ctype = codec.encode(msg)
    assert out_body == body and out_headers == headers and ctype == "text/plain"
    assert list(out_headers) == list(headers)       # message stays last
    if same_topic:
        assert out_topic == topic
    else:  # the 2016 topic still carried the file name; ours stops at the directory
        assert topic.startswith(out_topic + ".")
    # the v02.log spelling of DD2015 is accepted too
    legacy = codec.decode(topic.replace(".report.", ".log.", 1), headers, body)
    assert legacy.report == msg.report


def test_tv2_post_and_repost():
    post = codec.decode("v02.post.bulletins.alphanumeric.20160328.UA.CWAO.14", TV2_HEADERS,
                        f"20160328143820.166 http://dd2.weather.gc.ca/ {TV2_REL}")
    assert post.report is None and post.size == 124 and post.sum[0] == "d"
    post.base_url = "http://boule.bsqt.example.com/"
    topic, headers, body, _ = codec.encode(post)
    assert body == f"20160328143820.166 http://boule.bsqt.example.com/ {TV2_REL}"
    assert topic == "v02.post.bulletins.alphanumeric.20160328.UA.CWAO.14"
    assert headers == TV2_HEADERS
    post.report = Report(201, "boule.bsqt.example.com", "anonymous", -0.648599, "Published")
    topic, headers, body, _ = codec.encode(post)      # 'post' becomes 'report'
    assert topic == "v02.report.bulletins.alphanumeric.20160328.UA.CWAO.14"
    assert body == LOGS[1][1] and headers == LOGS[1][2]


def test_tv1_watch_post_v02_and_v03():
    body = "20150813161959.854 sftp://stanley@mysftpserver.com/ /data/shared/products/foo"
    headers = {"parts": "1,256,1,0,0", "sum": "d,25d231ec0ae3c569ba27ab7a74dd72ce",
               "source": "guest"}
    msg = codec.decode("v02.post.20150813.data.shared.products.foo", headers, body,
                       exchange="xs_guest")
    assert msg.relpath == "/data/shared/products/foo" and msg.size == 256
    topic, out, out_body, _ = codec.encode(msg)
    assert topic == "v02.post.data.shared.products"      # the V2 rule
    assert (out, out_body) == (headers, body)
    topic, _, v03_body, _ = codec.encode(msg, "v03")
    assert topic == "v03.data.shared.products"
    assert json.loads(v03_body) == {
        "pubTime": "20150813T161959.854", "baseUrl": "sftp://stanley@mysftpserver.com/",
        "relPath": "/data/shared/products/foo", "size": 256, "source": "guest",
        "identity": {"method": "md5", "value": "JdIx7ArjxWm6J6t6dN1yzg=="}}
    assert codec.decode(topic, {}, v03_body).headers == headers


def test_tv5_sr3_unit_test_message():
    headers = {"atime": "20180118151049.356378078", "from_cluster": "localhost",
               "mode": "644", "parts": "1,69,1,0,0", "source": "tsource",
               "sum": "d,c35f14e247931c3185d5dc69c5cd543e", "to_clusters": "localhost"}
    body = ("20180118151050.45 ftp://anonymous@localhost:2121 "
            "/sent_by_tsource2send/SXAK50_KWAL_181510___58785")
    msg = codec.decode("v02.post.sent_by_tsource2send", headers, body)
    assert msg.url == "ftp://anonymous@localhost:2121/sent_by_tsource2send/SXAK50_KWAL_181510___58785"
    assert codec.encode(msg) == ("v02.post.sent_by_tsource2send", headers, body, "text/plain")


# sha256 of the captured files as they were captured (README.md, beside
# them, describes them and is not a capture)
VECTOR_DIGESTS = {
    "v02_delete.json": "8992c8c46072235b6343530edf51d2c669c9c5bb5f10e7584c074bed818348a0",
    "v02_directory.json": "c28a7a9661ee68c95cd51ca645e66e88926af578808a41b37bc16bbcc60dadf2",
    "v02_file.json": "355d4d06660dbd501c6fd09f41e6ee7381bf31055c31de45a49f4a0caf855bfa",
    "v02_other.json": "bc4735e5e35becfcecc8e40dfa4d4acf508108b80863f01daec0c04083d2bb55",
    "v02_partitioned.json": "ff55cd5ed28ca539af93001cd4a8561fa7b8a1dc6436c02dd2bb4d99266fc7e4",
    "v02_partitioned_all.json": "1a01a1011af40207d0c48fc6d9d0420032a05070c509d0b051f92e346f94f4ed",
    "v02_symlink.json": "d41d912c48248473e13db526508dfa05ccba209a0a822add661450032c5d956b",
    "v02_watch_create.json": "f59247ebae7b15966eee168000d7f8215bf2567afbd94722a8f9a4ccdf031b88",
    "v03_bigfile_single.json": "389fff961bafb4744633cb983417549034b883716d3e070dabc23b0dfb5cfe3a",
    "v03_delete.json": "dff52851c23ce71b0caaf554a4fa02fe9592cc7c9ceff732546a3ee6b13dd41f",
    "v03_directory.json": "b894b6b114eb84aec6a6a12ab012426c70c4adca820dbef038c0bf31029266d2",
    "v03_file.json": "f2ea9f6c83171d520679dd6066a0d86d58897a84dbdc339e3d09554341b0ed92",
    "v03_partitioned.json": "8a9371a06bb568d257a4af0b7e60db95f603f9366d28923df6ac3af44ea19caa",
    "v03_partitioned_all.json": "910cb4692b5232f19012596580b215f656218683734bf93f880eba0ada9f8edd",
    "v03_symlink.json": "20fd39cef6d5bdbaa7652ea1abacb143ba9accd51f36af2982abcd556c717271",
    "v03_watch_create.json": "340539efde0203dba4126f58767e5ccc33cdc82cc8d063315f45276974e398f4",
}


def test_the_vectors_are_the_captured_ones():
    """tests/vectors holds exactly the captured messages, byte for byte."""
    mine = Path(__file__).resolve().parents[1] / "vectors"
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
           for p in mine.iterdir() if p.is_file() and p.name != "README.md"}
    assert got == VECTOR_DIGESTS
