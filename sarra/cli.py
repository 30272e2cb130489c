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

from . import __version__, service
from .components import FLOWS, PRESETS, post_flow
from .config import help_text, load_config, parse_argv, paths
from .errors import BrokerError, ConfigError, SarraError

log = logging.getLogger("sarra")
POST_CONNECT_ATTEMPTS = 5   # dd_post gives up on an unreachable broker after ~8 s


def setup_logging(cfg) -> None:
    level = logging.DEBUG if cfg.debug else getattr(logging, str(cfg.log_level).upper(),
                                                    logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    inst = os.environ.get("SARRA_INSTANCE")
    tag = f"{cfg.tool}/{cfg.name or 'adhoc'}" + (f"#{inst}" if inst else "")
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s [%(levelname)s] {tag} %(name)s: %(message)s"))
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
        cfg = load_config(tool, inv.config, inv.overrides, PRESETS.get(tool))
        if tool == "watch" and cfg.instances != 1:
            raise ConfigError("dd_watch runs one instance per configuration (more would "
                              "post every change more than once)", option="instances")
    except ConfigError as exc:
        print(f"dd_{tool}: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg)
    for name in cfg.not_implemented():
        log.warning("option '%s' (%s) is not implemented yet: ignored", name,
                    cfg.origin(name))
    try:
        if tool == "post":
            return _post(cfg, inv.paths)
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
    flow = post_flow(cfg, targets)
    flow.connect_attempts = POST_CONNECT_ATTEMPTS
    total = flow.source.total
    started = time.monotonic()
    if sys.stderr.isatty() and total >= 100:
        flow.on_batch = _progress_bar(total, started)
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
    if flow.on_batch is not None:
        sys.stderr.write("\n")
    print(f"dd_post: posted {n} of {total} files in {elapsed:.2f}s "
          f"({n / elapsed if elapsed else 0:.0f} msgs/s) to {flow.poster.exchange}"
          + (f", {rejected} rejected by accept/reject" if rejected else "")
          + (f", {failed} errors" if failed else ""))
    return 1 if failed or n + rejected != total else 0


def _progress_bar(total: int, started: float):
    def show(flow) -> None:
        done = flow.stats["posted"]
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.monotonic() - started, 1e-6)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total} files {rate:.0f}/s")
        sys.stderr.flush()
    return show


def _daemon(tool: str, cfg, inv) -> int:
    action = inv.action
    name = cfg.name or "adhoc"
    if action == "foreground":
        return _foreground(tool, cfg)
    if action in ("start", "restart"):
        if inv.config is None:
            raise ConfigError(f"{action} needs a configuration name", option="config")
        _flow_for(tool, cfg)   # a configuration error shows here, not in a log file
        if action == "restart":
            service.stop(tool, name, cfg.instances)
        return service.start(tool, name, inv.config, cfg.instances, inv.overrides)
    if action == "stop":
        return service.stop(tool, name, cfg.instances)
    if action == "status":
        return service.status(tool, name, cfg.instances)
    if action in ("declare", "cleanup"):
        return _declare(tool, cfg, cleanup=action == "cleanup")
    raise ConfigError(f"action '{action}' is not supported by dd_{tool}", option="action")


def _flow_for(tool: str, cfg):
    if tool not in FLOWS:
        raise ConfigError(f"dd_{tool} is not implemented yet", option="tool")
    return FLOWS[tool](cfg)


def _foreground(tool: str, cfg) -> int:
    flow = _flow_for(tool, cfg)

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
    done = sum(v for k, v in flow.stats.items() if isinstance(k, int) and k < 300)
    log.info("summary: %d messages handled in %.1fs, %d bytes downloaded, by status %s",
             sum(flow.stats.values()), elapsed, flow.bytes,
             dict(sorted((str(k), v) for k, v in flow.stats.items())))
    if flow.post_all:
        print(f"dd_{tool}: {flow.stats['posted']} posts in {elapsed:.1f}s")
    else:
        print(f"dd_{tool}: {done} files transferred ({flow.bytes} bytes) in {elapsed:.1f}s")
    return 0


def _declare(tool: str, cfg, cleanup: bool) -> int:
    flow = _flow_for(tool, cfg)
    src = flow.source
    if not hasattr(src, "queue"):   # a poster: only its exchange to declare
        if cleanup:
            shutil.rmtree(paths.state_path(tool, cfg.name or "adhoc"), ignore_errors=True)
            print(f"deleted the state of {tool}/{cfg.name}")
            return 0
        flow.poster.broker.connect()
        flow.poster.declare()
        flow.poster.broker.close()
        print(f"declared exchange {flow.poster.exchange}")
        return 0
    if cleanup:
        from .broker import open_broker
        broker = open_broker(src.url)
        broker.delete_queue(src.queue)
        broker.close()
        shutil.rmtree(paths.state_path(tool, cfg.name or "adhoc"), ignore_errors=True)
        print(f"deleted queue {src.queue} and the state of {tool}/{cfg.name}")
        return 0
    flow._open_all()
    flow.close()
    print(f"declared queue {src.queue}")
    return 0


def _entry(tool: str):
    def main() -> None:
        sys.exit(run(tool, sys.argv[1:]))
    return main


main_post = _entry("post")
main_watch = _entry("watch")
main_subscribe = _entry("subscribe")
main_sara = _entry("sara")
main_sender = _entry("sender")
main_shovel = _entry("shovel")
main_winnow = _entry("winnow")
main_log = _entry("log")
main_audit = _entry("audit")


def main_dd() -> None:
    print("dd: service-provider mode is not implemented yet", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m sarra.cli TOOL [ARGS...]", file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
