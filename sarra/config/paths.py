"""Where configurations, state and logs live (doc/user-guide.md §2).

* configurations: ``$SARRA_CONFIG_DIR`` (default ``~/.config/sarra``),
  ``<config_dir>/<tool>/<name>.conf``, ``credentials.conf``, ``default.conf``;
* state: ``$SARRA_STATE_DIR`` (default ``~/.cache/sarra``),
  ``<state_dir>/<tool>/<config>/...`` (pid files, queue names, caches);
* logs: ``<state_dir>/log/<tool>_<config>_<NN>.log``;
* SSH host keys (SFTP): ``<state_dir>/known_hosts``.
"""
import os

from ..errors import ConfigError
from ..tools import NAMES as TOOLS

LOG_ENV = "SARRA_LOG_FILE"    # a daemon instance logs to this file itself (and rotates it)


def _check_tool(tool: str) -> None:
    if tool not in TOOLS:
        raise ConfigError(f"unknown tool '{tool}' (tools: {', '.join(TOOLS)})")


def config_dir() -> str:
    """The configuration directory: $SARRA_CONFIG_DIR or ~/.config/sarra."""
    return (os.environ.get("SARRA_CONFIG_DIR")
            or os.path.join(os.path.expanduser("~"), ".config", "sarra"))


def state_dir() -> str:
    """The state directory: $SARRA_STATE_DIR or ~/.cache/sarra."""
    return (os.environ.get("SARRA_STATE_DIR")
            or os.path.join(os.path.expanduser("~"), ".cache", "sarra"))


def known_hosts() -> str:
    """The SSH host keys the tools remember (SFTP: ``<state_dir>/known_hosts``),
    shared by every configuration of this user."""
    return os.path.join(state_dir(), "known_hosts")


def config_file(tool: str, name: str) -> str:
    """The file of configuration ``name`` of ``tool``.

    A ``name`` that is an existing file or contains a '/' is a path and is
    returned as given; otherwise ``<config_dir>/<tool>/<name>.conf`` (a
    trailing '.conf' on ``name`` is accepted).
    """
    _check_tool(tool)
    if os.sep in name or "/" in name or os.path.isfile(name):
        return name
    if name.endswith(".conf"):
        name = name[:-len(".conf")]
    return os.path.join(config_dir(), tool, name + ".conf")


def instance() -> int:
    """The instance number a daemon was started as; 0 for a foreground run
    (its retry queue, metrics and positions never mix with a started instance's)."""
    return int(os.environ.get("SARRA_INSTANCE", "0") or 0)


def state_path(tool: str, config: str, *names: str) -> str:
    """``<state_dir>/<tool>/<config>/<names...>``, creating its directory."""
    _check_tool(tool)
    base = os.path.join(state_dir(), tool, config)
    path = os.path.join(base, *names)
    os.makedirs(os.path.dirname(path) if names else path, exist_ok=True)
    return path


def log_path(tool: str, config: str, instance: int) -> str:
    """``<state_dir>/log/<tool>_<config>_<NN>.log``, creating the directory."""
    _check_tool(tool)
    directory = os.path.join(state_dir(), "log")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"{tool}_{config}_{int(instance):02d}.log")
