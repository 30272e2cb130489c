"""Every collaborator of the engine has what flow/contracts.py says it has.

The engine never probes with hasattr: a member missing from one
implementation would fail only when that tool meets the case at run time.
This checks each implementation against its Protocol, members and
parameter names, on real instances.
"""
import inspect
import typing

import pytest

from sarra.broker.memory import MemoryBroker
from sarra.components import PRESETS
from sarra.config import load_config
from sarra.flow import contracts
from sarra.flow.gather import BrokerSource, PathSource
from sarra.flow.logview import LogPrinter
from sarra.flow.polling import PollSource
from sarra.flow.publish import Publisher, Reporter
from sarra.flow.send import Sender
from sarra.flow.watching import WatchSource
from sarra.flow.work import Downloader


def members(protocol) -> tuple[dict[str, object], list[str]]:
    """(methods, attributes) a Protocol declares, its bases' included."""
    methods, attributes = {}, []
    for klass in reversed(protocol.__mro__):
        if klass in (object, typing.Protocol, typing.Generic) or \
                not getattr(klass, "_is_protocol", False):
            continue
        attributes += [a for a in vars(klass).get("__annotations__", {}) if a not in attributes]
        methods.update({name: f for name, f in vars(klass).items()
                        if inspect.isfunction(f) and not name.startswith("_")})
    return methods, attributes


def conforms(obj, protocol) -> list[str]:
    """What ``obj`` lacks of ``protocol`` (empty: it conforms)."""
    methods, attributes = members(protocol)
    wrong = [f"no attribute {a}" for a in attributes if not hasattr(obj, a)]
    for name, declared in methods.items():
        got = getattr(obj, name, None)
        if not callable(got):
            wrong.append(f"no method {name}")
            continue
        want = [p for p in inspect.signature(declared).parameters if p != "self"]
        have = list(inspect.signature(got).parameters)
        if have[:len(want)] != want or any(
                inspect.signature(got).parameters[p].default is inspect.Parameter.empty
                for p in have[len(want):]):
            wrong.append(f"{name}{tuple(have)} is not {name}{tuple(want)}")
    return wrong


@pytest.fixture
def cfgs(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "tree").mkdir()

    def load(tool, *options):
        return load_config(tool, None, [("broker", "memory://contracts/"), *options],
                           PRESETS[tool])
    return tmp_path, load


def implementations(tmp_path, load):
    sub = load("subscribe", ("directory", str(tmp_path / "dst")))
    broker = MemoryBroker("memory://contracts/")
    return [
        (contracts.Source, BrokerSource(sub, "subscribe")),
        (contracts.Source, PathSource(load("post"), [])),
        (contracts.Source, WatchSource(load("watch", ("path", str(tmp_path / "tree"))))),
        (contracts.Source, PollSource(load("poll", ("poll_url", "ftp://u@127.0.0.1/d/")))),
        (contracts.Worker, Downloader(sub)),
        (contracts.Worker, Sender(load("sender", ("destination", "sftp://u@127.0.0.1/d/")))),
        (contracts.Poster, Publisher(broker, "xpublic", "v02.post")),
        (contracts.Poster, LogPrinter("table")),
        (contracts.Reporter, Reporter(broker, "xs_u", "u")),
    ]


def test_every_implementation_has_what_its_contract_says(cfgs):
    found = {f"{type(obj).__name__} as {proto.__name__}": conforms(obj, proto)
             for proto, obj in implementations(*cfgs)}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_check_sees_a_missing_member_and_a_wrong_signature():
    class Half:
        done = False

        def connect(self):
            pass

        def get(self, wait):      # named otherwise than the contract's timeout
            return [], []
    lacks = conforms(Half(), contracts.Source)
    assert "no attribute broker" in lacks and "no method rewind" in lacks
    assert any(w.startswith("get(") for w in lacks)
