"""dd_audit: make a broker and a web server hold what a switch description says.

    dd_audit declare SWITCH.yaml              create what is missing (one line per change)
    dd_audit check SWITCH.yaml                list every difference; exit 1 if any
    dd_audit add-user SWITCH.yaml NAME ROLE   add (or re-role) a user, in the file and at once
    dd_audit remove-user SWITCH.yaml NAME     remove a user, its exchanges and its queues
    dd_audit nginx SWITCH.yaml                print the nginx site serving data_dir at base_url
    dd_audit configs SWITCH.yaml              write the configurations of dd_sara, the log
                                              router and the links (sarra start runs them)

Exit codes: 0 done (check: no difference), 1 broker failure or differences
found, 2 bad usage or bad description (the message names file and key).
Logging is the caller's business (sarra.cli); results go to stdout.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from ..errors import ConfigError, SarraError
from . import configs, description, htpasswd, nginx, plugins, rabbit

log = logging.getLogger(__name__)

ACTIONS = {"declare": 0, "check": 0, "add-user": 2, "remove-user": 1, "nginx": 0,
           "configs": 0}
USAGE = """dd_audit [options] declare|check SWITCH.yaml
       dd_audit [options] add-user SWITCH.yaml NAME ROLE
       dd_audit [options] remove-user SWITCH.yaml NAME
       dd_audit nginx [--standalone] [--listen ADDR] [--output FILE] SWITCH.yaml
       dd_audit configs [--directory DIR] [--force] SWITCH.yaml"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dd_audit", usage=USAGE,
        description="Declare and check a switch's users, permissions, exchanges and "
                    "log routing on its RabbitMQ broker (management API), from a "
                    "switch description (YAML); write its nginx site and the "
                    "configurations of its components and links.",
        epilog=f"roles: {', '.join(description.ROLES)}. Passwords come from "
               "credentials.conf (amqp://USER:PASSWORD@broker-host:port/).")
    parser.add_argument("--version", action="version",
                        version=f"dd_audit (sarra) {__version__}")
    parser.add_argument("action", choices=sorted(ACTIONS), metavar="ACTION")
    parser.add_argument("switch", metavar="SWITCH.yaml")
    parser.add_argument("args", nargs="*", metavar="ARG")
    parser.add_argument("--management_url", "--management-url", metavar="URL",
                        help="the management API (default: the description's "
                             "management_url, else http://<broker host>:15672/api)")
    parser.add_argument("--standalone", action="store_true",
                        help="nginx: a whole nginx.conf (for nginx -p DIR -c FILE)")
    parser.add_argument("--listen", metavar="ADDR",
                        help="nginx: the listen address (default: from base_url)")
    parser.add_argument("--ssl_certificate", "--ssl-certificate", metavar="FILE")
    parser.add_argument("--ssl_certificate_key", "--ssl-certificate-key", metavar="FILE")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="nginx: write there instead of stdout")
    parser.add_argument("--directory", metavar="DIR",
                        help="configs: the configuration directory to write into "
                             "(default: $SARRA_CONFIG_DIR, else ~/.config/sarra)")
    parser.add_argument("--force", action="store_true",
                        help="configs: also replace files not written by dd_audit")
    return parser


def _say(lines: list[str], stream=None) -> None:
    for line in lines:
        print(line, file=stream or sys.stdout)


WEB_ROLES = ("source", "subscriber", "link")     # who logs in to the switch's nginx


def web_users(switch: description.Switch, passwords: dict[str, str]) -> dict[str, str]:
    """The users of the password file (name -> password): the description's
    sources, subscribers and links, with their broker passwords."""
    return {name: passwords[name] for name, role in switch.users.items()
            if role in WEB_ROLES}


def _declare(opts, switch: description.Switch) -> int:
    passwords = switch.passwords()
    with rabbit.connect(switch, opts.management_url) as api:
        enabled = plugins.enable_mqtt(api, switch.rabbitmq_node) \
            if switch.mqtt and switch.rabbitmq_node else []
        done, conflicts = rabbit.declare(switch, api, passwords)
    done = enabled + done
    done += htpasswd.sync(switch.password_file, web_users(switch, passwords))
    _say(done)
    _say(conflicts, sys.stderr)
    return 1 if conflicts else 0


def _check(opts, switch: description.Switch) -> int:
    passwords = switch.passwords()
    with rabbit.connect(switch, opts.management_url) as api:
        problems = rabbit.check(switch, api, passwords)
    problems += htpasswd.check(switch.password_file, web_users(switch, passwords))
    _say(problems)
    return 1 if problems else 0


def _add_user(opts, switch: description.Switch) -> int:
    name, role = opts.args
    description.check_user(name, role, switch.path)
    passwords = switch.with_users({**switch.users, name: role}).passwords()
    with rabbit.connect(switch, opts.management_url) as api:
        api.users()     # the broker answers: only then edit the file
        if switch.users.get(name) != role:
            switch = description.add_user_to_file(switch.path, name, role)
            print(f"{switch.path}: {name}: {role}")
        done, conflicts = rabbit.declare(switch, api, passwords, only=name)
    done += htpasswd.sync(switch.password_file, web_users(switch, passwords))
    _say(done)
    _say(conflicts, sys.stderr)
    return 1 if conflicts else 0


def _remove_user(opts, switch: description.Switch) -> int:
    (name,) = opts.args
    if not description.is_name(description.USER_NAME, name):
        # what it deletes goes by the name (xs_<name>_*, q_<name>.*): 'al_x'
        # would take the exchanges of al's suffixes
        raise ConfigError(f"bad user name {description.shown(name)}: letters, digits and "
                          "'-' only (remove any other account with rabbitmqctl "
                          "delete_user)", switch.path, option="users")
    for account, what in ((switch.admin_user, "administrator"),
                          (switch.feeder_user, "feeder")):
        if name == account:
            raise ConfigError(f"'{name}' is the {what} account of the switch: "
                              "change the description's URL instead", switch.path,
                              option="users")
    with rabbit.connect(switch, opts.management_url) as api:
        api.users()
        if name in switch.users:
            description.remove_user_from_file(switch.path, name)
            print(f"{switch.path}: removed {name}")
        else:
            log.warning("%s: no user %s in the description; removing it from the "
                        "broker anyway", switch.path, name)
        done = rabbit.remove_user(api, name)
    done += htpasswd.remove(switch.password_file, name)
    _say(done)
    return 0


def _nginx(opts, switch: description.Switch) -> int:
    text = nginx.site_config(switch, opts.listen, opts.standalone,
                             opts.ssl_certificate, opts.ssl_certificate_key)
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _configs(opts, switch: description.Switch) -> int:
    outcome = configs.write_configs(switch, opts.directory, opts.force)
    _say(outcome.done)
    _say(outcome.notes, sys.stderr)
    return 0


HANDLERS = {"declare": _declare, "check": _check, "add-user": _add_user,
            "remove-user": _remove_user, "nginx": _nginx, "configs": _configs}


def main(argv: list[str] | None = None) -> int:
    """Run dd_audit with ``argv`` (without the program name); the exit code."""
    parser = _parser()
    try:
        opts = parser.parse_intermixed_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:       # --help (0) or bad usage (2)
        return int(exc.code or 0)
    wanted = ACTIONS[opts.action]
    if len(opts.args) != wanted:
        parser.print_usage(sys.stderr)
        print(f"dd_audit: {opts.action} takes SWITCH.yaml"
              + {0: "", 1: " NAME", 2: " NAME ROLE"}[wanted], file=sys.stderr)
        return 2
    try:
        if not os.path.exists(opts.switch):
            raise ConfigError("no such switch description", opts.switch)
        switch = description.load_switch(opts.switch)
        return HANDLERS[opts.action](opts, switch)
    except ConfigError as exc:
        print(f"dd_audit: {exc}", file=sys.stderr)
        return 2
    except SarraError as exc:
        log.debug("dd_audit %s failed", opts.action, exc_info=True)
        print(f"dd_audit: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dd_audit: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
