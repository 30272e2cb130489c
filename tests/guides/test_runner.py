"""The guide runner itself (tests/guides/runner.py): how a guide is read into
steps, and what a machine substitutes. No server needed."""
from __future__ import annotations

import pytest

from tests.guides.runner import GuideError, GuideRunner, Machine, parse_guide
from tests.helpers import REPO_ROOT

GUIDE = """\
# A guide

<!-- guide: machine one -->
```sh
echo first
```

A file:

<!-- guide: file ~/.config/x.conf -->

```
broker amqp://u@switch.example.com/
```

An output sample:

```
not run
```

<!-- guide: machine two -->
## Section

<!-- guide: skip shown for another installation -->
```sh
apt-get install sarra
```

```sh
cat ~/.config/x.conf
```

## Stop here

```sh
echo never
```
"""


def test_a_guide_is_read_into_steps(tmp_path):
    path = tmp_path / "g.md"
    path.write_text(GUIDE)
    steps = parse_guide(path, stop="## Stop here")
    assert [(s.kind, s.machine, s.section) for s in steps] == [
        ("sh", "one", "A guide"), ("file", "one", "A guide"),
        ("skip", "two", "Section"), ("sh", "two", "Section")]
    assert steps[1].path == "~/.config/x.conf"
    assert steps[2].reason == "shown for another installation"
    assert steps[2].where() == "g.md:26 (Section)"
    assert [s.kind for s in parse_guide(path, start="## Section")] == ["skip", "sh", "sh"]


@pytest.mark.parametrize("text,error", [
    ("<!-- guide: file ~/x -->\n\n\n```\nx\n```\n", "not just above a block"),
    ("<!-- guide: skip why -->\n```\nx\n```\n", "skip before a non-sh block"),
    ("<!-- guide: mahcine x -->\n", "unknown guide directive 'mahcine'"),
    ("```sh\nnot closed\n", "block not closed"),
    ("text\n<!-- guide: file ~/x -->\n", "not followed by a block"),
])
def test_misplaced_or_misspelt_directives_are_errors(tmp_path, text, error):
    path = tmp_path / "g.md"
    path.write_text(text)
    with pytest.raises(GuideError, match=error):
        parse_guide(path)


def test_a_machine_substitutes_in_one_pass_and_runs_in_its_sandbox(tmp_path):
    machine = Machine("m", tmp_path / "m", paths=["/srv/data", "/data"],
                      subs={"@switch.example.com/": "@127.0.0.1:5999/"})
    text = "dd_post -pb amqp://u@switch.example.com/ -pbd /srv/data /data/x http://h/data/y"
    assert machine.substitute(text) == (
        f"dd_post -pb amqp://u@127.0.0.1:5999/ -pbd {machine.root}/srv/data "
        f"{machine.root}/data/x http://h/data/y")
    assert machine.path("/srv/data/a") == machine.root / "srv" / "data" / "a"
    assert machine.path("~/.config/sarra") == machine.home / ".config" / "sarra"
    with pytest.raises(GuideError):
        machine.path("/etc/elsewhere")
    assert machine.unused_substitutions() == []
    # the shell state carries from one command to the next, as in one terminal
    assert machine.sh("export GREETING=hello; mkdir -p /srv/data; cd /srv/data").returncode == 0
    result = machine.sh('echo "$GREETING $PWD"; sudo apt-get install -y x')
    assert result.stdout == f"hello {machine.root}/srv/data\n"
    assert machine.calls() == ["sudo apt-get install -y x", "apt-get install -y x"]
    # a failing command in the middle of a block stops it (bash -e -o pipefail)
    assert machine.sh("false | cat\necho not reached").returncode == 1


def test_a_failing_step_names_the_guide_line(tmp_path):
    path = tmp_path / "g.md"
    path.write_text("# G\n\n```sh\nexit 3\n```\n")
    runner = GuideRunner(parse_guide(path), {"local": Machine("local", tmp_path / "l")})
    with pytest.raises(GuideError, match=r"g.md:3 \(G\) on machine local: exited 3"):
        runner.run_to_end()


@pytest.mark.parametrize("guide", ["README.md", "doc/user-guide.md", "doc/admin-guide.md"])
def test_the_guides_directives_are_well_placed(guide):
    steps = parse_guide(REPO_ROOT / guide)
    assert any(s.kind == "sh" for s in steps)


def test_sysctl_is_recorded_and_checked_not_applied(tmp_path):
    machine = Machine("m", tmp_path / "m", paths=["/etc/sysctl.d"])
    machine.path("/etc/sysctl.d").mkdir(parents=True)
    result = machine.sh("echo 'fs.inotify.max_user_watches = 524288' > /etc/sysctl.d/60-x.conf\n"
                        "sysctl --system")
    assert result.returncode == 0, result.output
    assert result.stdout == ("* Applying /etc/sysctl.d/60-x.conf ...\n"
                             "fs.inotify.max_user_watches = 524288\n")
    bad = machine.sh("sysctl -w fs.inotify.max_user_wathces=1")
    assert bad.returncode == 255 and "cannot stat /proc/sys/fs/inotify/max_user_wathces" in bad.stderr
    assert machine.calls() == ["sysctl --system", "sysctl -w fs.inotify.max_user_wathces=1"]
    for wrong in ("sysctl -w", "sysctl -w '  fs.inotify.max_user_watches'"):
        assert machine.sh(wrong).returncode == 64, wrong        # nothing, or no '='


def test_systemctl_runs_the_package_s_units_in_the_sandbox(tmp_path):
    """debian/sarra.service's commands, with its environment (the package's
    paths in the sandbox): here on a configuration directory with nothing in
    it, which sarra says."""
    machine = Machine("m", tmp_path / "m")
    (machine.root / "var" / "lib" / "sarra").mkdir(parents=True)
    journal = machine.state / "units" / "sarra.service.log"
    assert machine.sh("systemctl enable --now sarra.service sarra-sanity.timer").returncode == 0
    said = f"sarra: no configurations in {machine.root}/etc/sarra\n"
    assert journal.read_text() == said                          # ExecStart, once
    assert machine.sh("systemctl start sarra").returncode == 0   # active: nothing to do
    assert journal.read_text() == said
    assert machine.sh("systemctl restart sarra").returncode == 0  # ExecStop, ExecStart
    assert journal.read_text() == said * 3
    unknown = machine.sh("systemctl enable --now sarra-nosuch.service")
    assert unknown.returncode == 64 and "unit sarra-nosuch.service not found" in unknown.stderr
    assert machine.calls() == ["systemctl enable --now sarra.service sarra-sanity.timer",
                               "systemctl start sarra", "systemctl restart sarra",
                               "systemctl enable --now sarra-nosuch.service"]
    # as systemd: the sanity service (oneshot, no RemainAfterExit) runs at each
    # start; it has no [Install] (its timer does) and nothing to reload
    sanity = machine.state / "units" / "sarra-sanity.service.log"
    for _ in range(2):
        assert machine.sh("systemctl start sarra-sanity.service").returncode == 0
    assert sanity.read_text().count(said) == 2
    assert machine.sh("systemctl enable sarra-sanity.service").returncode == 64
    assert machine.sh("systemctl reload sarra-sanity.service").returncode == 1
    # a WorkingDirectory that is not there fails the unit (200/CHDIR)
    (machine.root / "var" / "lib" / "sarra").rename(machine.root / "var" / "lib" / "gone")
    moved = machine.sh("systemctl restart sarra")
    assert moved.returncode == 1 and "failed" in moved.stderr
