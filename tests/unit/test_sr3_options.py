"""sr3's options that now act: ``outlet json|url`` (posts on standard output,
no broker), ``realpath_post`` (the real path announced, links followed),
``post_exchange_split`` (names and choice of the exchanges), ``delete``
(the file transfer's remove, the HTTP DELETE refused by a server that does
not take it). The flows with RabbitMQ: tests/integration/test_sr3_options_flow.py."""
import json

import pytest

from sarra import cli
from sarra.broker import memory
from sarra.codec import decode
from sarra.config import load_config
from sarra.errors import ConfigError, TransferError
from sarra.flow.publish import Publisher, split_exchanges, split_index
from sarra.message import Message
from sarra.transfer.file import FileTransfer


def _tree(tmp_path):
    real = tmp_path / "real"
    (real / "d").mkdir(parents=True)
    (real / "d" / "a.txt").write_text("alpha\n")
    (real / "b.txt").write_text("beta\n")
    return real


def test_outlet_json_writes_v03_messages_and_needs_no_broker(confdir, tmp_path, capsys):
    real = _tree(tmp_path)
    rc = cli.run("post", ["--outlet", "json", "--post_base_url", "http://h/",
                          "--post_base_dir", str(real), str(real)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    msgs = [decode("v03.post", {}, line) for line in lines]
    assert sorted(m.relpath for m in msgs) == ["b.txt", "d/a.txt"]
    assert all(json.loads(line)["baseUrl"] == "http://h/" for line in lines)
    assert "posted 2 of 2 files" in err and "to standard output" in err   # not in stdout


def test_outlet_url_writes_one_url_a_line(confdir, tmp_path, capsys):
    real = _tree(tmp_path)
    rc = cli.run("post", ["--outlet", "url", "--post_base_url", "http://h/data/",
                          "--post_base_dir", str(real), str(real / "d" / "a.txt")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out == "http://h/data/d/a.txt\n"


def test_outlet_post_without_a_broker_says_what_to_set(confdir, tmp_path, capsys):
    real = _tree(tmp_path)
    rc = cli.run("post", ["--post_base_url", "http://h/", str(real)])
    assert rc == 2
    assert "no post_broker (or broker) to post to (or outlet json or url" in \
        capsys.readouterr().err


def test_realpath_post_announces_the_real_path_through_links(confdir, tmp_path, capsys):
    real = _tree(tmp_path)
    (tmp_path / "via").symlink_to(real / "d")             # a linked directory
    (real / "d" / "ln.txt").symlink_to(real / "b.txt")    # a linked file
    args = ["--outlet", "url", "--post_base_url", "http://h/", "--post_base_dir", str(real)]
    rc = cli.run("post", args + ["--realpath_post", str(tmp_path / "via")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert sorted(out.splitlines()) == ["http://h/b.txt", "http://h/d/a.txt"]
    rc = cli.run("post", args + [str(tmp_path / "via")])   # without: the link is one entry
    out, err = capsys.readouterr()
    assert rc == 1 and "is not under post_base_dir" in err


def test_realpath_post_base_dir_through_a_link(confdir, tmp_path, capsys):
    real = _tree(tmp_path)
    (tmp_path / "base").symlink_to(real)
    rc = cli.run("post", ["--outlet", "url", "--post_base_url", "http://h/", "--realpathPost",
                          "--post_base_dir", str(tmp_path / "base"), str(real / "b.txt")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out == "http://h/b.txt\n"


def test_split_names_are_sr3s_and_the_choice_follows_the_sum():
    assert split_exchanges("xwinnow", 5) == [f"xwinnow{i:02d}" for i in range(5)]
    with pytest.raises(ConfigError, match="of one name"):
        split_exchanges("a,b", 2)
    with pytest.raises(ConfigError, match="of one name"):
        split_exchanges("xr_${SOURCE}", 2)
    with pytest.raises(ConfigError, match="100"):
        split_exchanges("x", 101)
    one = Message("20261203000000", "http://h/", "a", {"sum": "d,0123abcd"})
    twin = Message("20261203000001", "http://h/", "other/b", {"sum": "d,0123ABCD"})
    assert split_index(one, 7) == split_index(twin, 7) == sum(b"0123abcd") % 7


def test_publisher_split_declares_every_exchange_and_sends_each_post_to_one():
    broker = memory.MemoryBroker("memory://split-test/")
    broker.connect()
    pub = Publisher(broker, "xs_x", "v02.post", split=3)
    assert pub.exchange == "xs_x00,xs_x01,xs_x02"
    pub.declare()
    space = memory.space("split-test")
    for i in range(3):
        broker.declare_queue(f"q{i}", durable=False)
        broker.bind(f"q{i}", f"xs_x{i:02d}", "#")
    msgs = [Message("20261203000000", "http://h/", f"f{n}", {"sum": f"d,{n:032x}"})
            for n in range(9)]
    for m in msgs:
        pub.publish(m)
    pub.flush()
    assert {f"xs_x{i:02d}" for i in range(3)} <= space.exchanges
    counts = [len(space.queues[f"q{i}"]) for i in range(3)]
    assert sum(counts) == 9
    assert counts == [sum(1 for m in msgs if split_index(m, 3) == i) for i in range(3)]
    assert Publisher(broker, "xs_x", "v02.post", split=1).exchanges == ["xs_x"]


def test_split_with_several_exchanges_is_refused_at_load(confdir, tmp_path):
    (confdir / "shovel").mkdir()
    (confdir / "shovel" / "s.conf").write_text(
        "broker memory://s/\nexchange xpublic\npost_exchange a,b\npostExchangeSplit 2\n")
    cfg = load_config("shovel", "s")
    from sarra.components import flow_for
    with pytest.raises(ConfigError, match="post_exchange_split spreads posts"):
        flow_for("shovel", cfg)


def test_file_transfer_remove(tmp_path):
    f = tmp_path / "x"
    f.write_text("x")
    t = FileTransfer()
    assert t.remove(f"file:{f}") is True and not f.exists()
    assert t.remove(f"file:{f}") is False
    with pytest.raises(TransferError, match="a directory"):
        t.remove(f"file:{tmp_path}")


def test_http_remove_is_an_http_delete(tmp_path):
    """A real HTTP exchange (a server on a loopback port): 2xx removed, 404
    already gone, 405 (a server that takes no DELETE) a TransferError."""
    import http.server
    import threading

    from sarra.transfer.http import HttpTransfer
    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_DELETE(self):   # noqa: N802 - the http.server API
            asked.append(self.path)
            code = {"/gone": 404, "/no": 405}.get(self.path, 204)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    t = HttpTransfer(timeout=5)
    try:
        assert t.remove(f"{base}/a file.txt") is True
        assert t.remove(f"{base}/gone") is False
        with pytest.raises(TransferError, match="DELETE .*/no: HTTP 405"):
            t.remove(f"{base}/no")
    finally:
        t.close()
        server.shutdown()
        server.server_close()
    assert asked == ["/a%20file.txt", "/gone", "/no"]
