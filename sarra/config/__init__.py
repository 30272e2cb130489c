"""Configuration: declared options, files and overrides, credentials, paths.

See doc/user-guide.md §2 (where files live) and §11 (the configuration language).
"""
from .credentials import Credentials, broker_user, mask, strip_password, url_user
from .loader import (Config, Invocation, Mask, help_text, load_config,
                     parse_argv)
from .options import ALIASES, OPTIONS, Option
from .paths import (TOOLS, config_dir, config_file, log_path, state_dir,
                    state_path)

__all__ = [
    "ALIASES", "OPTIONS", "TOOLS", "Config", "Credentials", "Invocation", "broker_user",
    "Mask", "Option", "config_dir", "config_file", "help_text", "load_config",
    "log_path", "mask", "parse_argv", "state_dir", "state_path",
    "strip_password", "url_user",
]
