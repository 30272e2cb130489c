"""sarra.plugins: loading hooks by name, chains of PASS/SKIP/failure, the
exec environment and exit codes, the built-in filters and triggers, and
set_complete firing exactly once while separate processes race; then the
same hooks inside the flow (Flow.process with file: downloads)."""
import logging
import multiprocessing
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sarra.checksum import sum_file
from sarra.components import PRESETS
from sarra.config import load_config
from sarra.errors import ConfigError, PluginError
from sarra.flow.announce import file_messages
from sarra.flow.engine import Flow
from sarra.flow.gather import PathSource
from sarra.flow.work import Downloader
from sarra.message import Message, format_time
from sarra.plugins import BUILTINS, Hooks, load_hook, load_hooks, verdict
from sarra.plugins.command import Exec, shown
from sarra.plugins.sets import SetComplete
from sarra.worklist import Worklist
from tests.helpers import run_tool

HERE = "tests.unit.test_plugins"
CALLS: list[tuple[str, str]] = []     # (hook label, relpath), in call order


# ------------------------------------------------------------ hooks for the tests

class Record:
    """Records each call; PASS."""

    def __init__(self, cfg, label="rec", *rest):
        self.cfg, self.label, self.rest = cfg, label, rest

    def _note(self, msg):
        CALLS.append((self.label, msg.relpath))

    def on_message(self, msg):
        self._note(msg)

    def on_file(self, msg):
        self._note(msg)
        return "PASS"

    def on_post(self, msg):
        self._note(msg)
        return True


class RecordParts(Record):
    def on_part(self, msg):
        self._note(msg)


class SkipIf:
    """SKIP messages whose relpath contains WORD."""

    def __init__(self, cfg, word):
        self.word = word

    def on_message(self, msg):
        return "SKIP" if self.word in msg.relpath else "PASS"

    on_file = on_post = on_message


class RaiseIf:
    """Raise for messages whose relpath contains WORD."""

    def __init__(self, cfg, word):
        self.word = word

    def on_message(self, msg):
        if self.word in msg.relpath:
            raise RuntimeError(f"cannot cope with {msg.relpath}")
        return True

    on_file = on_post = on_message


class Broken:
    def __init__(self, cfg):
        raise OSError("no database")

    def on_file(self, msg):
        return True


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    CALLS.clear()


def cfg_(**extra) -> SimpleNamespace:
    base = {"tool": "subscribe", "key": "hooks", "timeout": 10.0}
    return SimpleNamespace(**{**base, **extra})


def msg(relpath="a/b.dat", local=None, **headers) -> Message:
    m = Message(format_time(time.time()), "http://example.com/", relpath,
                {"sum": "d," + "0" * 32, "parts": "1,100,1,0,0", "source": "alice", **headers},
                topic="v02.post." + relpath.rsplit("/", 1)[0].replace("/", "."))
    if local is not None:
        m.local_path, m.local_root = local, os.path.dirname(local)
    return m


def chain(stage: str, *specs: str, cfg=None) -> Hooks:
    cfg = cfg or cfg_()
    return Hooks({stage: [load_hook(cfg, stage, s) for s in specs]})


# ------------------------------------------------------------------ loading

@pytest.mark.parametrize("spec", [f"{HERE}:Record one 'two words'",
                                  f"{HERE}.Record one 'two words'"])
def test_dotted_names_load_with_cfg_and_shell_split_arguments(spec):
    cfg = cfg_()
    bound = load_hook(cfg, "on_file", spec)
    assert isinstance(bound.obj, Record)
    assert bound.obj.cfg is cfg and bound.obj.label == "one" and bound.obj.rest == ("two words",)
    assert bound.name == spec


@pytest.mark.parametrize("spec, cls", [
    ("log /tmp/x/hooks.log", "Log"), ("move_to /tmp/x/out", "MoveTo"),
    ("exec /bin/true", "Exec"), ("size 1k 2m", "Size"), ("age 1d", "Age"),
    (r"set_complete '(?P<set>\d+)' 3 exec /bin/true", "SetComplete")])
def test_built_ins_by_short_name(spec, cls, tmp_path):
    stage = "on_message" if cls in ("Size", "Age", "Log", "Exec") else "on_file"
    bound = load_hook(cfg_(), stage, spec.replace("/tmp/x", str(tmp_path)))
    assert type(bound.obj).__name__ == cls
    assert sorted(BUILTINS.names()) == ["age", "exec", "log", "move_to", "set_complete", "size"]


@pytest.mark.parametrize("stage, spec, expected", [
    ("on_file", "lgo /tmp/x", r"unknown hook 'lgo' \(did you mean 'log'\?\)"),
    ("on_file", "nosuch.module:Thing", r"cannot import nosuch\.module"),
    ("on_file", f"{HERE}:Nothing", r"has no 'Nothing'"),
    ("on_post", "size 1k", r"wrong arguments \(usage: size MIN MAX\)"),
    ("on_file", "size 1k 2k", r"hook 'size' has no on_file\(\) method \(it works at: on_message\)"),
    ("on_part", f"{HERE}:Record a",
     r"no on_part\(\) method \(it works at: on_message, on_file, on_post\)"),
    ("on_file", "age soon", r"'soon' is not a duration"),
    ("on_file", "exec /no/such/command", r"'/no/such/command' not found"),
    ("on_file", "exec", r"needs a command"),
    ("on_file", "set_complete 'no-group' 3 exec /bin/true", r"no group \(\?P<set>"),
    ("on_file", r"set_complete '(?P<set>\d+)' zero exec /bin/true", r"not a positive integer"),
    ("on_file", r"set_complete '(?P<set>\d+)' 2 /bin/true", r"usage: set_complete"),
    ("on_file", "exec 'unclosed", r"No closing quotation"),
    ("on_file", "   ", r"needs a hook"),
    ("on_file", f"{HERE}:Broken", r"hook '.*Broken': no database"),
    ("on_file", f"{HERE}:CALLS", r"not a class"),
])
def test_bad_hooks_are_config_errors_naming_the_option(stage, spec, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        load_hook(cfg_(), stage, spec)
    assert err.value.option == stage
    assert f"option '{stage}'" in str(err.value)


def test_load_hooks_reads_every_stage_of_a_configuration(tmp_path):
    cfg = load_config("subscribe", None, [
        ("on_message", f"{HERE}:Record m1"), ("on_message", f"{HERE}:Record m2"),
        ("on_file", "exec /bin/true"), ("on_post", f"{HERE}:SkipIf x")])
    hooks = load_hooks(cfg)
    assert hooks.names("on_message") == [f"{HERE}:Record m1", f"{HERE}:Record m2"]
    assert hooks.names("on_file") == ["exec /bin/true"]
    assert hooks.has("on_post") and not hooks.has("on_part")
    assert not load_hooks(load_config("subscribe", None))
    assert not cfg.not_implemented()   # hooks are not 'accepted but ignored' any more


def test_a_bad_hook_stops_the_tool_at_start_with_exit_2(tmp_path):
    res = run_tool("subscribe", "--broker", "amqp://guest@127.0.0.1/", "--on_file", "nosuch",
                   "foreground", check=False, timeout=60,
                   env={"SARRA_CONFIG_DIR": os.environ["SARRA_CONFIG_DIR"],
                        "SARRA_STATE_DIR": os.environ["SARRA_STATE_DIR"]})
    assert res.returncode == 2, res.stderr
    assert "option 'on_file': unknown hook 'nosuch'" in res.stderr


# ------------------------------------------------------------------- chains

@pytest.mark.parametrize("result, expected", [
    (True, True), ("PASS", True), ("pass", True), (None, True),
    (False, False), ("SKIP", False), ("skip", False)])
def test_verdicts(result, expected):
    assert verdict(result) is expected


@pytest.mark.parametrize("result", [0, 1, "maybe", [], "OK"])
def test_other_answers_are_the_hook_s_mistake(result):
    with pytest.raises(PluginError, match="expected True"):
        verdict(result)


def test_chain_runs_in_order_and_a_skip_ends_it():
    hooks = chain("on_file", f"{HERE}:Record first", f"{HERE}:SkipIf bad",
                  f"{HERE}:Record last")
    assert hooks.run("on_file", msg("x/good")) is True
    assert hooks.skipped_by("on_file", msg("x/bad")) == f"{HERE}:SkipIf bad"
    assert CALLS == [("first", "x/good"), ("last", "x/good"), ("first", "x/bad")]


def test_an_exception_is_logged_and_raised_as_plugin_error(caplog):
    hooks = chain("on_message", f"{HERE}:Record first", f"{HERE}:RaiseIf boom",
                  f"{HERE}:Record last")
    caplog.set_level(logging.DEBUG, logger="sarra.plugins")
    with pytest.raises(PluginError) as err:
        hooks.run("on_message", msg("d/boom.txt"))
    assert str(err.value) == (f"on_message hook '{HERE}:RaiseIf boom' failed: "
                              "RuntimeError: cannot cope with d/boom.txt")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None      # a terse ERROR line
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)
    assert CALLS == [("first", "d/boom.txt")]
    assert hooks.run("on_message", msg("d/fine.txt")) is True   # the next one goes on


def test_unknown_stage_and_close():
    with pytest.raises(ValueError):
        Hooks({"after_work": []})
    closed = []
    hooks = chain("on_file", "exec /bin/true")
    hooks._chains["on_file"][0].obj.close = lambda: closed.append(1)
    hooks.close()
    assert closed == [1]


# --------------------------------------------------------------------- exec

def env_of(tmp_path, stage, m) -> dict[str, str]:
    out = tmp_path / f"env.{stage}"
    ex = Exec(cfg_(), "/bin/sh", "-c", 'env > "$0"', str(out))
    assert getattr(ex, stage)(m) is True
    pairs = (line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if k.startswith("SARRA_")}


def test_exec_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SARRA_FILE", "/inherited/must/not/leak")
    m = msg("obs/2026/f one.dat", local=str(tmp_path / "f one.dat"))
    env = env_of(tmp_path, "on_file", m)
    assert env["SARRA_FILE"] == str(tmp_path / "f one.dat")
    assert env["SARRA_STAGE"] == "on_file"
    assert env["SARRA_RELPATH"] == "obs/2026/f one.dat"
    assert env["SARRA_BASE_URL"] == "http://example.com/"
    assert env["SARRA_TOPIC"] == "v02.post.obs.2026"
    assert env["SARRA_SUM"] == "d," + "0" * 32
    assert env["SARRA_PARTS"] == "1,100,1,0,0"
    assert env["SARRA_SOURCE"] == "alice"
    assert env["SARRA_STATE_DIR"] == os.environ["SARRA_STATE_DIR"]   # the rest is inherited
    env = env_of(tmp_path, "on_message", m)
    assert "SARRA_FILE" not in env and env["SARRA_STAGE"] == "on_message"
    assert env_of(tmp_path, "on_part", m)["SARRA_FILE"] == str(tmp_path / "f one.dat")
    env = env_of(tmp_path, "on_post", msg("x/y", source=""))
    assert "SARRA_FILE" not in env and env["SARRA_SOURCE"] == ""


def test_exec_exit_status_is_skip_before_work_and_failure_after():
    fail = Exec(cfg_(), "/bin/sh", "-c", "exit 3")
    assert fail.on_message(msg()) is False
    assert fail.on_post(msg()) is False
    for stage in ("on_file", "on_part"):
        with pytest.raises(PluginError, match="/bin/sh exited 3"):
            getattr(fail, stage)(msg())
    ok = Exec(cfg_(), "true")
    assert all(getattr(ok, s)(msg()) for s in ("on_message", "on_part", "on_file", "on_post"))
    with pytest.raises(PluginError, match="killed by signal 9"):
        Exec(cfg_(), "/bin/sh", "-c", "kill -9 $$").on_file(msg())


def test_exec_timeout_kills_the_command_and_its_children(tmp_path):
    marker = tmp_path / "late"
    ex = Exec(cfg_(timeout=0.3), "/bin/sh", "-c", f'(sleep 1; touch "{marker}") & sleep 30')
    started = time.monotonic()
    with pytest.raises(PluginError, match=r"still running after 0.3s: killed"):
        ex.on_message(msg())      # a timeout is a failure at every stage
    assert time.monotonic() - started < 1
    time.sleep(1.2)
    assert not marker.exists()    # the background child went with it


def test_exec_output_goes_to_the_log_a_few_lines_of_it(caplog):
    caplog.set_level(logging.INFO, logger="sarra.plugins")
    Exec(cfg_(), "/bin/sh", "-c", "for i in $(seq 1 20); do echo line$i; done; echo err >&2")\
        .on_file(msg("o/p"))
    lines = [r.getMessage() for r in caplog.records if r.name == "sarra.plugins.command"]
    assert lines[0] == "/bin/sh (o/p): line1"
    assert lines[-1] == "/bin/sh (o/p): ... (16 more lines)"
    assert len(lines) == 6
    assert shown("x" * 1000)[0] == "x" * 300 + "..."


# ------------------------------------------------------------ size and age

@pytest.mark.parametrize("parts, passed", [
    ("1,1023,1,0,0", False), ("1,1024,1,0,0", True), ("1,2097152,1,0,0", True),
    ("1,2097153,1,0,0", False), ("i,1048576,2,5,0", True),   # 1M + 5 bytes in blocks
    ("i,1048576,3,0,0", False), (None, True)])
def test_size_filter(parts, passed):
    m = msg()
    if parts is None:
        del m.headers["parts"]         # a delete, a link: nothing to judge
    else:
        m.headers["parts"] = parts
    assert load_hook(cfg_(), "on_message", "size 1k 2m").call(m) is passed


def test_size_bounds_checked():
    with pytest.raises(ConfigError, match="larger than MAX"):
        load_hook(cfg_(), "on_message", "size 2m 1k")


@pytest.mark.parametrize("age, passed", [(10, True), (3599, True), (3601, False),
                                         (86400 * 3, False)])
def test_age_filter(age, passed):
    m = msg()
    m.pubtime = format_time(time.time() - age)
    assert load_hook(cfg_(), "on_message", "age 1h").call(m) is passed


# ------------------------------------------------------------ log and move_to

def test_log_appends_one_line_per_message_and_stage(tmp_path):
    path = tmp_path / "logs" / "hooks.log"
    hooks = Hooks({s: [load_hook(cfg_(), s, f"log {path}")] for s in ("on_message", "on_file")})
    m = msg("a/tab\there.dat")
    hooks.run("on_message", m)
    m.local_path = "/data/a/tab\there.dat"
    hooks.run("on_file", m)
    hooks.close()
    lines = [ln.split("\t") for ln in path.read_text().splitlines()]
    assert [ln[1:] for ln in lines] == [
        ["on_message", "a/tab\\there.dat", "-", "100"],
        ["on_file", "a/tab\\there.dat", "/data/a/tab\\there.dat", "100"]]
    assert lines[0][0].endswith("Z") and lines[0][0][:2] == "20"


def test_move_to_keeps_the_relative_path_and_later_hooks_see_it(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    local = root / "2026" / "n1" / "f.dat"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"data")
    m = msg("x/2026/n1/f.dat", local=str(local))
    m.local_root = str(root)
    seen = tmp_path / "seen"
    hooks = Hooks({"on_file": [load_hook(cfg_(), "on_file", f"move_to {out}"),
                               load_hook(cfg_(), "on_file",
                                         f"exec /bin/sh -c 'echo \"$SARRA_FILE\" > {seen}'")]})
    assert hooks.run("on_file", m)
    assert (out / "2026" / "n1" / "f.dat").read_bytes() == b"data"
    assert not local.exists()
    assert seen.read_text().strip() == str(out / "2026" / "n1" / "f.dat")


# -------------------------------------------------------------- set_complete

SET_RE = r"results-[^/]+/(?P<set>\d{4}-\d\d-\d\d)/node\d\d/"


def day_files(day: str, nodes: int = 3) -> list[str]:
    return [f"results-x/{day}/node{n:02d}/capture.pcap" for n in range(1, nodes + 1)]


def set_hook(tmp_path, out: Path, count: int = 3, command: str | None = None) -> SetComplete:
    command = command or ('printf "%s|%s\\n" "$SARRA_SET" "$(echo "$SARRA_SET_FILES" '
                          '| tr "\\n" ",")" >> "$0"')
    return SetComplete(cfg_(key="sets"), SET_RE, str(count), "exec", "/bin/sh", "-c", command,
                       str(out))


def arrive(hook: SetComplete, relpath: str) -> bool:
    return hook.on_file(msg(relpath, local="/data/" + relpath))


def test_set_complete_fires_once_when_the_last_member_arrives(tmp_path):
    out = tmp_path / "fired"
    hook = set_hook(tmp_path, out)
    first, second, third = day_files("2026-11-24")
    for rel in (first, second, second, "other/file.txt"):   # a duplicate, a non-member
        assert arrive(hook, rel)
    assert not out.exists()
    assert arrive(hook, third)
    files = ",".join("/data/" + r for r in (first, second, third)) + ","
    assert out.read_text() == f"2026-11-24|{files}\n"
    assert arrive(hook, third) and arrive(hook, first)       # sent again: nothing more
    hook.close()
    again = set_hook(tmp_path, out)                          # a restart
    for rel in day_files("2026-11-24"):
        arrive(again, rel)
    assert out.read_text().count("\n") == 1


def test_set_membership_survives_a_restart(tmp_path):
    out = tmp_path / "fired"
    a, b, c = day_files("2026-11-25")
    hook = set_hook(tmp_path, out)
    arrive(hook, a)
    arrive(hook, b)
    hook.close()
    arrive(set_hook(tmp_path, out), c)
    assert out.read_text().startswith("2026-11-25|")


def test_a_failed_set_command_fires_again_at_the_next_arrival(tmp_path):
    flag = tmp_path / "ok-now"
    out = tmp_path / "fired"
    command = f'test -e "{flag}" && echo "$SARRA_SET" >> "$0"'
    hook = set_hook(tmp_path, out, 2, command)
    a, b = day_files("2026-11-26", 2)
    arrive(hook, a)
    with pytest.raises(PluginError, match="set 2026-11-26 complete, but /bin/sh exited 1"):
        arrive(hook, b)
    flag.touch()
    arrive(hook, b)                       # b sent again
    arrive(hook, a)
    assert out.read_text() == "2026-11-26\n"


def _race(state_dir: str, out: str, order: list[str], barrier) -> None:
    os.environ["SARRA_STATE_DIR"] = state_dir
    hook = SetComplete(cfg_(key="sets"), SET_RE, "3", "exec", "/bin/sh", "-c",
                       'echo "$SARRA_SET" >> "$0"', out)
    barrier.wait(30)
    for rel in order:
        hook.on_file(msg(rel, local="/data/" + rel))
    hook.close()


def test_set_complete_exactly_once_with_processes_racing(tmp_path):
    """Two processes (two instances of a configuration), each handed every
    file of 15 days (the worst case: every message delivered twice), in
    opposite orders, started together: each day fires exactly once."""
    days = [f"2026-10-{d:02d}" for d in range(1, 16)]
    files = [f for day in days for f in day_files(day)]
    out = tmp_path / "fired"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_race, args=(os.environ["SARRA_STATE_DIR"], str(out), order,
                                             barrier))
             for order in (files, files[::-1])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    fired = out.read_text().split()
    assert sorted(fired) == days


# ------------------------------------------------------------- in the flow

class FakePub:
    """Stands for the Reporter and the Publisher: records what is sent."""
    broker = None

    def __init__(self):
        self.reports: list[tuple[str, int, str]] = []
        self.posts: list[Message] = []

    def report(self, m, code, text):
        self.reports.append((m.relpath, code, text))

    def publish(self, m):
        self.posts.append(m)

    def flush(self, timeout=60.0):
        pass


def flow_for(tmp_path, *hooks: tuple[str, str]):
    src, dst = tmp_path / "src", tmp_path / "dst"
    cfg = load_config("subscribe", None, [
        ("directory", str(dst)), ("mirror", "on"), ("accept", ".*"),
        ("post_base_url", "http://mirror.example.com/"), *hooks], PRESETS["subscribe"])
    reporter, poster = FakePub(), FakePub()
    flow = Flow(cfg, PathSource(cfg, []), Downloader(cfg), poster, reporter,
                hooks=load_hooks(cfg))
    return flow, src, dst, reporter, poster


def posts_for(src: Path, names: list[str]) -> list[Message]:
    out = []
    for name in names:
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 10)
        out.append(Message(format_time(time.time()), f"file:{src}/", name,
                           {"sum": sum_file(str(path), "d"),
                            "parts": f"1,{path.stat().st_size},1,0,0"}))
    return out


def run_batch(flow, messages) -> Worklist:
    wl = Worklist.of(messages)
    flow.process(wl)
    return wl


def files_in(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_flow_on_message_skip_means_not_downloaded_not_reported(tmp_path):
    skip = ('exec /bin/sh -c \'case "$SARRA_RELPATH" in *skip*) exit 1;; esac; '
            'test -z "$SARRA_FILE"\'')
    flow, src, dst, reporter, poster = flow_for(tmp_path, ("on_message", skip))
    wl = run_batch(flow, posts_for(src, ["a/keep1", "a/skip1", "b/keep2", "b/skip2"]))
    assert files_in(dst) == ["a/keep1", "b/keep2"]
    assert sorted((r, c) for r, c, _ in reporter.reports) == [("a/keep1", 201), ("b/keep2", 201)]
    assert sorted(p.relpath for p in poster.posts) == ["a/keep1", "b/keep2"]
    assert sorted(j.msg.relpath for j in wl.rejected) == ["a/skip1", "b/skip2"]
    assert wl.rejected[0].outcome.reason.startswith("skipped by on_message hook 'exec")


def test_flow_a_failing_hook_mid_chain_reports_503_and_the_rest_goes_on(tmp_path):
    flow, src, dst, reporter, poster = flow_for(
        tmp_path, ("on_file", f"{HERE}:Record first"), ("on_file", f"{HERE}:RaiseIf f2"),
        ("on_file", f"{HERE}:SkipIf f3"), ("on_file", f"{HERE}:Record last"))
    names = ["d/f1", "d/f2", "d/f3", "d/f4"]
    wl = run_batch(flow, posts_for(src, names))
    assert files_in(dst) == names                       # every file was downloaded
    codes = {r: (c, t) for r, c, t in reporter.reports}
    assert codes["d/f2"] == (503, f"on_file hook '{HERE}:RaiseIf f2' failed: "
                                  "RuntimeError: cannot cope with d/f2")
    assert codes["d/f1"][0] == codes["d/f3"][0] == codes["d/f4"][0] == 201
    assert "skipped by on_file hook" in codes["d/f3"][1]
    assert sorted(p.relpath for p in poster.posts) == ["d/f1", "d/f4"]   # f2 failed, f3 skipped
    assert ("last", "d/f1") in CALLS and ("last", "d/f4") in CALLS
    assert not any(label == "last" and rel in ("d/f2", "d/f3") for label, rel in CALLS)
    assert wl.failed == []                              # reported, acknowledged, not retried
    assert flow.stats[503] == 1 and flow.stats[201] == 3


def test_flow_on_file_runs_for_arrivals_only(tmp_path):
    flow, src, dst, reporter, poster = flow_for(tmp_path, ("on_file", f"{HERE}:Record f"))
    posts = posts_for(src, ["e/one"])
    run_batch(flow, posts)
    run_batch(flow, posts_for(src, ["e/one"]))          # the same file again: 304
    assert CALLS == [("f", "e/one")]
    assert [c for _, c, _ in reporter.reports] == [201, 304]


def test_flow_on_post_skip_and_failure(tmp_path):
    flow, src, dst, reporter, poster = flow_for(
        tmp_path, ("on_post", f"{HERE}:SkipIf quiet"), ("on_post", f"{HERE}:RaiseIf bad"),
        ("on_post", f"{HERE}:Record p"))
    run_batch(flow, posts_for(src, ["g/loud", "g/quiet", "g/bad"]))
    assert files_in(dst) == ["g/bad", "g/loud", "g/quiet"]
    assert [p.relpath for p in poster.posts] == ["g/loud"]
    assert poster.posts[0].base_url == "http://mirror.example.com/"
    assert CALLS == [("p", "g/loud")]                   # hooks see the post as published
    codes = {r: (c, t) for r, c, t in reporter.reports}
    assert codes["g/quiet"][0] == 201 and "not posted" in codes["g/quiet"][1]
    assert codes["g/bad"][0] == 503


def test_flow_on_post_sees_the_repost_with_its_local_file(tmp_path):
    seen = tmp_path / "seen"
    flow, src, dst, reporter, poster = flow_for(
        tmp_path, ("on_post", f"exec /bin/sh -c 'echo \"$SARRA_BASE_URL $SARRA_FILE\" > {seen}'"))
    run_batch(flow, posts_for(src, ["h/one"]))
    assert seen.read_text().split() == ["http://mirror.example.com/", str(dst / "h" / "one")]


def test_flow_on_part_for_each_block_on_file_once_when_whole(tmp_path):
    flow, src, dst, reporter, poster = flow_for(
        tmp_path, ("on_part", f"{HERE}:RecordParts part"), ("on_file", f"{HERE}:Record file"))
    (src / "k").mkdir(parents=True)
    (src / "k" / "big").write_bytes(bytes(range(256)) * 4)          # 1024 bytes
    post_cfg = load_config("post", None, [("post_base_url", f"file:{src}/"),
                                          ("post_base_dir", str(src)), ("blocksize", "300")])
    blocks = file_messages(post_cfg, str(src / "k" / "big"))
    assert len(blocks) == 4
    for m in blocks[::-1]:                 # any order, one batch each
        run_batch(flow, [m])
    assert (dst / "k" / "big").read_bytes() == (src / "k" / "big").read_bytes()
    assert [label for label, _ in CALLS] == ["part"] * 4 + ["file"]


def test_flow_announces_a_file_in_blocks_once_whole(tmp_path):
    """A subscriber that re-posts (post_broker) announces a file that came in
    blocks once, whole, with a whole-file sum, when its last block is in."""
    flow, src, dst, reporter, poster = flow_for(tmp_path)
    (src / "m").mkdir(parents=True)
    data = bytes(range(256)) * 4
    (src / "m" / "big").write_bytes(data)
    post_cfg = load_config("post", None, [("post_base_url", f"file:{src}/"),
                                          ("post_base_dir", str(src)), ("blocksize", "300")])
    for m in file_messages(post_cfg, str(src / "m" / "big")):
        run_batch(flow, [m])
    assert [(p.relpath, p.headers["parts"]) for p in poster.posts] == [("m/big", "1,1024,1,0,0")]
    assert poster.posts[0].headers["sum"] == sum_file(str(dst / "m" / "big"), "s")
