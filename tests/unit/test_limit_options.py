"""The options of the transfer limits (transfer_rate_min, download_size_max,
disk_reserve): their defaults, their values, the tools they apply to. What
they do: tests/unit/test_copy_limits.py, tests/integration/test_hostile_servers.py.
"""
import pytest

from sarra.config.options import OPTIONS, parse_reserve, parse_value
from sarra.transfer import base

MiB = 1 << 20


def test_the_options_and_their_defaults():
    assert OPTIONS["transfer_rate_min"].default == base.RATE_MIN == 1024
    assert OPTIONS["download_size_max"].default == 1 << 30
    assert OPTIONS["disk_reserve"].default == 0.01
    assert parse_value(OPTIONS["transfer_rate_min"], "10k") == 10240
    assert parse_value(OPTIONS["disk_reserve"], "2%") == 0.02
    assert parse_value(OPTIONS["disk_reserve"], "500M") == 500 * MiB
    assert parse_reserve("0") == 0
    for bad in ("100%", "x%", "-1%", "lots"):
        with pytest.raises(ValueError):
            parse_reserve(bad)
    for name in ("transfer_rate_min", "download_size_max", "disk_reserve"):
        assert OPTIONS[name].applies_to("subscribe") and OPTIONS[name].applies_to("sara")


def test_a_configuration_gives_its_limits_to_the_copy(tmp_path, monkeypatch):
    from sarra.config import load_config
    from sarra.transfer.base import Limits
    monkeypatch.setenv("SARRA_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("SARRA_STATE_DIR", str(tmp_path / "state"))
    cfg = load_config("subscribe", None, [("timeout", "3"), ("transferRateMin", "10k"),
                                          ("download_size_max", "5M"), ("disk_reserve", "2%")])
    assert Limits.of(cfg, 7, sized=False) == Limits(3.0, 10240, 5 * MiB, 0.02, 7)
    assert Limits.of(cfg, 7, sized=True) == Limits(3.0, 10240, 0, 0.02, 7)
    default = load_config("sara", None, [])
    assert Limits.of(default, None, sized=False) == Limits(30.0, 1024, 1 << 30, 0.01, None)
