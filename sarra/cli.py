"""Command lines of every tool; the only place that configures logging.

``python -m sarra.cli TOOL ARGS...`` runs ``dd_TOOL ARGS...``.
Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
"""
import json
import logging
import os
import shutil
import signal
import sys
import time

from . import __version__, lazy, tools
from .terminal import Progress, ProgressBar, on_terminal
from .config import help_text, load_config, parse_argv, paths
from .config.loader import config_hint, configuration_names, did_you_mean
from .errors import BrokerError, ConfigError, SarraError

# Imported at first use: --help, --version and a usage error load none of
# them, and each command only what it needs (tests/unit/test_startup.py).
health = lazy.module("sarra.health")
manage = lazy.module("sarra.manage")
service = lazy.module("sarra.service")
components = lazy.module("sarra.components")
quarantine = lazy.module("sarra.flow.quarantine")

log = logging.getLogger("sarra")
POST_CONNECT_ATTEMPTS = 5   # dd_post gives up on an unreachable broker after ~8 s


def _instance_log(logfile: str, cfg) -> logging.Handler:
    """The log file of a daemon instance, rotated; the process's stdout and
    stderr (tracebacks, prints) follow the current file (logging.handlers
    is imported here: a command run by hand logs to stderr)."""
    import logging.handlers

    class InstanceLog(logging.handlers.TimedRotatingFileHandler):
        def doRollover(self) -> None:
            super().doRollover()
            if self.stream is not None:
                for fd in (1, 2):
                    os.dup2(self.stream.fileno(), fd)
    return InstanceLog(logfile, when="s", interval=max(1, int(cfg.log_rotate_interval)),
                       backupCount=cfg.log_rotate, encoding="utf-8")


def _quiet_rejections(record: logging.LogRecord) -> bool:
    """Drop the line the worklist logs for each message rejected."""
    return not (record.name == "sarra.worklist" and str(record.msg).startswith("rejected "))


def setup_logging(cfg) -> None:
    level = logging.DEBUG if cfg.debug else getattr(logging, str(cfg.log_level).upper(),
                                                    logging.INFO)
    logfile = os.environ.get(paths.LOG_ENV)
    if logfile:   # a daemon instance: its own rotated file
        handler: logging.Handler = _instance_log(logfile, cfg)
    else:
        handler = logging.StreamHandler(sys.stderr)
    inst = os.environ.get("SARRA_INSTANCE")
    tag = f"{cfg.tool}/{cfg.key}" + (f"#{inst}" if inst else "")
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s [%(levelname)s] {tag} %(name)s: %(message)s"))
    # the format names no caller's file or line, no thread or process: they
    # are not worked out for each record (a line a file: the logging HOWTO's
    # "Optimization")
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if not cfg.get("log_reject", True):     # sr3's logReject off: rejections are silent
        handler.addFilter(_quiet_rejections)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika logs every failed connection attempt with a traceback; the driver
    # reports them itself, in one line
    logging.getLogger("pika").setLevel(logging.CRITICAL if level > logging.DEBUG
                                       else logging.INFO)
    logging.getLogger("watchdog").setLevel(logging.WARNING if level > logging.DEBUG
                                           else logging.INFO)


def run(tool: str, argv: list[str]) -> int:
    if tool not in tools.BY_NAME:
        print(f"sarra: unknown tool '{tool}' (tools: {', '.join(tools.NAMES)})", file=sys.stderr)
        return 2
    if tools.tool(tool).command == tools.SWITCH:   # a switch description: its own parser
        from .switch.command import main as audit
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s [%(levelname)s] dd_audit: %(message)s")
        return audit(argv)
    try:
        inv = parse_argv(tool, argv)
        if inv.show_help:
            print(help_text(tool))
            return 0
        if inv.show_version:
            print(f"dd_{tool} (sarra) {__version__}")
            return 0
        inherited = json.loads(os.environ.pop(service.OVERRIDES_ENV, "[]"))
        inv.overrides = [tuple(kv) for kv in inherited] + inv.overrides
        run_now = inv.action == "foreground" or tools.tool(tool).command in (tools.PATHS,
                                                                            tools.READER)
        cfg = load_config(tool, inv.config, inv.overrides, tools.tool(tool).presets,
                          refresh=run_now)    # a run fetches the fragments it includes
        if tool == "watch" and cfg.instances != 1:
            raise ConfigError("dd_watch runs one instance per configuration (more would "
                              "post every change more than once)", option="instances")
    except ConfigError as exc:
        print(f"dd_{tool}: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg)
    for note in cfg.notes:
        log.warning("%s", note)
    unverified = cfg.tls.warning(cfg.servers())
    if unverified:          # tls_verify off: at every start of every instance
        log.warning("%s", unverified)
    for name in cfg.not_implemented():
        log.warning("option '%s' (%s) is not implemented yet: ignored", name,
                    cfg.origin(name))
    try:
        kind = tools.tool(tool).command
        if kind == tools.PATHS:
            return _post(cfg, inv.paths)
        if kind == tools.READER:
            if inv.action == "cleanup":
                return _declare(tool, cfg, cleanup=True)
            return _log(cfg)
        return _daemon(tool, cfg, inv)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except SarraError as exc:
        log.error("%s", exc)
        log.debug("traceback", exc_info=True)
        return 1


def _post(cfg, targets: list[str]) -> int:
    targets = targets or list(cfg.path)
    if not targets:
        raise ConfigError("nothing to post: give one or more paths", option="path")
    started = time.monotonic()
    bar = on_terminal(ProgressBar, started)
    flow = components.flow_for("post", cfg, targets=targets, connect_attempts=POST_CONNECT_ATTEMPTS,
                    on_batch=bar)
    total = flow.source.total
    try:
        flow.run()
    except BrokerError as exc:
        log.error("posting failed: %s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted: %d of %d files posted", flow.stats["posted"], total)
        return 1
    elapsed = time.monotonic() - started
    n, rejected = flow.stats["posted"], flow.stats["rejected"]
    failed = flow.source.errors + flow.source.unlisted + flow.stats["unpublishable"]
    if bar is not None:
        bar.end()
    for exchange, lost in sorted(flow.poster.unroutable.items()):
        # published with the mandatory flag: the broker returned these
        log.warning("%d post%s to exchange %s reached no queue: no queue is bound to %s "
                    "with %s topic (nobody subscribes to it yet, or post_exchange or "
                    "post_topic_prefix is not what subscribers bind to); %s lost",
                    lost, "s" if lost != 1 else "", exchange, exchange,
                    "their" if lost != 1 else "its", "they are" if lost != 1 else "it is")
    made = flow.source.messages
    what = f"{n} of {total} files" if made + flow.source.errors == total \
        else f"{n} of {made} posts for {total} files"   # big files went in blocks
    print(f"dd_post: posted {what} in {elapsed:.2f}s "
          f"({n / elapsed if elapsed else 0:.0f} msgs/s) to {flow.poster.exchange}"
          + (f", {rejected} rejected by accept/reject" if rejected else "")
          + (f", {failed} errors" if failed else ""),
          file=sys.stderr if flow.poster.broker is None else sys.stdout)   # outlet: stdout is theirs
    return 1 if failed or n + rejected != made else 0


def _log(cfg) -> int:
    """dd_log: who got which of the user's files, when, with what status
    (components.log_flow); with ``file``, what its ledger knows of that
    file, once it has read what waits."""
    if cfg.file and cfg.ledger_max_age <= 0:
        raise ConfigError("answers from the ledger, and ledger_max_age 0 keeps none",
                          option="file")
    flow = components.flow_for("log", cfg)
    try:
        flow.run()
    except KeyboardInterrupt:
        pass
    except BrokerError as exc:
        if not cfg.file:
            raise
        log.warning("the log messages waiting could not be read (%s): the ledger answers "
                    "with what it had", exc)
    if cfg.file:
        rows = flow.poster.ledger.find(cfg.file)
        from .flow.logview import ledger_lines
        print("\n".join(ledger_lines(rows, cfg.format)))
        print(f"({len(rows)} log message{'s' if len(rows) != 1 else ''} about {cfg.file} in "
              f"{flow.poster.ledger.path})", file=sys.stderr)
        return 0 if rows else 1
    if cfg.format == "table":
        print(f"({flow.poster.shown} log messages from {', '.join(flow.source.exchanges())})",
              file=sys.stderr)
    return 0


def _daemon(tool: str, cfg, inv) -> int:
    action = inv.action
    name = cfg.key
    if action == "foreground":
        return _foreground(tool, cfg)
    if action in ("start", "restart"):
        if inv.config is None:
            raise ConfigError(f"{action} needs a configuration name", option="config")
        components.flow_for(tool, cfg)   # a configuration error shows here, not in a log file
        if action == "restart":
            service.stop(tool, name, cfg.instances)
        return service.start(tool, name, inv.config, cfg.instances, inv.overrides)
    if action == "stop":
        return service.stop(tool, name, cfg.instances)
    if action == "status":
        return service.status(tool, name, cfg.instances, health.Thresholds.of(cfg),
                              cfg.prefetch)
    if action in ("declare", "cleanup"):
        return _declare(tool, cfg, cleanup=action == "cleanup")
    raise ConfigError(f"action '{action}' is not supported by dd_{tool}", option="action")


def _foreground(tool: str, cfg) -> int:
    progress = on_terminal(Progress, time.monotonic())
    flow = components.flow_for(tool, cfg, on_batch=progress)

    def stop(signum, _frame):
        if flow.stopping:  # second signal: give up at once
            raise KeyboardInterrupt
        log.info("signal %d: finishing the current batch, then stopping", signum)
        flow.stopping = True

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    try:
        flow.run()
    except KeyboardInterrupt:
        log.info("interrupted: unacknowledged messages will be delivered again")
    elapsed = time.monotonic() - started
    if progress is not None:
        progress.end()
    done = sum(v for k, v in flow.stats.items() if isinstance(k, int) and k < 300)
    log.info("summary: %d messages handled in %.1fs, %d bytes downloaded, by status %s",
             sum(flow.stats.values()), elapsed, flow.bytes,
             dict(sorted((str(k), v) for k, v in flow.stats.items())))
    if flow.worker is None:
        print(f"dd_{tool}: {flow.stats['posted']} posts in {elapsed:.1f}s")
    else:
        print(f"dd_{tool}: {done} files transferred ({flow.bytes} bytes) in {elapsed:.1f}s")
    return 0


def _declare(tool: str, cfg, cleanup: bool) -> int:
    flow = components.flow_for(tool, cfg)
    src = flow.source
    if not tools.tool(tool).consumes:   # a poster: only its exchange to declare
        if cleanup:
            shutil.rmtree(paths.state_path(tool, cfg.key), ignore_errors=True)
            print(f"deleted the state of {tool}/{cfg.key}")
            return 0
        if flow.poster.broker is None:
            print(f"nothing to declare: outlet {cfg.outlet} writes posts to standard output")
            return 0
        flow.poster.broker.connect()
        flow.poster.declare()
        flow.poster.broker.close()
        print(f"declared exchange {flow.poster.exchange}")
        return 0
    if cleanup:
        from .broker import consumer_options, open_broker
        broker = open_broker(src.urls, tls=cfg.tls, **consumer_options(src.url, cfg.instances))
        broker.delete_queue(src.queue)
        broker.close()
        shutil.rmtree(paths.state_path(tool, cfg.key), ignore_errors=True)
        print(f"deleted queue {src.queue} and the state of {tool}/{cfg.key}")
        return 0
    flow.open()
    flow.close()
    print(f"declared queue {src.queue}")
    return 0


def _entry(tool: str):
    def main() -> None:
        sys.exit(run(tool, sys.argv[1:]))
    return main


# main_post, main_subscribe, ...: each tool's console script (setup.py, from sarra/tools.py)
globals().update({f"main_{t.name}": _entry(t.name) for t in tools.TOOLS})


# -- the operator's command: every configuration at once -----------------------

OPERATOR_ACTIONS = ("start", "stop", "restart", "status", "list", "log", "declare",
                    "cleanup", "sanity", "quarantine", "check", "metrics", "web") \
    + tools.MANAGE_ACTIONS + ("convert",)
QUARANTINE_VERBS = ("list", "retry", "drop")
OPERATOR_USAGE = """usage: sarra ACTION [TOOL/CONFIG | TOOL ...] [--lines N]
       sarra quarantine [list|retry|drop] [TOOL/CONFIG | TOOL ...] [--id ID|all ...]
       sarra check|metrics [TOOL/CONFIG | TOOL ...]
       sarra show TOOL/CONFIG [--option value ...]
       sarra add TOOL/CONFIG [FILE] | sarra add TOOL FILE
       sarra edit|remove|enable|disable TOOL/CONFIG
       sarra convert [DIR ...] [--from sr3|v2] [--dry-run]
       sarra web [--listen HOST:PORT] [--remote]

Acts on every configuration in {config_dir}/<tool>/*.conf, or on those
named (TOOL alone: all of that tool's). ACTION is one of:
  start     start the instances not running (instances N in each configuration)
  stop      stop them (SIGTERM, in-flight work finishes; SIGKILL after 10 s)
  restart   stop, then start
  status    running/partial/stopped, instances up, health (running, idle, lagging,
            slow, stuck, failing, dead), messages/s, MB/s, broker queue, lag,
            retry queue
  list      the configurations and their files
  log       the last lines (--lines N, default 20) of each instance's log
  declare   create queues and exchanges
  cleanup   delete queues and state
  sanity    restart dead and stuck instances of configurations that were started
  quarantine  the messages kept aside (they raised, or were in hand when
            processes died): list them; retry (a running instance takes
            them again) or drop those given with --id (repeatable, or all)
  check     one line for monitoring (Nagios plugin): the worst health, with
            performance data; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
  metrics   the figures of every instance in the Prometheus text format
  web       the console: a page showing every configuration, /metrics, the
            configuration builder (--listen, default 127.0.0.1:8990; another
            address than loopback needs --remote and a login in credentials.conf)
Managing configurations (one TOOL/CONFIG each):
  show      the effective configuration: each value and where it comes from
            (file:line, include, default.conf, command line, default)
  add       TOOL/CONFIG FILE, TOOL FILE, or TOOL/CONFIG (an etc/ example):
            a copy, written only if it loads
  edit      $EDITOR on a copy, saved only if it loads
  remove    delete its file (not while it runs)
  disable   rename it CONFIG.conf.off: skipped by start, sanity...; enable undoes
  convert   [DIR ...] [--from sr3|v2] [--dry-run]: sr3 (~/.config/sr3) and v2
            (~/.config/sarra) configurations as sarra's, each line changed told
Exit status: 0 when all went well (status: all running), 1 otherwise, 2 on a
bad configuration or usage (check: as monitoring plugins, 3 on those)."""


def configurations(selection: list[str], action: str | None = None) -> list[tuple[str, str]]:
    """(tool, name) of the configurations selected (all when none is named):
    the daemons', and for list and cleanup dd_log's too."""
    pool = tools.CONFIGURED if action in ("list", "cleanup") else tools.DAEMONS
    found = []
    for tool in sorted(pool):
        found += [(tool, n) for n in configuration_names(tool)]
    if not selection:
        return found
    chosen = []
    for item in selection:
        tool, _, name = item.partition("/")
        if tool not in tools.BY_NAME:
            raise ConfigError(f"'{item}' is not TOOL or TOOL/CONFIG"
                              f"{did_you_mean(tool, pool)}", option="config")
        if tool not in pool:
            raise ConfigError(f"dd_{tool} runs no daemons", option="config")
        matches = [(t, n) for t, n in found if t == tool and (not name or n == name)]
        if name and not matches:
            raise ConfigError("no such configuration" + config_hint(tool, name),
                              paths.config_file(tool, name))
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _quarantine(tool: str, name: str, verb: str, ids: list[str]) -> int:
    folder = os.path.join(paths.state_dir(), tool, name, "quarantine")
    if verb == "list":
        for e in quarantine.entries(folder):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.get("time", 0)))
            line = (f"{tool}/{name}  {e['id']}  {when}  {e['state']:7s}  {e.get('stage', '?'):8s}"
                    f"  {e.get('relpath') or '-'}  ({e.get('reason', '')})")
            # a reason may quote a lone surrogate the message held: escaped, printable
            print(line.encode("utf-8", "backslashreplace").decode("utf-8"))
        return 0
    n = quarantine.mark(folder, ids, verb)
    print(f"{tool}/{name}: {n} quarantined message{'s' if n != 1 else ''} "
          + ("marked for retry (a running instance takes them)" if verb == "retry"
             else "dropped"))
    return 0


def _operate_one(action: str, tool: str, name: str, lines: int, launched: list) -> int:
    """``action`` on one configuration; the instances it starts are added to
    ``launched`` (the caller waits for all of them at once)."""
    cfg = load_config(tool, name, [], tools.tool(tool).presets)
    if action == "list":
        runs = f"{cfg.instances} instance{'s' if cfg.instances != 1 else ''}" \
            if tools.tool(tool).daemon else f"read by dd_{tool}"
        print(f"{tool}/{name}: {paths.config_file(tool, name)} ({runs})")
        return 0
    if action == "status":
        return service.status(tool, name, cfg.instances, health.Thresholds.of(cfg),
                              cfg.prefetch)
    if action == "log":
        for n in range(1, cfg.instances + 1):
            path = paths.log_path(tool, name, n)
            print(f"==> {path} <==")
            print("\n".join(service.tail(path, lines)))
        return 0
    if action == "sanity":
        launched += service.relaunch(tool, name, name, cfg.instances,
                                     health.Thresholds.of(cfg), cfg.prefetch)
        return 0
    if action in ("declare", "cleanup"):
        return _declare(tool, cfg, cleanup=action == "cleanup")
    if action in ("start", "restart"):
        components.flow_for(tool, cfg)      # a bad configuration stops nothing and starts nothing
    if action in ("stop", "restart"):
        service.stop(tool, name, cfg.instances)
    if action in ("start", "restart"):
        launched += service.launch(tool, name, name, cfg.instances, [])
    return 0


def operate(argv: list[str]) -> int:
    """``sarra ACTION [TOOL/CONFIG ...]``: the operator's command, not ``dd`` so as
    not to shadow the system's dd(1)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(OPERATOR_USAGE.format(config_dir=paths.config_dir()))
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"sarra {__version__}")
        return 0
    action, rest = argv[0], argv[1:]
    verb, ids = "list", []
    if action == "quarantine":
        if rest and rest[0] in QUARANTINE_VERBS:
            verb, rest = rest[0], rest[1:]
        while "--id" in rest:
            i = rest.index("--id")
            if i + 1 >= len(rest):
                print("sarra: --id needs an id (or all)", file=sys.stderr)
                return 2
            ids.append(rest[i + 1])
            del rest[i:i + 2]
        if verb != "list" and not ids:
            print(f"sarra: quarantine {verb} needs --id ID (or --id all)", file=sys.stderr)
            return 2
    lines = 20
    if "--lines" in rest:
        i = rest.index("--lines")
        try:
            lines = int(rest[i + 1])
        except (IndexError, ValueError):
            print("sarra: --lines needs a number", file=sys.stderr)
            return 2
        del rest[i:i + 2]
    if action not in OPERATOR_ACTIONS:
        print(f"sarra: unknown action '{action}'{did_you_mean(action, OPERATOR_ACTIONS)} "
              f"(one of {', '.join(OPERATOR_ACTIONS)})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(levelname)s] sarra: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    if action in manage.MANAGE_ACTIONS:
        return manage.command(action, rest)
    if action == "convert":
        from .convert import command as convert
        return convert(rest)
    if action in ("check", "metrics"):
        return _watch_over(action, rest)
    if action == "web":
        return _web(rest)
    try:
        chosen = configurations(rest, action)
    except ConfigError as exc:
        print(f"sarra: {exc}", file=sys.stderr)
        return 2
    if not chosen and not (action == "list" and manage.disabled_lines(rest)):
        print(f"sarra: no configurations in {paths.config_dir()}", file=sys.stderr)
    worst = 0
    launched: list = []
    for tool, name in chosen:
        try:
            rc = _quarantine(tool, name, verb, ids) if action == "quarantine" else \
                _operate_one(action, tool, name, lines, launched)
        except ConfigError as exc:
            print(f"sarra: {tool}/{name}: {exc}", file=sys.stderr)
            rc = 2
        except SarraError as exc:
            print(f"sarra: {tool}/{name}: {exc}", file=sys.stderr)
            rc = 1
        worst = max(worst, rc)
    if launched:   # every configuration's instances, waited for at once
        worst = max(worst, service.wait_started(launched))
    if action == "list":    # the disabled ones too, said so (start and sanity skip them)
        for line in manage.disabled_lines(rest):
            print(line)
    return worst


def _judged(selection: list[str], tell: bool = True) -> tuple[list[dict], list[str]]:
    """``service.describe`` of each configuration selected, judged by its own
    thresholds; and the configurations that could not be read (told on
    standard error when ``tell``). ConfigError: a selection that names nothing."""
    results, errors = [], []
    for tool, name in configurations(selection):
        try:
            cfg = load_config(tool, name, [], tools.tool(tool).presets)
        except ConfigError as exc:
            if tell:
                print(f"sarra: {tool}/{name}: {exc}", file=sys.stderr)
            errors.append(f"{tool}/{name}")
            continue
        results.append(service.describe(tool, name, cfg.instances,
                                        health.Thresholds.of(cfg), cfg.prefetch))
    return results, errors


def _watch_over(action: str, selection: list[str]) -> int:
    """``sarra check`` (one line and the exit status of a monitoring plugin:
    sarra/health.py:check_line) and ``sarra metrics`` (the Prometheus text
    exposition, sarra/metrics.py: what ``sarra web`` will serve at /metrics)."""
    try:
        results, errors = _judged(selection)
    except ConfigError as exc:
        if action == "check":
            print(f"SARRA UNKNOWN - {exc}")
            return health.UNKNOWN
        print(f"sarra: {exc}", file=sys.stderr)
        return 2
    if action == "check":
        code, line = health.check_line(results, errors)
        print(line)
        return code
    from .metrics import exposition      # prometheus_client: only here
    sys.stdout.write(exposition(results))
    return 2 if errors else 0


def _web(args: list[str]) -> int:
    """``sarra web``: the console (sarra/web/server.py) until interrupted."""
    from .components import ledger_path
    from .flow.housekeeping import HISTORY_SPAN
    from .flow.ledger import find_in
    from .metrics import exposition
    from .web.server import DEFAULT_LISTEN, Console, Sources, make_server, parse_listen
    listen, remote, rest = DEFAULT_LISTEN, False, list(args)
    while rest:
        word = rest.pop(0)
        if word == "--listen":
            if not rest:
                print("sarra web: --listen needs HOST:PORT", file=sys.stderr)
                return 2
            listen = rest.pop(0)
        elif word == "--remote":
            remote = True
        else:
            print(f"sarra web: unexpected '{word}' (sarra web [--listen HOST:PORT] "
                  "[--remote])", file=sys.stderr)
            return 2

    def files(results: list[dict]) -> dict[str, list[dict]]:
        return {f"{d['tool']}/{d['config']}": service.last_figures(
            d["tool"], d["config"], d["instances"], HISTORY_SPAN) for d in results}

    def ledger(pattern: str) -> list[dict]:
        return find_in([(f"log/{n}", ledger_path(n, make=False))
                        for n in configuration_names("log")], pattern)

    sources = Sources(judged=lambda: _judged([], tell=False), files=files,
                      exposition=exposition, ledger=ledger)
    try:
        console = Console(sources, *parse_listen(listen), remote=remote)
        server = make_server(console)
    except ConfigError as exc:
        print(f"sarra web: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"sarra web: cannot listen on {listen}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"sarra web: listening on http://{console.hostport()}/"
          + (f" (login: {', '.join(console.users)})" if console.users else ""), flush=True)

    def stop(_signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main_dd() -> None:
    sys.exit(operate(sys.argv[1:]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m sarra.cli TOOL [ARGS...]  (TOOL: post, subscribe, ..., "
              "or sarra for the operator's command)", file=sys.stderr)
        return 2
    if argv[0] == "sarra":
        return operate(argv[1:])
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
