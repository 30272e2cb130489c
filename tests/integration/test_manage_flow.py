"""Managing configurations with instances running (real processes, started
by ``sarra start``): ``remove`` and ``disable`` are refused while the
configuration runs; once stopped and disabled, ``start`` and ``sanity``
skip it and ``list`` says it is disabled."""
from __future__ import annotations

from tests.helpers import run_tool


def test_remove_and_disable_wait_until_it_is_stopped(sarra_home, tmp_path):
    sarra_home.write_config("subscribe", "busy", (
        f"broker memory://manage-flow/\nexchange xpublic\ndirectory {tmp_path}\naccept .*\n"))
    res = run_tool("sarra", "start", "subscribe/busy", check=False, timeout=60)
    assert res.returncode == 0 and "subscribe/busy instance 1 started" in res.stdout, \
        res.stdout + res.stderr
    try:
        for action in ("remove", "disable"):
            res = run_tool("sarra", action, "subscribe/busy", check=False)
            assert res.returncode == 2, res.stdout + res.stderr
            assert (f"subscribe/busy is running: stop it before you {action} it "
                    "(sarra stop subscribe/busy)") in res.stderr
        assert (sarra_home.config_dir / "subscribe" / "busy.conf").is_file()
    finally:
        run_tool("sarra", "stop", "subscribe/busy", check=False, timeout=60)
    res = run_tool("sarra", "disable", "subscribe/busy")
    assert "disabled: " in res.stdout
    for action in ("start", "sanity"):
        res = run_tool("sarra", action, check=False, timeout=60)
        assert "subscribe/busy" not in res.stdout, res.stdout      # skipped
    res = run_tool("sarra", "list")
    assert "subscribe/busy: " in res.stdout and "(disabled: sarra enable subscribe/busy)" \
        in res.stdout
    res = run_tool("sarra", "status", check=False)
    assert "subscribe/busy" not in res.stdout
