"""What each tool is, in one table.

setup.py's console scripts, the option scopes (config/options.py), the
command line and help text (config/loader.py, cli.py) and the operator's
``sarra list``/``start``... (cli.py) all derive from ``TOOLS``. A tool is
a few defaults (``presets``) and a flow factory (sarra.components) over the
one engine (flow/engine.py).

This module imports nothing from the package: setup.py reads it by path,
before sarra's dependencies are installed.
"""
from dataclasses import dataclass, field

# what dd_<tool> ACTION CONFIG can do, for the tools that run as daemons
DAEMON_ACTIONS = ("foreground", "start", "stop", "restart", "status", "declare", "cleanup")
# what dd_log can do besides reading: dd_log cleanup [CONFIG]
READER_ACTIONS = ("cleanup",)
# the operator's ``sarra`` actions on configuration files (sarra/manage.py)
MANAGE_ACTIONS = ("show", "add", "edit", "remove", "disable", "enable")

# how a tool's command line reads
DAEMON = "daemon"     # dd_<tool> [--option value ...] ACTION CONFIG
PATHS = "paths"       # dd_post [--option value ...] [-c CONFIG] PATH...
READER = "reader"     # dd_log [--follow] [--option value ...] [CONFIG]
SWITCH = "switch"     # dd_audit: a switch description, its own parser (switch/command.py)


@dataclass(frozen=True)
class Tool:
    name: str                 # dd_<name>; configurations in <config_dir>/<name>/
    summary: str              # what it does, in one line
    flow: str | None          # its flow factory, "module:function" (None: dd_audit)
    command: str = DAEMON
    presets: dict = field(default_factory=dict)   # its defaults; configurations override
    consumes: bool = False    # reads a broker queue: the consumer options apply
    announces: bool = False   # posts local files: the path options apply
    places: bool = False      # puts files where the placement options say
    # defaults worked out when it runs, as --help shows them (option -> text)
    help_defaults: dict = field(default_factory=dict)
    # options it reads (a shared default.conf...) but does not act on: not in its --help
    unused: tuple = ()

    @property
    def script(self) -> str:
        return f"dd_{self.name}"

    @property
    def man_page(self) -> str:
        return f"man/dd_{self.name}.1"

    @property
    def daemon(self) -> bool:
        return self.command == DAEMON

    @property
    def actions(self) -> tuple[str, ...]:
        return DAEMON_ACTIONS if self.daemon else READER_ACTIONS \
            if self.command == READER else ()

    @property
    def configured(self) -> bool:
        """Its configurations are in <config_dir>/<name>/ and ``sarra list``
        and ``cleanup`` see them (the daemons, and dd_log)."""
        return self.command in (DAEMON, READER)

    @property
    def usage(self) -> str:
        return {DAEMON: f"{self.script} [--option value ...] ACTION CONFIG",
                PATHS: f"{self.script} [--option value ...] [-c CONFIG] PATH...",
                READER: f"{self.script} [--follow] [--option value ...] [CONFIG]\n"
                        f"       {self.script} cleanup [--option value ...] [CONFIG]",
                SWITCH: f"{self.script} ACTION SWITCH.yaml"}[self.command]

    @property
    def entry_point(self) -> str:
        """Its console script, as setup.py declares it."""
        return f"{self.script}=sarra.cli:main_{self.name}"


_FACTORY = "sarra.components:"
# the line each daemon logs per file by default (log_events): each file received
# or sent, or each post; dd_post sums up instead (log_events after_post: each)
WORKED, POSTED = "after_work", "after_post"
# options read but not acted upon (each tool's man page lists them; --help names them
# at the end): what only the posting tools use, what only the tools that write files
FOR_POSTERS = ("blocksize", "source", "sum", "to_clusters")
COPIERS = FOR_POSTERS + ("base_dir", "bufsize", "default_dir_mode", "default_mode",
                         "hostname", "inflight", "post_base_dir", "post_base_url",
                         "preserve_mode", "preserve_time", "report_back", "report_exchange",
                         "retry_delay", "retry_max", "retry_ttl", "strip")

TOOLS = (
    Tool("post", "post files and trees (v02 or v03 messages)", _FACTORY + "post_flow",
         command=PATHS, presets={"accept_unmatch": True}, announces=True,
         unused=("base_dir", "default_mode", "default_dir_mode", "inflight", "nodupe_ttl",
                 "nodupe_basis", "strip")),
    Tool("watch", "post a directory tree as it changes", _FACTORY + "watch_flow",
         presets={"accept_unmatch": True, "log_events": POSTED}, announces=True,
         unused=("recursive", "base_dir", "default_mode", "default_dir_mode", "strip")),
    Tool("poll", "announce what remote servers hold (HTTP index pages, SFTP, FTP, FTPS)",
         _FACTORY + "poll_flow", presets={"accept_unmatch": True, "sleep": "5m"},
         unused=("post_base_dir", "base_dir", "blocksize", "bufsize", "preserve_mode",
                 "default_mode", "default_dir_mode", "inflight", "strip")),
    Tool("subscribe", "download what a broker announces into a local tree",
         _FACTORY + "subscribe_flow", presets={"accept_unmatch": False, "mirror": False,
                                                   "log_events": WORKED},
         consumes=True, places=True, unused=FOR_POSTERS + ("base_dir",)),
    Tool("sara", "a switch acquiring what its sources post, re-announced",
         _FACTORY + "sara_flow",
         presets={"accept_unmatch": True, "mirror": True, "post_exchange": "xpublic",
                  "report_exchange": "xreport_in", "log_events": WORKED},
         consumes=True, places=True, unused=FOR_POSTERS + ("base_dir",)),
    Tool("sender", "push announced files to a remote server (SFTP, FTP, FTPS)", _FACTORY + "sender_flow",
         presets={"accept_unmatch": False, "mirror": True, "log_events": WORKED},
         consumes=True, places=True,
         unused=FOR_POSTERS + ("download", "inplace", "on_part", "overwrite")),
    Tool("shovel", "copy messages to another exchange or broker (links, log routing)",
         _FACTORY + "shovel_flow", presets={"accept_unmatch": True, "report_back": False,
                                           "log_events": POSTED},
         consumes=True, unused=COPIERS),
    Tool("winnow", "one post per distinct file from redundant feeds", _FACTORY + "winnow_flow",
         presets={"accept_unmatch": True, "report_back": False, "nodupe_ttl": "20m",
                  "log_events": POSTED},
         consumes=True, unused=COPIERS),
    Tool("log", "show where a source's files went (its log messages)", _FACTORY + "log_flow",
         command=READER,
         presets={"accept_unmatch": True, "topic_prefix": "v02.report", "expire": "1d"},
         consumes=True, help_defaults={"exchange": "xr_<user of broker>"},
         unused=COPIERS + ("accept_unmatch", "cluster", "message_rate_max", "msg_to_clusters",
                           "nodupe_basis", "nodupe_ttl", "on_file", "on_message", "on_part",
                           "on_post", "persistent", "post_broker", "post_exchange",
                           "post_exchange_split", "post_exchange_suffix", "post_format", "post_topic",
                           "post_topic_prefix", "wis2_data_id", "wis2_metadata_id",
                           "source_from_exchange", "timeout")),
    Tool("audit", "set up a switch's broker, web server and configurations", None,
         command=SWITCH),
)

BY_NAME = {t.name: t for t in TOOLS}
NAMES = tuple(t.name for t in TOOLS)
DAEMONS = tuple(t.name for t in TOOLS if t.daemon)
CONFIGURED = tuple(t.name for t in TOOLS if t.configured)
# the operator's command (service-provider mode), named so as not to shadow dd(1)
OPERATOR_ENTRY_POINT = "sarra=sarra.cli:main_dd"


def tool(name: str) -> Tool:
    """The tool named ``name`` (KeyError when there is none)."""
    return BY_NAME[name]


def console_scripts() -> list[str]:
    return [t.entry_point for t in TOOLS] + [OPERATOR_ENTRY_POINT]
