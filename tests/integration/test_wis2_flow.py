"""WIS2 notification messages end to end over MQTT: dd_post publishes WNMs
under a WIS2 topic (each validated against the official schema), a
dd_subscribe following the WIS2 hierarchy with ``subtopic`` downloads each
file from its canonical link (nginx) and verifies its integrity, a
malformed WNM before them is refused with its field named and the next
message processed, and a WNM whose integrity does not match its file
leaves nothing under the file's name."""
from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import unquote

from sarra.broker import Outgoing, open_broker
from tests.helpers import compare_trees, make_tree, run_tool, wait_for, wis2_validator
from tests.integration.flowkit import Tap, codes_by_relpath, stop, tmp_files, wait_same_tree

CENTRE = "xx-sarra-test"
TOPIC = f"a/wis2/{CENTRE}/data/core/weather/surface-based-observations/synop"
METADATA = f"urn:wmo:md:{CENTRE}:synop"


def wnm(href: str, data: bytes, method: str = "sha256", **props) -> str:
    digest = base64.b64encode(hashlib.new(method.replace("-", "_"), data).digest()).decode()
    return json.dumps({
        "id": "0b1bd1c4-0b8e-4d38-9f3e-7d3b0d0c2a11",
        "conformsTo": ["http://wis.wmo.int/spec/wnm/1/conf/core"],
        "type": "Feature", "geometry": None,
        "properties": {"pubtime": "2026-12-03T12:00:00Z", "datetime": None,
                       "data_id": f"{CENTRE}/x", "integrity": {"method": method,
                                                                "value": digest}, **props},
        "links": [{"href": href, "rel": "canonical", "type": "application/octet-stream",
                   "length": len(data)}]})


def test_wnms_posted_over_mqtt_are_mirrored_verified_and_a_bad_one_is_refused(
        sarra_home, unique, procs, nginx, mosquitto, tmp_path):
    sarra_home.add_credentials(*mosquitto.credentials.split())
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = sorted("obs/" + r for r in make_tree(src / "obs", 12, depth=1, size=3000, seed=41))
    (src / "bad.bin").write_bytes(b"not what the WNM says")
    server = nginx(src, workers=1)
    xr, name = f"xr_{unique}", f"wis2_{unique}"
    url = mosquitto.url("alice", password=True)
    posts = Tap("origin", f"{TOPIC.replace('/', '.')}.#", f"q_tap.{unique}.w", url=url)
    reports = Tap(xr, "v02.report.#", f"q_tap.{unique}.r", url=url)
    sarra_home.write_config("subscribe", name, (
        f"broker {mosquitto.url('alice')}\n"
        "exchange origin\n"
        "topic_prefix a.wis2\n"
        "subtopic *.data.core.weather.#\n"
        "expire 10m\n"
        f"report_exchange {xr}\n"
        "attempts 1\nretry_delay 1h\n"
        "mirror on\ninflight .tmp\n"
        f"directory {dst}\n"
        "accept .*\n"))
    run_tool("subscribe", "declare", name, timeout=60)
    proc = procs.start_tool("subscribe", "foreground", name, log=tmp_path / "sub.log")

    # before the posts: a WNM the schema refuses, and one whose integrity is wrong
    raw = open_broker(url)
    other = f"a.wis2.{CENTRE}.data.core.weather.other"
    bad_method = json.loads(wnm(server.url + "obs/x", b"x"))
    bad_method["properties"]["integrity"]["method"] = "crc32"
    raw.publish(Outgoing("origin", other, {}, json.dumps(bad_method), "application/geo+json"))
    raw.publish(Outgoing("origin", other, {}, wnm(server.url + "bad.bin", b"something else"),
                         "application/geo+json"))
    raw.flush()
    raw.close()

    res = run_tool("post", "--post_broker", mosquitto.url("alice"), "--post_exchange", "origin",
                   "--post_format", "wis2", "--post_topic", TOPIC, "--sum", "sha256",
                   "--wis2_metadata_id", METADATA, "--wis2_data_id", f"{CENTRE}/{{relpath}}",
                   "--post_base_url", server.url, "--post_base_dir", str(src),
                   str(src / "obs"), timeout=120)
    assert "posted 12 of 12 files" in res.stdout, res.stdout + res.stderr
    wait_same_tree(src / "obs", dst / "obs", timeout=40, proc=proc)

    got = posts.wait_count(12, 20)
    assert sorted(m.relpath for m in got) == rels
    for d in posts.raw:                          # what dd_post published, as it came
        assert d.topic == TOPIC.replace("/", ".") and d.exchange == "origin"
        obj = json.loads(d.body)
        wis2_validator().validate(obj)
        props = obj["properties"]
        assert props["metadata_id"] == METADATA
        assert props["data_id"] == f"{CENTRE}/{unquote(obj['links'][0]['href'][len(server.url):])}"
        assert props["integrity"]["method"] == "sha256"
        assert props["datetime"].endswith("Z")
    by_rel = codes_by_relpath(reports.wait_count(13, 20))
    assert {r: dict(c) for r, c in by_rel.items() if r in rels} == {r: {201: 1} for r in rels}
    assert set(by_rel["bad.bin"]) == {499}, "a file whose integrity does not match was accepted"
    assert not (dst / "bad.bin").exists() and tmp_files(dst) == []
    assert compare_trees(src / "obs", dst / "obs") == []
    log = stop(proc)
    assert "properties.integrity.method: 'crc32' is not one of" in log, log[-3000:]
    assert "checksum mismatch (sha256)" in log, log[-3000:]
    wait_for(lambda: len(server.requests()) >= 13, timeout=10, what="nginx's access log")
    posts.close()
    reports.close()
