"""Restricted posts, the pure parts: the readers option and header
(sarra/readers.py), dd_sara's rules (sarra/flow/private.py), the switch
description's private_dir and password_file, the password file
(sarra/switch/htpasswd.py: openssl, no server)."""
from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest

from sarra.config.options import OPTIONS, parse_value
from sarra.errors import ConfigError
from sarra.flow.announce import file_message
from sarra.flow.filter import Placement
from sarra.flow.private import Private, Refused, url_key
from sarra.message import Message
from sarra.readers import (Reader, canonical, local, parse_readers, private_exchange,
                           widens)
from sarra.switch import htpasswd, load_switch
from sarra.switch.command import main, web_users


def test_parse_sorts_dedups_and_qualifies():
    assert parse_readers("carol, bob@labC,bob,,carol ") == (
        Reader("bob"), Reader("bob", "labC"), Reader("carol"))
    assert canonical(parse_readers("carol, bob@labC,bob")) == "bob,bob@labC,carol"
    assert parse_readers("") == () == parse_readers(None) == parse_readers(" , ")
    assert canonical(()) == ""


@pytest.mark.parametrize("bad", ["bo_b", "bob.x", "-bob", "bob@", "bob@ALL", "bob@la.b",
                                 "аlice", "bob\x00", "bob cat", "bob@labC@x"])
def test_bad_names_are_refused_naming_the_option(bad):
    with pytest.raises(ValueError, match="^readers: bad") as err:
        parse_readers(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="^readers: "):
        parse_value(OPTIONS["readers"], bad)


def test_local_readers_and_widening():
    readers = parse_readers("bob@labC,carol,dave@labB")
    assert local(readers, "labC") == ["bob", "carol"]
    assert local(readers, "labB") == ["carol", "dave"]
    assert local(readers, None) == ["carol"]
    bob = parse_readers("bob")
    assert not widens((), ())                              # public stays public
    assert widens(bob, ()) and widens(bob, parse_readers("bob,eve"))
    assert not widens(bob, bob) and not widens(parse_readers("bob,eve"), bob)
    assert widens(bob, parse_readers("bob@labC"))           # another bob
    assert private_exchange("bob") == "xprivate_bob"


def test_the_option_is_a_posters_and_goes_into_the_header():
    option = OPTIONS["readers"]
    assert option.applies_to("post") and option.applies_to("watch")
    assert not option.applies_to("subscribe")
    assert parse_value(option, "carol, bob@labC") == "bob@labC,carol"


def _cfg(tmp_path, **more):
    values = dict(cluster="labC", private_exchange="xprivate", private_dir=None,
                  private_base_url=None, post_base_dir=str(tmp_path / "data"),
                  directory=str(tmp_path / "data" / "${SOURCE}"), masks=[],
                  post_base_url="https://c/", sum="s", bufsize=65536, preserve_time=True,
                  preserve_mode=True, source=None, to_clusters=None, readers="")
    values.update(more)
    return SimpleNamespace(**values)


def test_a_post_carries_the_readers_header(tmp_path):
    (tmp_path / "f").write_text("x")
    cfg = _cfg(tmp_path, readers="bob@labC", post_base_dir=str(tmp_path))
    assert file_message(cfg, str(tmp_path / "f")).headers["readers"] == "bob@labC"
    cfg.readers = ""
    assert "readers" not in file_message(cfg, str(tmp_path / "f")).headers


def _post(readers: str | None, base_url: str = "https://a/", relpath: str = "d/f") -> Message:
    headers = {"sum": "s,00", "parts": "1,1,1,0,0", "source": "alice"}
    if readers is not None:
        headers["readers"] = readers
    return Message("20261204000000.000", base_url, relpath, headers)


def _private(tmp_path) -> Private:
    return Private(_cfg(tmp_path, private_dir=str(tmp_path / "data.private"),
                        private_base_url="https://c/_private/"))


def _where(tmp_path, rel="d/f"):
    """The worker's target in the public tree (${SOURCE} expanded)."""
    return lambda p: os.path.join(p.directory.replace("${SOURCE}", "alice"), rel)


def test_a_restricted_post_goes_under_private_dir(tmp_path):
    private = _private(tmp_path)
    m = _post("carol, bob@labC")
    placement = private.admit(m, Placement(str(tmp_path / "data" / "${SOURCE}"), True),
                              _where(tmp_path))
    assert placement.directory == str(tmp_path / "data.private" / "bob@labC,carol" / "${SOURCE}")
    assert m.headers["readers"] == "bob@labC,carol"
    assert private.restricted(m)
    assert private.where(m) == (str(tmp_path / "data.private" / "bob@labC,carol"),
                                "https://c/_private/bob@labC,carol/")
    known = {"xprivate_bob"}
    assert private.exchanges(m, known.__contains__) == (["xprivate", "xprivate_bob"],
                                                        ["carol"])
    public = _post(None)
    assert private.admit(public, Placement("x"), None) == Placement("x")
    assert not private.restricted(public)


def test_a_readers_header_changed_on_the_way_is_refused(tmp_path):
    private = _private(tmp_path)
    where = Placement(str(tmp_path / "data" / "${SOURCE}"), True)
    assert url_key("https://b/_private/bob@labC/") == "bob@labC"
    assert url_key("https://b/pub/_private/bob%40labC/") == "bob@labC"
    assert url_key("https://b/alice/") is None
    for readers in (None, "", "bob@labC,eve", "eve"):
        with pytest.raises(Refused, match="differ from the restriction of its URL") as err:
            private.admit(_post(readers, "https://b/_private/bob@labC/"), where,
                          _where(tmp_path))
        assert err.value.code == 403
    ok = private.admit(_post("bob@labC", "https://b/_private/bob@labC/"), where,
                       _where(tmp_path))
    assert "bob@labC" in ok.directory


@pytest.mark.parametrize("base_url, relpath", [
    ("https://b/", "_private/bob/alice/f"),              # moved into the relpath
    ("https://b/_private/", "bob/alice/f"),              # split between them
    ("https://b/_private/bob/alice/", "f"),              # more of it in the base URL
    ("https://b/pub/", "_private/bob/alice/f"),          # a switch served below /pub/
    ("https://b/_private/bob/x/../", "alice/f"),         # as nginx resolves them
    ("https://b/alice/../_private/", "bob/alice/f"),
    ("https://b/%5Fprivate/", "bob/alice/f"),
    ("https://b//_private//bob/", "alice/f"),
    ("https://b/", "_private/%62ob/alice/f"),
])
def test_a_private_url_is_told_wherever_it_is_in_the_url(tmp_path, base_url, relpath):
    """A restricted file of a neighbour named by a URL that is not of the
    form ``<private_base_url><readers>/`` + relpath: refused unless the
    readers are those of its private URL (the link's account may fetch
    anything under _private/: a public post of it would publish bob's file)."""
    assert url_key(base_url + relpath) == "bob"
    private = _private(tmp_path)
    where = Placement(str(tmp_path / "data" / "${SOURCE}"), True)
    for readers in (None, "bob,eve", "eve"):
        with pytest.raises(Refused, match=r"differ from the restriction of its URL \(bob\)"):
            private.admit(_post(readers, base_url, relpath), where, _where(tmp_path))
    assert "/bob/" in private.admit(_post("bob", base_url, relpath), where,
                                    _where(tmp_path)).directory


def test_a_url_without_a_private_component_is_no_private_url():
    for url in ("https://b/alice/f", "https://b/_private", "https://b/_private/",
                "https://b/x_private/bob/f", "https://b/_privately/bob/f",
                "https://b/_private/../alice/f", "file:/data/alice/f", "alice/f"):
        assert url_key(url) is None, url
    assert url_key("file:/srv/_private/bob/f") == "bob"


def test_a_restriction_held_is_never_widened(tmp_path):
    private = _private(tmp_path)
    where = Placement(str(tmp_path / "data" / "${SOURCE}"), True)
    held = tmp_path / "data.private" / "bob,carol" / "alice" / "d"
    held.mkdir(parents=True)
    (held / "f").write_text("v1")
    for readers in (None, "bob,carol,eve", "eve", "bob@labB"):
        with pytest.raises(Refused, match="would widen the restriction to bob,carol") as err:
            private.admit(_post(readers), where, _where(tmp_path))
        assert err.value.code == 403
    for readers in ("bob", "bob,carol", "carol"):          # narrower, or the same
        private.admit(_post(readers), where, _where(tmp_path))
    assert private.admit(_post(None, relpath="d/g"), where, _where(tmp_path, "d/g")) == where


def test_without_private_dir_a_restricted_post_is_refused(tmp_path):
    private = Private(_cfg(tmp_path))
    with pytest.raises(Refused, match="no private_dir") as err:
        private.admit(_post("bob"), Placement("x"), None)
    assert err.value.code == 403
    with pytest.raises(Refused, match="invalid message: readers: bad user") as err:
        private.admit(_post("b_b"), Placement("x"), None)
    assert err.value.code == 417


def test_private_dir_must_not_overlap_the_public_tree(tmp_path):
    for inside in (tmp_path / "data" / "p", tmp_path / "data", tmp_path):
        with pytest.raises(ConfigError, match="overlap") as err:
            Private(_cfg(tmp_path, private_dir=str(inside), private_base_url="https://c/p/"))
        assert err.value.option == "private_dir"
    with pytest.raises(ConfigError, match="private_base_url"):
        Private(_cfg(tmp_path, private_dir=str(tmp_path / "p")))


# -------------------------------------------------------------- the description

SWITCH = """\
cluster: labC
broker: amqp://admin@localhost/
feeder: amqp://feeder@localhost/
data_dir: {data}
base_url: https://c.example.com/pub/
users:
  bob: subscriber
  alice: source
  labB: link
  boss: admin
"""


def test_description_private_dir_and_password_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SWITCH.format(data="/srv/data/"))
    switch = load_switch(str(path))
    assert switch.private_dir == "/srv/data.private"
    assert switch.password_file == "/srv/data.htpasswd"
    assert switch.private_base_url == "https://c.example.com/pub/_private/"
    path.write_text(SWITCH.format(data="/srv/data") + "private_dir: /srv/p\n"
                    "password_file: /etc/sarra/htpasswd\n")
    switch = load_switch(str(path))
    assert (switch.private_dir, switch.password_file) == ("/srv/p", "/etc/sarra/htpasswd")
    assert switch.with_users({"x": "source"}).private_dir == "/srv/p"
    assert web_users(switch, {"bob": "1", "alice": "2", "labB": "3", "boss": "4",
                              "admin": "5", "feeder": "6"}) == {"bob": "1", "alice": "2",
                                                               "labB": "3"}


@pytest.mark.parametrize("extra, key", [
    ("private_dir: /srv/data/private\n", "private_dir"),
    ("private_dir: /srv/data\n", "private_dir"),
    ("private_dir: /srv\n", "private_dir"),
    ("private_dir: relative\n", "private_dir"),
    ("password_file: /srv/data/.htpasswd\n", "password_file"),
    ("password_file: /srv/data.private/pw\n", "password_file"),
    ("password_file: pw\n", "password_file"),
])
def test_description_refuses_overlaps(tmp_path, extra, key, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(SWITCH.format(data="/srv/data") + extra)
    with pytest.raises(ConfigError) as err:
        load_switch(str(path))
    assert err.value.option == key
    assert main(["nginx", str(path)]) == 2
    assert key in capsys.readouterr().err


# -------------------------------------------------------------- the password file

def test_password_file_hashes_matches_and_syncs(tmp_path, monkeypatch):
    calls = []
    real = htpasswd.subprocess.run

    def spy(cmd, **kw):
        calls.append((cmd, kw.get("input")))
        return real(cmd, **kw)
    monkeypatch.setattr(htpasswd.subprocess, "run", spy)
    hashed = htpasswd.hash_password("s3cret pw")
    assert hashed.startswith("$6$") and "s3cret" not in hashed
    assert all("s3cret pw" not in " ".join(cmd) for cmd, _ in calls)   # stdin only
    assert calls[0][1] == "s3cret pw\n"
    assert htpasswd.matches(hashed, "s3cret pw") and not htpasswd.matches(hashed, "s3cret")
    assert not htpasswd.matches("plain", "plain")

    path = str(tmp_path / "sub" / "data.htpasswd")
    assert htpasswd.check(path, {"bob": "b"}) == [f"missing password file {path}"]
    assert htpasswd.sync(path, {"bob": "b", "labB": "l"}) == [
        f"password file {path}: added bob", f"password file {path}: added labB"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    text = open(path).read()
    assert set(htpasswd.parse(text)) == {"bob", "labB"} and "b\n" not in text
    assert htpasswd.sync(path, {"bob": "b", "labB": "l"}) == []          # nothing to do
    assert open(path).read() == text
    assert htpasswd.check(path, {"bob": "B", "carol": "c"}) == [
        f"password file {path}: password of bob differs from credentials.conf",
        f"password file {path}: missing user carol",
        f"password file {path}: extra user labB (not in the description)"]
    assert htpasswd.sync(path, {"bob": "B"}) == [f"password file {path}: updated bob",
                                                 f"password file {path}: removed labB"]
    assert htpasswd.remove(path, "bob") == [f"password file {path}: removed bob"]
    assert htpasswd.remove(path, "bob") == [] and htpasswd.parse(open(path).read()) == {}
    os.chmod(path, 0o644)
    assert htpasswd.check(path, {}) == [
        f"password file {path}: mode 644, readable by others (should be 640)"]
    with pytest.raises(ConfigError, match="line break"):
        htpasswd.hash_password("a\nb")


def test_password_file_rewrite_keeps_the_group_an_operator_gave_it(
        tmp_path, monkeypatch):
    import os
    from sarra.switch import htpasswd
    path = tmp_path / "data.htpasswd"
    htpasswd.write(str(path), "alice:x\n")
    # root may give the file any group; another user, one of its own
    groups = [33] if os.getuid() == 0 else [
        g for g in os.getgroups() if g != os.getegid()]
    for group in groups[:1]:
        os.chown(path, -1, group)
        htpasswd.write(str(path), "alice:x\nbob:y\n")
        assert os.stat(path).st_gid == group
        assert oct(os.stat(path).st_mode & 0o777) == "0o640"
        assert path.read_text() == "alice:x\nbob:y\n"
        # a writer that may not keep the group says so and leaves the file
        def refuse(fd, uid, gid):
            raise PermissionError(1, "Operation not permitted")
        monkeypatch.setattr(os, "fchown", refuse)
        with pytest.raises(PermissionError, match="cannot keep its group"):
            htpasswd.write(str(path), "mallory:z\n")
        assert path.read_text() == "alice:x\nbob:y\n"
        assert not [p for p in os.listdir(tmp_path)
                    if p.startswith(".htpasswd-")]
