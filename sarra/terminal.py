"""What a command shows on a terminal while it works: a line redrawn in
place (dd_post's bar, a daemon's foreground progress), only when standard
error is a terminal, cleared before each log line."""
import logging
import sys
import time


class TerminalLine(logging.Filter):
    """A line redrawn in place on the terminal (standard error); as a
    logging filter it clears the line before each log record, so that the
    log lines are whole and the progress comes again under them."""

    def __init__(self, started: float):
        super().__init__()
        self.started = started
        self.drawn = False

    def draw(self, text: str) -> None:
        sys.stderr.write(f"\r{text}\x1b[K")
        sys.stderr.flush()
        self.drawn = True

    def filter(self, record: logging.LogRecord) -> bool:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            self.drawn = False
        return True

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False


def on_terminal(kind, started: float):
    """A ``kind`` of TerminalLine when standard error is a terminal (the log
    lines then clear it first), else None: no progress in a log file or a pipe."""
    if not sys.stderr.isatty():
        return None
    line = kind(started)
    for handler in logging.getLogger().handlers:
        handler.addFilter(line)
    return line


class ProgressBar(TerminalLine):
    """dd_post's progress on a terminal, for 100 files or more."""
    WIDTH = 30

    def __call__(self, flow) -> None:
        total = flow.source.total
        if total < 100:
            return
        done = flow.stats["posted"]
        filled = int(self.WIDTH * done / total)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        self.draw(f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                  f"{done}/{total} files {rate:.0f}/s")


class Progress(TerminalLine):
    """A daemon's foreground run on a terminal: after each batch, what it
    did so far (files and bytes, or posts; failures; the rate)."""

    def __call__(self, flow) -> None:
        self.draw(progress_text(flow, time.monotonic() - self.started))


def progress_text(flow, elapsed: float) -> str:
    """The progress line: '12 files (3.4 MB) in 9s, 1.3 files/s, 2 failed, 1 rejected'."""
    stats = flow.stats
    failed = sum(v for k, v in stats.items() if isinstance(k, int) and k >= 400)
    rejected = stats.get("rejected", 0)
    if flow.worker is None:
        done, what = stats.get("posted", 0), "posts"
        head = f"{done} {what}"
    else:
        done = sum(v for k, v in stats.items() if isinstance(k, int) and k < 300)
        head = f"{done} files ({flow.bytes / 1e6:.1f} MB)"
    return (f"{head} in {elapsed:.0f}s, {done / max(elapsed, 1e-6):.1f}/s"
            + (f", {failed} failed" if failed else "")
            + (f", {rejected} rejected" if rejected else ""))
