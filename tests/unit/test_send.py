"""dd_sender's work stage without a server: where a post's file is found on
this switch, where it goes on the remote server, what is refused."""
import calendar

import pytest

from sarra.components import PRESETS
from sarra.config import load_config
from sarra.errors import ConfigError, MessageError, TransferError, UnsafePathError
from sarra.flow.filter import choose, default_placement
from sarra.flow.send import Sender, remote_join
from sarra.message import Message


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def sender(home, text: str) -> Sender:
    path = home / "push.conf"
    path.write_text("broker amqp://guest@localhost/\n" + text)
    return Sender(load_config("sender", str(path), (), PRESETS["sender"]))


def post(relpath: str, base_url: str = "http://switch.example.com/data/", **headers) -> Message:
    return Message("20261125120000.000", base_url, relpath,
                   {"sum": "d," + "0" * 32, "parts": "1,1,1,0,0", **headers})


def placed(s: Sender, msg: Message):
    ok, placement, _why = choose(msg, s.cfg.masks, bool(s.cfg.accept_unmatch),
                                 default_placement(s.cfg))
    return s.target(msg, placement) if ok else None


def test_files_keep_their_relpath_below_the_destination(home):
    s = sender(home, "destination sftp://bob@remote.example.net:2222/srv/in/\naccept .*\n")
    t = placed(s, post("a/b/c.bin"))
    assert (t.root, t.path) == ("/srv/in", "/srv/in/a/b/c.bin")
    assert s._url(t.path) == "sftp://bob@remote.example.net:2222/srv/in/a/b/c.bin"


def test_directory_strip_and_home_relative_destinations(home):
    s = sender(home, "destination sftp://bob@remote.example.net/~/in/\n"
                     "directory obs/${YYYY}\nstrip 1\naccept .*\n")
    t = placed(s, post("x/a/c.bin"))
    assert t.path.startswith("/~/in/obs/2") and t.path.endswith("/a/c.bin")
    s = sender(home, "destination sftp://bob@remote.example.net/srv/in/\n"
                     "directory /elsewhere\naccept .*\n")
    assert placed(s, post("a/c.bin")).path == "/elsewhere/a/c.bin"


@pytest.mark.parametrize("rel", ["a/../../etc/passwd", "x\x00y", "/", ""])
def test_nothing_escapes_the_remote_directory(rel):
    with pytest.raises(UnsafePathError):
        remote_join("/srv/in", rel)


def test_the_local_file_is_in_base_dir_or_named_by_a_file_url(home, tmp_path):
    s = sender(home, f"destination sftp://bob@h/in/\nbase_dir {tmp_path}/tree\naccept .*\n")
    (tmp_path / "tree" / "a").mkdir(parents=True)
    assert s.local_file(post("a/f.bin")) == f"{tmp_path}/tree/a/f.bin"
    assert s.local_file(post("a/f.bin", f"file:{tmp_path}/tree/")) == f"{tmp_path}/tree/a/f.bin"
    with pytest.raises(UnsafePathError):
        s.local_file(post("etc/passwd", "file:/"))
    with pytest.raises(UnsafePathError):
        s.local_file(post("../outside"))
    bare = sender(home, "destination sftp://bob@h/in/\naccept .*\n")
    assert bare.local_file(post("etc/passwd", "file:/")) == "/etc/passwd"
    with pytest.raises(TransferError) as info:
        bare.local_file(post("a/f.bin"))
    assert (info.value.code, info.value.recoverable) == (503, False)


def test_blocks_of_a_file_are_refused_for_good(home):
    s = sender(home, "destination sftp://bob@h/in/\naccept .*\n")
    msg = post("a/f.bin", parts="i,1024,3,0,1")
    with pytest.raises(TransferError) as info:
        s.apply(msg, placed(s, msg))
    assert (info.value.code, info.value.recoverable) == (503, False)


def test_a_symlink_may_not_point_out_of_the_destination(home):
    s = sender(home, "destination sftp://bob@h/in/\naccept .*\n")
    for link in ("/etc/passwd", "../../x"):
        msg = post("a/l", sum="L," + "0" * 128, link=link)
        with pytest.raises(UnsafePathError):
            s.apply(msg, placed(s, msg))
    with pytest.raises(MessageError):
        msg = post("a/l", sum="L," + "0" * 128)
        s.apply(msg, placed(s, msg))


def test_mode_and_times_come_from_the_post(home):
    s = sender(home, "destination sftp://bob@h/in/\naccept .*\n")
    mode, times = s._metadata(post("f", mode="640", mtime="20261125120000.500"))
    assert mode == 0o640 and times[1] == times[0] and times[1] == calendar.timegm((2026, 11, 25, 12, 0, 0)) + 0.5
    s = sender(home, "destination sftp://bob@h/in/\npreserve_mode off\npreserve_time off\n"
                     "default_mode 600\naccept .*\n")
    assert s._metadata(post("f", mode="640", mtime="20261125120000.500")) == (0o600, None)


@pytest.mark.parametrize("text, why", [
    ("", "needs a destination"),
    ("destination http://h/in/\n", "sftp://, ftp:// or ftps:// only"),
    ("destination gopher://h/in/\n", "sftp://, ftp:// or ftps:// only"),
])
def test_a_destination_we_cannot_send_to_is_a_configuration_error(home, text, why):
    with pytest.raises(ConfigError, match=why):
        sender(home, text + "accept .*\n")


def test_the_push_example_sends_as_its_comments_say(home):
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "etc" / "sender" / "push.conf"
    s = Sender(load_config("sender", str(example), (), PRESETS["sender"]))
    t = placed(s, post("observations/2026/a.xml", "http://localhost/"))
    assert t.path == "/srv/incoming/observations/2026/a.xml"
    assert s.local_file(post("observations/2026/a.xml", "http://localhost/")) == \
        "/var/lib/sarra/data/observations/2026/a.xml"
    assert placed(s, post("observations/2026/a.xml.tmp", "http://localhost/")) is None
    assert placed(s, post("radar/a.h5", "http://localhost/")) is None
