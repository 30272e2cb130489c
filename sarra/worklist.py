"""The worklist: every message of a batch sits in exactly one list.

Stages and plugins only move messages between lists; the engine reports and
acknowledges what reached ``ok`` and ``rejected`` and retries ``failed``.
Nothing is dropped silently: every move carries a reason, and a status code
when the move is worth a log message to the data's source.
"""
import logging
from dataclasses import dataclass, field

from .message import Message

log = logging.getLogger(__name__)
LISTS = ("incoming", "ok", "rejected", "failed")


@dataclass
class Outcome:
    code: int | None     # v02 status code to report, None: nothing to report
    reason: str
    tally: str | None = None   # what to count it as when there is no code


@dataclass
class Worklist:
    incoming: list[Message] = field(default_factory=list)
    ok: list[Message] = field(default_factory=list)
    rejected: list[Message] = field(default_factory=list)
    failed: list[Message] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def move(self, msg: Message, to: str, reason: str, code: int | None = None,
             tally: str | None = None) -> None:
        """Take ``msg`` out of whichever list holds it and append it to ``to``."""
        if to not in LISTS:
            raise ValueError(f"no worklist '{to}'")
        for name in LISTS:
            lst = getattr(self, name)
            for i, m in enumerate(lst):
                if m is msg:
                    del lst[i]
                    break
        getattr(self, to).append(msg)
        self.outcomes[id(msg)] = Outcome(code, reason, tally)
        if to == "rejected":
            log.info("rejected %s: %s", msg.relpath, reason)
        elif to == "failed":
            log.warning("failed %s: %s", msg.relpath, reason)

    def outcome(self, msg: Message) -> Outcome | None:
        return self.outcomes.get(id(msg))

    def settled(self) -> list[Message]:
        """Messages whose fate is decided (to acknowledge)."""
        return self.ok + self.rejected

    def all(self) -> list[Message]:
        return self.incoming + self.ok + self.rejected + self.failed

    def __len__(self) -> int:
        return len(self.incoming) + len(self.ok) + len(self.rejected) + len(self.failed)
