"""Managing configurations with ``sarra``: show (each value and its origin,
passwords hidden), add (a file, an etc/ example; never a broken one, never
over an existing one), edit (EDITOR a script: saved when it loads, refused
and kept aside when it does not), remove, disable/enable (skipped by the
actions on every configuration, listed as disabled)."""
import os
import stat

import pytest

from sarra import cli

SECRET = "Xy7secretPw"


@pytest.fixture
def confdir(confdir):
    (confdir / "subscribe").mkdir()
    return confdir


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_show_gives_each_value_and_where_it_comes_from(confdir, sarra_cli):
    (confdir / "default.conf").write_text("timeout 12\n")
    (confdir / "subscribe" / "common.inc").write_text("prefetch 40\n")
    (confdir / "subscribe" / "obs.conf").write_text(
        f"broker amqp://alice:{SECRET}@switch.example.com/\n"
        "exchange xpublic\n"
        "include common.inc\n"
        "directory /data/obs\n"
        "accept .*/swob/.*\n")
    rc, out, err = sarra_cli("show", "subscribe/obs", "--expire", "2h")
    assert rc == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if not line.startswith("#")}
    assert rows["broker"].split()[1] == "amqp://alice@switch.example.com/"
    assert rows["broker"].endswith("# obs.conf:1")
    assert rows["prefetch"].split()[1] == "40"
    assert rows["prefetch"].endswith(f"# include {confdir}/subscribe/common.inc:1")
    assert rows["timeout"].endswith("# default.conf:1") and rows["timeout"].split()[1] == "12s"
    assert rows["expire"].split()[1] == "7200s" and rows["expire"].endswith("# command line")
    assert rows["attempts"].split()[1] == "3" and rows["attempts"].endswith("# default")
    assert "accept .*/swob/.*  # obs.conf:5 (directory /data/obs, mirror off)" in out
    assert "path" not in rows and "events" not in rows     # dd_watch's options: not shown
    assert SECRET not in out + err
    names = [line.split()[0] for line in out.splitlines()[1:]
             if not line.startswith(("#", "accept ", "reject "))]
    first_default = next(i for i, n in enumerate(names) if rows[n].endswith("# default"))
    assert all(not rows[n].endswith("# default") for n in names[:first_default])


def test_show_of_a_missing_or_mistyped_configuration(confdir, sarra_cli):
    (confdir / "subscribe" / "obs.conf").write_text("broker amqp://u@h/\n")
    rc, _out, err = sarra_cli("show", "subscribe/osb")
    assert rc == 2 and "no such configuration (did you mean 'obs'?" in err
    rc, _out, err = sarra_cli("show", "subscrib/obs")
    assert rc == 2 and "did you mean 'subscribe'?" in err
    rc, _out, err = sarra_cli("show", "subscribe/obs", "--prefetsh", "3")
    assert rc == 2 and "did you mean '--prefetch'?" in err


def test_add_copies_a_file_or_an_example_and_checks_it(confdir, tmp_path, sarra_cli):
    good = tmp_path / "mine.conf"
    good.write_text("broker amqp://u@h/\nexchange xpublic\naccept .*\n")
    rc, out, err = sarra_cli("add", "subscribe", good)
    assert rc == 0, err
    assert (confdir / "subscribe" / "mine.conf").read_text() == good.read_text()
    rc, out, err = sarra_cli("add", "subscribe/other", good)
    assert rc == 0 and (confdir / "subscribe" / "other.conf").is_file()
    rc, out, err = sarra_cli("add", "subscribe/mine", good)
    assert rc == 2 and "exists already" in err
    bad = tmp_path / "bad.conf"
    bad.write_text("broker amqp://u@h/\nprefetch many\n")
    rc, out, err = sarra_cli("add", "subscribe/bad", bad)
    assert rc == 2 and f"{bad}:2: option 'prefetch': 'many' is not an integer" in err
    assert sorted(os.listdir(confdir / "subscribe")) == ["mine.conf", "other.conf"]
    rc, out, err = sarra_cli("add", "subscribe/obs-flat")          # the etc/ example
    assert rc == 0, err
    assert "swob-ml" in (confdir / "subscribe" / "obs-flat.conf").read_text()
    rc, out, err = sarra_cli("add", "subscribe/obs-flt")
    assert rc == 2 and "no example subscribe/obs-flt (did you mean 'subscribe/obs-flat'?)" in err


def test_edit_saves_what_loads_and_keeps_aside_what_does_not(confdir, tmp_path, sarra_cli,
                                                             monkeypatch):
    conf = confdir / "subscribe" / "obs.conf"
    conf.write_text("broker amqp://u@h/\nexchange xpublic\n")
    original = conf.read_text()
    monkeypatch.setenv("EDITOR", script(tmp_path, "bad.sh", 'echo "prefetch lots" >> "$1"\n'))
    rc, out, err = sarra_cli("edit", "subscribe/obs")
    draft = tmp_path / "state" / "subscribe" / "obs" / "obs.conf.edit"
    assert rc == 2
    assert f"{draft}:3: option 'prefetch': 'lots' is not an integer; not saved" in err
    assert conf.read_text() == original
    assert draft.read_text() == original + "prefetch lots\n"
    monkeypatch.setenv("EDITOR", script(tmp_path, "good.sh", 'echo "prefetch 9" >> "$1"\n'))
    rc, out, err = sarra_cli("edit", "subscribe/obs")
    assert rc == 0 and f"saved {conf}" in out, err
    assert conf.read_text() == original + "prefetch 9\n" and not draft.exists()
    monkeypatch.setenv("EDITOR", "true")
    rc, out, err = sarra_cli("edit", "subscribe/obs")
    assert rc == 0 and "no change" in out
    monkeypatch.setenv("EDITOR", script(tmp_path, "fail.sh", 'echo "x" >> "$1"; exit 3\n'))
    rc, out, err = sarra_cli("edit", "subscribe/obs")
    assert rc == 2 and "the editor exited 3" in err
    assert conf.read_text() == original + "prefetch 9\n"
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
    rc, out, err = sarra_cli("edit", "subscribe/obs")
    assert rc == 2 and "cannot run the editor" in err
    rc, out, err = sarra_cli("edit", "subscribe/none")
    assert rc == 2 and "no such configuration" in err


def test_disable_enable_remove(confdir, sarra_cli, capsys):
    conf = confdir / "subscribe" / "obs.conf"
    conf.write_text("broker amqp://u@h/\nexchange xpublic\n")
    (confdir / "subscribe" / "other.conf").write_text("broker amqp://u@h/\n")
    rc, out, err = sarra_cli("disable", "subscribe/obs")
    assert rc == 0 and not conf.exists() and (confdir / "subscribe" / "obs.conf.off").is_file()
    assert cli.configurations([]) == [("subscribe", "other")]   # start, sanity... skip it
    rc, out, err = sarra_cli("list")
    assert f"subscribe/obs: {conf}.off (disabled: sarra enable subscribe/obs)" in out
    assert f"subscribe/other: {confdir}/subscribe/other.conf (1 instance)" in out
    rc, out, err = sarra_cli("start", "subscribe/obs")
    assert rc == 2 and "(it is disabled: sarra enable subscribe/obs enables it)" in err
    assert cli.run("subscribe", ["start", "obs"]) == 2
    assert "it is disabled" in capsys.readouterr().err
    rc, out, err = sarra_cli("disable", "subscribe/obs")
    assert rc == 2 and "disabled already" in err
    rc, out, err = sarra_cli("enable", "subscribe/obs")
    assert rc == 0 and conf.is_file()
    rc, out, err = sarra_cli("enable", "subscribe/obs")
    assert rc == 2 and "enabled already" in err
    rc, out, err = sarra_cli("remove", "subscribe/obs")
    assert rc == 0 and not conf.exists() and f"removed {conf}" in out
    rc, out, err = sarra_cli("remove", "subscribe/obs")
    assert rc == 2 and "no such configuration" in err
    rc, out, err = sarra_cli("remove", "subscribe")
    assert rc == 2 and "name the configuration, subscribe/NAME" in err


def test_a_broken_configuration_can_be_removed_or_disabled(confdir, sarra_cli):
    conf = confdir / "subscribe" / "broken.conf"
    conf.write_text("broker amqp://u@h/\nprefetch lots\n")
    rc, out, err = sarra_cli("disable", "subscribe/broken")
    assert rc == 0, err
    rc, out, err = sarra_cli("enable", "subscribe/broken")
    rc, out, err = sarra_cli("remove", "subscribe/broken")
    assert rc == 0 and not conf.exists(), err


def test_dd_posts_configurations_are_managed_too(confdir, sarra_cli, tmp_path):
    mine = tmp_path / "daily.conf"
    mine.write_text("post_broker amqp://u@h/\npost_base_url http://h/\npath /srv/data\n")
    rc, out, err = sarra_cli("add", "post", mine)
    assert rc == 0 and (confdir / "post" / "daily.conf").is_file(), err
    rc, out, err = sarra_cli("show", "post/daily")
    assert rc == 0 and ["path", "/srv/data", "#", "daily.conf:3"] in \
        [line.split() for line in out.splitlines()], out + err
