"""What the engine asks of its collaborators: written down, checked statically.

``Flow`` (flow/engine.py) is built from a ``Source`` (where messages come
from), an optional ``Worker`` (what is done for each one), an optional
``Poster`` (announcements downstream) and an optional ``Reporter`` (log
messages upstream). Every implementation has every member below; a member
that means nothing for one of them is a no-op there (a broker queue
redelivers by itself, so ``BrokerSource.rewind`` does nothing). The engine
never probes with ``hasattr``.

Implementations:

=========  ====================================================================
Source     gather.BrokerSource (a queue), gather.PathSource (dd_post's paths),
           watching.WatchSource (dd_watch's trees), polling.PollSource (dd_poll's
           remote listings)
Worker     work.Downloader (subscribe, sara), send.Sender (dd_sender)
Poster     publish.Publisher (posts), logview.LogPrinter (dd_log: lines on stdout)
Reporter   publish.Reporter
=========  ====================================================================

tests/unit/test_contracts.py checks that each one has the members and
parameters written here.
"""
from typing import Any, NamedTuple, Protocol

from ..broker import Broker
from ..message import Message

class Malformed(NamedTuple):
    """A message that could not be decoded."""
    tag: Any                   # its delivery tag
    reason: str
    found: Message | None      # what could be read of it (enough for a log message)
    raw: Any = None            # the broker.Delivery, for the quarantine


class Target(NamedTuple):
    """Where a message's work happens: the (expanded) directory it must stay
    in, the path, and for the old-name post of a wanted rename, the path the
    file moves to. Local paths for a Downloader, paths on the server for a
    Sender."""
    root: str
    path: str
    rename_to: str | None = None


class Done(NamedTuple):
    """What a Worker did: the v02 status code and text to report, and whether
    this block completed its file (the whole file is then announced)."""
    code: int
    text: str
    completed: bool = False


class Source(Protocol):
    """Where a flow's messages come from."""
    done: bool                 # nothing more will come (every path posted)
    broker: Broker | None      # the broker consumed from (logs go back there); None

    def connect(self) -> None:
        """(Re)open: at start and after a lost connection."""

    def exchanges(self) -> list[str]:
        """The exchanges read from ([] when not a broker)."""

    def get(self, timeout: float) -> tuple[list[Message], list[Malformed]]:
        """The next batch (waiting up to ``timeout`` s): messages, and what
        could not be decoded."""

    def ack(self, tags: list) -> None:
        """The batch's messages with these tags are done with."""

    def rewind(self) -> None:
        """The last batch was not done (lost connection): give it again."""

    def close(self) -> None: ...


class Worker(Protocol):
    """What a flow does with each accepted message (download, send)."""

    def target(self, msg: Message, placement: Any) -> Target:
        """Where ``msg`` goes (UnsafePathError when that is outside)."""

    def apply(self, msg: Message, target: Target) -> Done:
        """Do what ``msg`` announces. Raises MessageError (a bad message),
        TransferError/ChecksumError (``recoverable``: worth retrying),
        OSError (the local side)."""

    def ahead(self, msgs: list[Message]) -> None:
        """The messages about to be applied, in order (a transfer may ask
        for their files ahead of their turn); never raises."""

    def sync(self) -> None:
        """Put what the work of the batch changed locally on stable storage
        (the ``fsync`` option); the flow calls it before posting and
        acknowledging. OSError: it may not be there (the batch's work is
        then failed and tried again)."""

    def clean_stale(self, age: float) -> int:
        """Remove temporary files of ours older than ``age`` s; how many."""

    def close(self) -> None: ...


class Poster(Protocol):
    """Where a flow's announcements go."""
    broker: Broker | None      # None: not a broker (dd_log prints)
    exchange: str              # for messages and logs

    def declare(self) -> None:
        """Declare (or check) the exchanges posted to; after each connect."""

    def publish(self, msg: Message) -> None:
        """Send one message (MessageError: it cannot be encoded)."""

    def mark(self) -> int:
        """Where publishing stands now, for ``flush``."""

    def flush(self, timeout: float = 60.0, since: int | None = None) -> None:
        """Wait until the broker confirmed everything published (``since``:
        a ``mark``; what was published after it may stay unconfirmed)."""


class Reporter(Poster, Protocol):
    """Where a flow's log messages go (to the data's source)."""

    def report(self, msg: Message, code: int, text: str) -> None:
        """A log message about ``msg``: ``code`` and ``text``."""
