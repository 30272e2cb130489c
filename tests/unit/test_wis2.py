"""WIS2 notification messages (sarra/codec/wis2.py, doc/protocol.md §16):
the official examples decode, what sarra writes validates against the
official schema (jsonschema), and the decoder refuses what the schema
refuses, naming the field."""
from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from sarra import checksum, codec
from sarra.codec import wis2
from sarra.config import load_config
from sarra.errors import ConfigError, MessageError
from sarra.message import Message
from tests.helpers import wis2_validator

HERE = Path(__file__).resolve().parents[1] / "vectors" / "wis2"
DIGESTS = {
    "example1.json": "868b8c75ebc88c63eadcbdd0e8f765f99f1a4198dda6c7b5c894de634dab799f",
    "example2.json": "08dc4a20205041d9a7549fac69b8b1aec81345e28966c245859ddab49fd6cad5",
    "example3.json": "13b6152a9efa31e67ab1232f87dabc7f4f550c14f449745cecf68f725e8ab497",
    "example4.json": "c8f2abfc1b6a96378420d23e5dc3c05a3047e18f149a9e2d6b24e2d13e9dc4c0",
    "wis2-notification-message-bundled.json":
        "b5df5cab6669081644f7cc7b25182de47f0c16c00ee86e392d2f8b663299d1a7",
}
EXAMPLES = sorted(n for n in DIGESTS if n.startswith("example"))
SHA512 = "s," + hashlib.sha512(b"obs").hexdigest()


def example(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def test_the_schema_and_examples_are_the_published_ones():
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
           for p in HERE.iterdir() if p.name != "README.md"}
    assert got == DIGESTS


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_decodes_and_encodes_back_to_itself(name):
    text = example(name)
    assert codec.format_of("", text) == "wis2"
    msg = codec.decode("a.wis2.x", None, text, exchange="origin")
    assert msg.url == json.loads(text)["links"][0]["href"]
    topic, headers, body, ctype = codec.encode(msg, "ignored", post_format="wis2",
                                               topic="a.wis2.x")
    assert (topic, headers, ctype) == ("a.wis2.x", {}, "application/geo+json")
    assert json.loads(body) == json.loads(text)
    wis2_validator().validate(json.loads(body))


def test_what_the_examples_announce():
    one = codec.decode("", None, example("example1.json"))
    assert one.base_url == "https://example.org/"
    assert one.relpath == "data/4Pubsub/92c557ef-d28e-4713-91af-2e2e7be6f8ab.bufr4"
    assert one.pubtime == "20220320045018" and one.operation == "file"
    # the example's integrity value is a placeholder, not base64: unverifiable
    assert one.sum == ("a", "A2KNxvks...S8qfSCw==")
    assert one.extras["wnm"]["properties"]["metadata_id"] == \
        "urn:wmo:md:ca-eccc-msc:observations.swob"
    assert codec.decode("", None, example("example3.json")).sum[0] == "n"
    gone = codec.decode("", None, example("example4.json"))
    assert gone.operation == "delete"


def post(relpath="obs/synop/a b.bufr4", sum_=SHA512, **headers) -> Message:
    return Message("20261203120000.125", "http://127.0.0.1:8080/", relpath,
                   {"sum": sum_, "parts": "1,3,1,0,0", **headers})


@pytest.mark.parametrize("method", ["sha256", "sha384", "sha512", "sha3-256", "sha3-384",
                                    "sha3-512"])
def test_every_wis2_method_is_written_verified_and_read_back(tmp_path, method):
    data = tmp_path / "f"
    data.write_bytes(b"obs")
    letter = wis2.METHODS[method]
    msg = post(sum_=checksum.sum_file(str(data), letter))
    body = codec.encode(msg, "a.wis2", post_format="wis2")[2]
    obj = json.loads(body)
    wis2_validator().validate(obj)
    want = base64.b64encode(hashlib.new(method.replace("-", "_"), b"obs").digest()).decode()
    assert obj["properties"]["integrity"] == {"method": method, "value": want}
    back = codec.decode("a.wis2", None, body)
    assert back.headers["sum"] == msg.headers["sum"]
    assert checksum.verify_method(back.headers["sum"]) == letter


def test_md5_of_older_messages_is_read_but_not_written():
    obj = json.loads(example("example3.json"))
    obj["properties"]["integrity"] = {"method": "md5",
                                      "value": base64.b64encode(hashlib.md5(b"x").digest()).decode()}
    with pytest.raises(MessageError, match="properties.integrity.method"):
        codec.decode("", None, json.dumps(obj))     # not in WNM 1.1.0's list
    body = codec.encode(post(sum_="d," + hashlib.md5(b"x").hexdigest()), "p",
                        post_format="wis2")[2]
    assert "integrity" not in json.loads(body)["properties"]   # no WIS2 method for it
    wis2_validator().validate(json.loads(body))


def test_a_post_in_wis2():
    msg = post(mtime="20261203115959.5", source="alice")
    topic, _h, body, _c = codec.encode(msg, "a.wis2.ca-x.data", post_format="wis2",
                                       metadata_id="urn:wmo:md:ca-x:synop",
                                       data_id="ca-x/synop/{basename}")
    obj = json.loads(body)
    wis2_validator().validate(obj)
    assert topic == "a.wis2.ca-x.data.obs.synop"
    assert obj["geometry"] is None and obj["type"] == "Feature"
    props = obj["properties"]
    assert props["pubtime"] == "2026-12-03T12:00:00.125Z"
    assert props["datetime"] == "2026-12-03T11:59:59.5Z"
    assert props["data_id"] == "ca-x/synop/a b.bufr4"
    assert props["metadata_id"] == "urn:wmo:md:ca-x:synop"
    assert props["source"] == "alice"
    assert obj["links"] == [{"href": "http://127.0.0.1:8080/obs/synop/a%20b.bufr4",
                             "rel": "canonical", "type": "application/bufr", "length": 3}]
    back = codec.decode(topic, None, body)
    assert (back.url, back.pubtime, back.headers["parts"], back.headers["source"]) == \
        (msg.url, msg.pubtime, "1,3,1,0,0", "alice")
    # the same post twice is the same message (its id); another file another
    assert codec.encode(msg, "a", post_format="wis2")[2] == \
        codec.encode(msg, "a", post_format="wis2")[2]
    other = json.loads(codec.encode(post("obs/b"), "a", post_format="wis2")[2])
    assert other["id"] != obj["id"]
    no_time = json.loads(codec.encode(post(), "a", post_format="wis2")[2])
    assert no_time["properties"]["datetime"] is None


def test_a_removal_is_a_deletion_link_and_what_wis2_cannot_say_is_refused():
    gone = post(sum_="R," + "0" * 128)
    gone.headers.pop("parts")
    obj = json.loads(codec.encode(gone, "a", post_format="wis2")[2])
    wis2_validator().validate(obj)
    assert obj["links"][0]["rel"] == "deletion" and "integrity" not in obj["properties"]
    with pytest.raises(MessageError, match="sum: a mkdir has no WIS2 form"):
        codec.encode(post(sum_="m," + "0" * 128), "a", post_format="wis2")
    with pytest.raises(MessageError, match="parts"):
        codec.encode(post(parts="i,1,3,0,1"), "a", post_format="wis2")


def test_v03_carries_what_v02_cannot_of_a_wnm():
    msg = codec.decode("", None, example("example2.json"))
    again = codec.decode("v03.x", None, codec.encode(msg, "v03.post")[2])
    body = codec.encode(again, "a", post_format="wis2", topic="a.b")[2]
    assert json.loads(body) == json.loads(example("example2.json"))


# the schema and the decoder agree: each mutation of a valid message is
# refused by both (the decoder naming the field) or accepted by both
def _drop(path):
    def change(obj):
        *head, last = path
        for key in head:
            obj = obj[key]
        del obj[last]
    return change


def _set(path, value):
    def change(obj):
        *head, last = path
        for key in head:
            obj = obj[key]
        obj[last] = value
    return change


MUTATIONS = {
    "no id": (_drop(["id"]), "id"),
    "id not a string": (_set(["id"], 7), "id"),
    "no conformsTo": (_drop(["conformsTo"]), "conformsTo"),
    "conformsTo other": (_set(["conformsTo"], ["http://x"]), "conformsTo"),
    "type": (_set(["type"], "FeatureCollection"), "type"),
    "no geometry": (_drop(["geometry"]), "geometry"),
    "geometry line": (_set(["geometry"], {"type": "LineString", "coordinates": [[1, 2]]}),
                      "geometry.type"),
    "point of one": (_set(["geometry"], {"type": "Point", "coordinates": [1]}),
                     "geometry.coordinates"),
    "no properties": (_drop(["properties"]), "properties"),
    "no pubtime": (_drop(["properties", "pubtime"]), "properties.pubtime"),
    "pubtime a number": (_set(["properties", "pubtime"], 20220320), "properties.pubtime"),
    "no data_id": (_drop(["properties", "data_id"]), "properties.data_id"),
    "no datetime": (_drop(["properties", "datetime"]), "properties.datetime"),
    "datetime and interval": (_set(["properties", "start_datetime"], "2022-03-20T00:00:00Z"),
                              None),       # one of the two: both valid (only start given)
    "integrity method": (_set(["properties", "integrity", "method"], "crc32"),
                         "properties.integrity.method"),
    "integrity no value": (_drop(["properties", "integrity", "value"]),
                           "properties.integrity.value"),
    "metadata_id number": (_set(["properties", "metadata_id"], 5), "properties.metadata_id"),
    "cache string": (_set(["properties", "cache"], "no"), "properties.cache"),
    "content too big": (_set(["properties", "content"],
                             {"encoding": "utf-8", "value": "x", "size": 5000}),
                        "properties.content.size"),
    "no links": (_set(["links"], []), "links"),
    "link without href": (_drop(["links", 0, "href"]), "links[0].href"),
    "link without rel": (_drop(["links", 0, "rel"]), "links[0].rel"),
    "length a string": (_set(["links", 0, "length"], "3"), "links[0].length"),
    "extra property": (_set(["properties", "wigos_station_identifier"], "0-1-2-3"), None),
}


def _valid() -> dict:
    return json.loads(codec.encode(post(mtime="20261203115959.5"), "a",
                                   post_format="wis2")[2])


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_the_decoder_refuses_what_the_schema_refuses(case):
    change, field = MUTATIONS[case]
    obj = copy.deepcopy(_valid())
    change(obj)
    schema_ok = wis2_validator().is_valid(obj)
    assert schema_ok == (field is None), case
    if field is None:
        codec.decode("", None, json.dumps(obj))
        return
    with pytest.raises(MessageError) as err:
        wis2.decode("", None, json.dumps(obj))
    assert err.value.field == field
    assert str(err.value).startswith(field + ":")


def test_a_valid_wnm_without_a_link_to_the_data_is_refused_by_name():
    obj = _valid()
    obj["links"][0]["rel"] = "item"
    wis2_validator().validate(obj)
    with pytest.raises(MessageError, match="links: no canonical"):
        codec.decode("", None, json.dumps(obj))


def test_the_options(confdir):
    (confdir / "post").mkdir()
    (confdir / "post" / "w.conf").write_text(
        "post_format wis2\npost_topic a/wis2/ca-x/data/core/weather\n"
        "wis2_metadata_id urn:wmo:md:ca-x:synop\nwis2_data_id ca-x/{relpath}\n")
    cfg = load_config("post", "w")
    assert (cfg.post_format, cfg.post_topic) == ("wis2", "a.wis2.ca-x.data.core.weather")
    assert (cfg.wis2_metadata_id, cfg.wis2_data_id) == ("urn:wmo:md:ca-x:synop",
                                                        "ca-x/{relpath}")
    (confdir / "post" / "w.conf").write_text("wis2_data_id {name}\n")
    with pytest.raises(ConfigError, match="wis2_data_id.*unknown field {name}"):
        load_config("post", "w")
    (confdir / "post" / "w.conf").write_text("post_format wnm\n")
    with pytest.raises(ConfigError, match="post_format"):
        load_config("post", "w")
    assert jsonschema.Draft202012Validator.check_schema(
        json.loads(example("wis2-notification-message-bundled.json"))) is None
