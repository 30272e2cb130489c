"""The first hour with sarra: what the help, the errors and the warnings
say. dd_log's --help gives its own defaults and dd_post's only the options
it uses; dd_log cleanup; sarra list and cleanup see dd_log's
configurations; did-you-mean for actions and configuration names; a refused
login names the account, the broker and the credentials file; posts that
reach no queue come back and are counted; a missing exchange says what
creates one."""
import pika.exceptions as px
import pytest

from sarra import cli
from sarra.broker import memory
from sarra.broker.amqp import _convert
from sarra.broker.base import ensure_exchange
from sarra.config import help_text, load_config, parse_argv
from sarra.errors import BrokerError, ConfigError
from sarra.flow.publish import Publisher
from sarra.message import Message
from sarra.tools import TOOLS

SECRET = "S3cr3tPw"


def write(confdir, tool, name, text="broker amqp://u@h/\n"):
    path = confdir / tool / f"{name}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def option_help(text: str, name: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().split(", ")[-1].startswith(f"--{name} "):
            return lines[i + 1]
    raise AssertionError(f"--{name} not in the help")


# ------------------------------------------------------------------ help

def test_dd_log_help_gives_its_own_defaults():
    text = help_text("log")
    assert "[default: xr_<user of broker>]" in option_help(text, "exchange")
    assert "[default: 1d]" in option_help(text, "expire")
    assert "[default: v02.report]" in option_help(text, "topic_prefix")
    assert "--accept_unmatch " not in text          # dd_log(1): read, without effect
    assert "dd_log cleanup [--option value ...] [CONFIG]" in text
    assert "actions: cleanup" in text
    for daemon_only in ("instances", "heartbeat", "log_rotate", "attempts"):
        assert f"--{daemon_only} " not in text
    assert "[default: xpublic]" in option_help(help_text("sara"), "post_exchange")
    assert "[default: 20m]" in option_help(help_text("winnow"), "nodupe_ttl")
    assert "[default: 300s]" in option_help(help_text("subscribe"), "expire")


def test_dd_post_help_lists_only_what_dd_post_uses():
    text = help_text("post")
    for unused in ("instances", "heartbeat", "log_rotate", "log_rotate_interval", "attempts",
                   "report_back", "report_exchange", "hostname", "byte_rate_max", "inflight",
                   "strip", "nodupe_ttl", "delete", "vip"):
        assert f"--{unused} " not in text, unused
    for used in ("post_broker", "post_exchange", "post_base_url", "sum", "path", "blocksize",
                 "outlet", "post_exchange_split", "realpath_post"):
        assert f"--{used} " in text
    assert "post_broker is not set" in option_help(text, "broker")
    last = text.strip().splitlines()[-1]
    assert last.startswith("read but without effect in dd_post: base_dir,")
    assert "inflight" in last and "vip" not in text     # refused in dd_post: no floating IP
    assert "delete" not in text        # a subscriber's option: not dd_post's at all


# ------------------------------------------------------- dd_log cleanup

def test_dd_log_cleanup_parses():
    inv = parse_argv("log", ["cleanup", "mine"])
    assert (inv.action, inv.config) == ("cleanup", "mine")
    inv = parse_argv("log", ["mine", "--follow"])
    assert (inv.action, inv.config) == (None, "mine")
    inv = parse_argv("log", ["-c", "cleanup"])           # a configuration named cleanup
    assert (inv.action, inv.config) == (None, "cleanup")
    inv = parse_argv("log", ["cleanup", "--broker", "amqp://u@h/"])
    assert inv.action == "cleanup" and inv.config is None
    with pytest.raises(ConfigError, match="unexpected"):
        parse_argv("log", ["cleanup", "a", "b"])


def test_dd_log_cleanup_deletes_its_queue_and_state(confdir, capsys):
    write(confdir, "log", "mine", "broker memory://cleanup-test/\n")
    space = memory.space("cleanup-test")
    assert cli.run("log", ["mine"]) == 0        # the first run subscribes: a queue
    assert len(space.queues) == 1
    state = confdir.parent / "state" / "log" / "mine"
    assert state.is_dir()
    assert cli.run("log", ["cleanup", "mine"]) == 0
    out = capsys.readouterr().out
    assert "deleted queue q_anonymous.log.mine." in out and "state of log/mine" in out
    assert space.queues == {} and not state.exists()


# ------------------------------------------------ sarra list and cleanup

def test_sarra_list_and_cleanup_include_dd_log(confdir, capsys):
    write(confdir, "subscribe", "obs")
    write(confdir, "log", "mine")
    assert cli.configurations([], "list") == [("log", "mine"), ("subscribe", "obs")]
    assert cli.configurations([], "cleanup") == [("log", "mine"), ("subscribe", "obs")]
    assert cli.configurations([], "status") == [("subscribe", "obs")]
    assert cli.operate(["list"]) == 0
    out = capsys.readouterr().out
    assert f"log/mine: {confdir}/log/mine.conf (read by dd_log)" in out
    assert f"subscribe/obs: {confdir}/subscribe/obs.conf (1 instance)" in out
    assert cli.operate(["list", "log"]) == 0
    assert capsys.readouterr().out.startswith("log/mine:")
    assert cli.operate(["status", "log/mine"]) == 2
    assert "dd_log runs no daemons" in capsys.readouterr().err


# ------------------------------------------------------- did you mean

def test_did_you_mean_an_action():
    with pytest.raises(ConfigError, match=r"unknown action 'strat' \(did you mean 'start'\? "
                                          r"actions: foreground"):
        parse_argv("subscribe", ["strat", "c"])
    with pytest.raises(ConfigError, match=r"unknown action 'xyzzy' \(actions: "):
        parse_argv("subscribe", ["xyzzy", "c"])


def test_did_you_mean_an_operator_action(confdir, capsys):
    assert cli.operate(["stauts"]) == 2
    err = capsys.readouterr().err
    assert "unknown action 'stauts' (did you mean 'status'?) (one of start," in err


def test_configuration_not_found_lists_those_there_are(confdir, capsys):
    write(confdir, "subscribe", "obs")
    write(confdir, "subscribe", "radar")
    with pytest.raises(ConfigError) as err:
        load_config("subscribe", "obz")
    assert str(err.value).endswith("subscribe/obz.conf: configuration file not found (did "
                                   "you mean 'obs'? subscribe configurations: obs, radar)")
    with pytest.raises(ConfigError, match=r"not found \(subscribe configurations: obs, radar\)"):
        load_config("subscribe", "zzzzzz")
    with pytest.raises(ConfigError, match=r"there is no sender configuration in "):
        load_config("sender", "obs")
    assert cli.run("subscribe", ["start", "rdar"]) == 2
    assert "did you mean 'radar'?" in capsys.readouterr().err
    assert cli.operate(["status", "subscribe/rdar"]) == 2
    assert "no such configuration (did you mean 'radar'?" in capsys.readouterr().err
    assert cli.operate(["status", "subscibe/obs"]) == 2
    assert "is not TOOL or TOOL/CONFIG (did you mean 'subscribe'?)" in capsys.readouterr().err


# ------------------------------------------------------ a refused login

def test_a_refused_login_names_account_broker_and_credentials_file(confdir):
    creds = confdir / "credentials.conf"
    creds.write_text(f"amqp://alice:{SECRET}@switch.example.com/\n")
    refused = px.ProbableAuthenticationError("ConnectionClosedByBroker: (403) 'ACCESS_REFUSED "
                                             "- Login was refused'")
    err = _convert(refused, "amqp://alice:***@switch.example.com:5673/data")
    text = str(err)
    assert not err.recoverable
    assert text.startswith("login refused for user 'alice' on broker "
                           "amqp://switch.example.com:5673 (vhost data)")
    assert f"{creds} was read" in text and "ACCESS_REFUSED" in text
    assert SECRET not in text and "***" not in text
    creds.unlink()
    text = str(_convert(refused, "amqps://bob@h/"))
    assert "user 'bob' on broker amqps://h:5671 (vhost /)" in text
    assert f"{creds} does not exist" in text


# --------------------------------------------- posts that reach no queue

def post(relpath="a/b.txt"):
    return Message("20260301003000.000", "http://h/", relpath,
                   {"sum": "d," + "0" * 32, "parts": "1,10,1,0,0"})


def test_mandatory_posts_that_reach_no_queue_are_counted():
    broker = memory.MemoryBroker("memory://mandatory-test/")
    broker.connect()
    pub = Publisher(broker, "xs_alice", "v02.post", mandatory=True)
    pub.declare()
    pub.publish(post())
    pub.publish(post("c/d.txt"))
    pub.flush()
    assert pub.unroutable == {"xs_alice": 2}
    broker.declare_queue("q_bob")
    broker.bind("q_bob", "xs_alice", "v02.post.a.#")
    pub.publish(post())            # a queue takes this one
    pub.publish(post("c/d.txt"))   # not this one
    pub.flush()
    assert pub.unroutable == {"xs_alice": 3}
    quiet = Publisher(broker, "xs_alice", "v02.post")      # not mandatory: not counted
    quiet.publish(post("c/d.txt"))
    quiet.flush()
    assert quiet.unroutable == {}


# --------------------------------------------------- a missing exchange

class _NoRights:
    """A broker where this user may declare nothing, and xpublic exists."""
    name = "amqp://bob@switch/"

    def declare_exchange(self, name, passive=False):
        if not passive:
            raise BrokerError("broker closed the channel: 403 ACCESS_REFUSED")
        if name != "xpublic":
            raise BrokerError(f"broker closed the channel: 404 NOT_FOUND - no exchange "
                              f"'{name}'")


def test_a_missing_exchange_says_declare_creates_exchanges(caplog):
    ensure_exchange(_NoRights(), "xpublic")
    with pytest.raises(BrokerError) as err:
        ensure_exchange(_NoRights(), "xpublik")
    text = str(err.value)
    assert not err.value.recoverable
    assert text.startswith("exchange xpublik does not exist on amqp://bob@switch/, and this "
                           "user may not create it: exchanges are created by 'declare'")
    assert "dd_audit" in text and "404 NOT_FOUND" in text
    assert text in caplog.text          # a warning too


# ------------------------------------------------- each tool's --help, its own options

@pytest.mark.parametrize("tool", [t.name for t in TOOLS if t.name != "audit"])
def test_help_lists_only_the_options_the_tool_uses(tool):
    """What --help names 'without effect' (and leaves out of its list) is what
    the tool's man page lists as 'Accepted but without effect'."""
    from tests.unit.test_examples import MAN, _bold_words, _man_sections
    text = help_text(tool)
    page = (MAN / f"dd_{tool}.1").read_text(encoding="utf-8")
    listed = set(_bold_words(_man_sections(page)[f"Accepted but without effect in dd_{tool}"]))
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"read but without effect in dd_{tool}: ")
    assert set(last.split(": ", 1)[1].split(", ")) == listed
    for name in listed:
        assert f"--{name} " not in text, f"dd_{tool} --help lists {name}"
