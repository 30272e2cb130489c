"""The worklist: one ``Job`` per message of a batch, each in exactly one state.

A Job is everything the engine knows about one message in one batch: the
message, where it goes, how often it was tried, whether it came from the
retry queue, its duplicate-cache fingerprint, and its outcome. Stages and
plugins only move jobs between states (``incoming``, ``ok``, ``rejected``,
``failed``); the engine reports and acknowledges what reached ``ok`` and
``rejected`` and retries ``failed``. Nothing is dropped silently: every move
carries a reason, and a status code when the move is worth a log message to
the data's source.
"""
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from .message import Message

log = logging.getLogger(__name__)
STATES = ("incoming", "ok", "rejected", "failed")


@dataclass
class Outcome:
    code: int | None     # v02 status code to report, None: nothing to report
    reason: str
    tally: str | None = None   # what to count it as when there is no code


@dataclass(eq=False)
class Job:
    """One message of a batch and what the engine learnt about it."""
    msg: Message
    state: str = "incoming"
    outcome: Outcome | None = None
    placement: Any = None        # flow.filter.Placement chosen by accept/reject
    tries: int = 0               # attempts so far, earlier rounds included
    retry: Any = None            # the flow.retry.Entry it was taken from (None: new)
    fingerprint: str | None = None   # its pending duplicate-cache key
    completed: bool = False      # its block made the file whole (re-post the file)
    claim: str | None = None     # the quarantine entry an operator gave back (flow.quarantine)
    key: str | None = None       # its key while in hand (flow.quarantine: deaths)
    deaths: int = 0              # processes that died with it in hand
    posted: int = 0              # posts published about it in this batch (counted once
                                 # confirmed: a batch redone is not counted twice)

    @property
    def from_retry(self) -> bool:
        """Admitted once already (not a duplicate of itself)."""
        return self.retry is not None

    @property
    def code(self) -> int | None:
        return self.outcome.code if self.outcome is not None else None


class Worklist:
    """The jobs of one batch, in the order they came."""

    def __init__(self, jobs: Iterable[Job] = ()):
        self.jobs: list[Job] = list(jobs)

    @classmethod
    def of(cls, msgs: Iterable[Message]) -> "Worklist":
        return cls(Job(m) for m in msgs)

    def move(self, job: Job, to: str, reason: str, code: int | None = None,
             tally: str | None = None) -> None:
        """Put ``job`` in state ``to`` with this outcome."""
        if to not in STATES:
            raise ValueError(f"no worklist state '{to}'")
        job.state = to
        job.outcome = Outcome(code, reason, tally)
        if to == "rejected":
            log.info("rejected %s: %s", job.msg.relpath, reason)
        elif to == "failed":
            log.warning("failed %s: %s", job.msg.relpath, reason)

    def _in(self, state: str) -> list[Job]:
        return [j for j in self.jobs if j.state == state]

    @property
    def incoming(self) -> list[Job]:
        return self._in("incoming")

    @property
    def ok(self) -> list[Job]:
        return self._in("ok")

    @property
    def rejected(self) -> list[Job]:
        return self._in("rejected")

    @property
    def failed(self) -> list[Job]:
        return self._in("failed")

    def settled(self) -> list[Job]:
        """Jobs whose fate is decided (to acknowledge)."""
        return [j for j in self.jobs if j.state in ("ok", "rejected")]

    def __iter__(self):
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


def messages(jobs: Iterable[Job]) -> list[Message]:
    return [j.msg for j in jobs]
