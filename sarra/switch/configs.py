"""The configurations of a switch's own components, from its description.

``dd_audit configs SWITCH.yaml`` writes them into the configuration
directory (``~/.config/sarra`` or ``$SARRA_CONFIG_DIR``), where ``sarra
declare`` and ``sarra start`` find them:

    sara/switch.conf          dd_sara: every source's posts (xsarra), acquired
                              into data_dir/<source>/, announced on xpublic
    shovel/logs.conf          the log router: xreport_in -> xreport, and to
                              xr_<source> for data from this switch's sources
    sara/from-<C>.conf        one per link: the posts of neighbour C meant for
                              this switch (or beyond it), taken into data_dir
    shovel/logs-to-<C>.conf   one per link: log messages about data that came
                              through C, sent back into C's xreport_in

A file written here begins with ``MARK``; one without it (written or
edited by hand, the mark line deleted) is never overwritten, only reported.
Pure text in, text out, except ``write_configs``.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass

from ..config.credentials import Credentials
from ..config.paths import config_dir
from .description import XPUBLIC, XREPORT, XREPORT_IN, XSARRA, Link, Switch, write_file

MARK = "# Written by `dd_audit configs`"
EXPIRE = "1d"          # a stopped component's queue outlives a day's outage, not more
# A link's duplicate cache: a post it took in the last LINK_NODUPE (the same
# relpath, sum and parts) is not taken again. In a ring of links that the
# data's first switch is not on (its own links refuse it by from_cluster), a
# post that comes round again stops there: each link passes it at most once.
LINK_NODUPE = "10m"


def _header(switch: Switch, what: str) -> str:
    return (f"{MARK} from {os.path.abspath(switch.path)}: change the description and\n"
            "# run it again (delete these lines to keep your own edits: dd_audit then\n"
            "# leaves the file alone).\n"
            + "".join(f"# {line}\n" for line in textwrap.wrap(what, 76)))


def _options(rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows) + 2
    return "".join(f"{k:<{width}}{v}\n" for k, v in rows)


def _feeder(switch: Switch) -> str:
    return switch.feeder


def _announced_here(switch: Switch) -> list[tuple[str, object]]:
    """A dd_sara's copies announced on this switch's xpublic at its URL, its
    log messages into the xreport_in of the broker it reads."""
    return [("post_broker", _feeder(switch)), ("post_exchange", XPUBLIC),
            ("post_base_dir", switch.data_dir), ("post_base_url", switch.base_url),
            # restricted posts: kept under private_dir, announced on xprivate
            ("private_dir", switch.private_dir),
            ("private_base_url", switch.private_base_url),
            ("report_exchange", XREPORT_IN), ("expire", EXPIRE), *_queue_type(switch)]


def _tls(switch: Switch) -> list[tuple[str, object]]:
    """The CA the switch's TLS servers are verified against, where it has one."""
    return [("ca_file", switch.ca_file)] if switch.ca_file else []


def _queue_type(switch: Switch) -> list[tuple[str, object]]:
    """The switch's queue type, written where it is not the default."""
    return [("queue_type", switch.queue_type)] if switch.queue_type != "classic" else []


def switch_sara(switch: Switch) -> str:
    return _header(switch, "Acquire what the switch's sources post (xs_<source> -> xsarra) "
                           "and announce it on xpublic.") + _options([
        ("broker", _feeder(switch)),
        ("exchange", XSARRA),
        ("source_from_exchange", "on"),
        ("cluster", switch.cluster),
        ("directory", os.path.join(switch.data_dir, "${SOURCE}")),
        *_announced_here(switch),
        ("instances", switch.instances),
        *_tls(switch),
    ])


def log_router(switch: Switch) -> str:
    return _header(switch, "The log router: every user's log messages (xs_<user> -> "
                           "xreport_in), checked, to xreport and, about data that "
                           "entered the network here, to the source's xr_<source>.") + _options([
        ("broker", _feeder(switch)),
        ("exchange", XREPORT_IN),
        ("topic_prefix", "v02.report"),
        ("source_from_exchange", "on"),
        ("cluster", switch.cluster),
        ("post_exchange", f"{XREPORT},xr_${{SOURCE}}"),
        ("expire", EXPIRE),
        *_queue_type(switch),
        *_tls(switch),
    ])


def link_sara(switch: Switch, link: Link) -> str:
    return _header(switch, f"Link from {link.cluster}: take its posts meant for "
                           f"{', '.join(link.to_clusters)} (or ALL, or nobody in "
                           "particular), never one that came from here, nor one "
                           "it took in the last ten minutes.") + _options([
        ("broker", link.broker),
        ("exchange", link.exchange),
        ("cluster", switch.cluster),
        ("msg_to_clusters", ",".join(link.to_clusters)),
        ("nodupe_ttl", LINK_NODUPE),
        ("directory", switch.data_dir),
        *_announced_here(switch),
        *_tls(switch),
    ])


def link_logs(switch: Switch, link: Link) -> str:
    return _header(switch, f"Log messages about data from {', '.join(link.from_clusters)} "
                           f"back to {link.cluster}, the way it came.") + _options([
        ("broker", _feeder(switch)),
        ("exchange", XREPORT),
        ("topic_prefix", "v02.report"),
        ("msg_to_clusters", ",".join(link.from_clusters)),
        ("post_broker", link.broker),
        ("post_exchange", XREPORT_IN),
        ("expire", EXPIRE),
        *_queue_type(switch),
        *_tls(switch),
    ])


def component_configs(switch: Switch) -> dict[str, str]:
    """Relative path (tool/name.conf) -> text, for every component of ``switch``."""
    out = {"sara/switch.conf": switch_sara(switch), "shovel/logs.conf": log_router(switch)}
    for link in switch.links:
        out[f"sara/from-{link.cluster}.conf"] = link_sara(switch, link)
        out[f"shovel/logs-to-{link.cluster}.conf"] = link_logs(switch, link)
    return out


def broker_urls(switch: Switch) -> list[tuple[str, str]]:
    """(URL, what logs in with it) for every account the components use."""
    out = [(url, "sara/switch, shovel/logs") for url in switch.feeder_urls]
    out += [(link.broker, f"sara/from-{link.cluster}, shovel/logs-to-{link.cluster}")
            for link in switch.links]
    return out


@dataclass
class Outcome:
    done: list[str]        # one line per file written
    notes: list[str]       # files left alone, stale files, missing passwords


def _written_here(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith(MARK)
    except OSError:
        return False


def write_configs(switch: Switch, directory: str | None = None, force: bool = False,
                  credentials: Credentials | None = None) -> Outcome:
    """Write what ``component_configs`` gives into ``directory`` (default the
    configuration directory); leave alone files without the mark unless
    ``force``; report generated files of links that are gone and accounts
    without a password in credentials.conf."""
    directory = directory or str(config_dir())
    wanted = component_configs(switch)
    outcome = Outcome([], [])
    for rel, text in wanted.items():
        path = os.path.join(directory, rel)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                current = f.read()
            if current == text:
                continue
            if not force and not current.startswith(MARK):
                outcome.notes.append(f"kept {path}: not written by dd_audit (--force "
                                     "replaces it)")
                continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(path, text)
        outcome.done.append(f"wrote {path}")
    for tool, prefix in (("sara", "from-"), ("shovel", "logs-to-")):
        folder = os.path.join(directory, tool)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            rel = f"{tool}/{name}"
            if (name.startswith(prefix) and name.endswith(".conf") and rel not in wanted
                    and _written_here(os.path.join(folder, name))):
                outcome.notes.append(f"{os.path.join(folder, name)}: no such link in the "
                                     f"description any more: `sarra stop {rel[:-5]}`, "
                                     "then remove it")
    creds = credentials if credentials is not None else Credentials(
        os.path.join(directory, "credentials.conf"))     # where the components look
    for url, users in broker_urls(switch):
        if creds.lookup(url) == url:
            outcome.notes.append(f"no password for {url} in {creds.path}: {users} "
                                 "cannot log in")
    return outcome
