"""A small persistent queue of messages whose work failed, tried again later.

One file per instance in the state directory, JSON lines of the v02 wire
form plus the number of tries and when the next one is due. Written (and
fsynced) before the broker message is acknowledged, so a failure survives a
crash or a restart.
"""
import json
import logging
import os
import time

from .. import codec
from ..message import Message

log = logging.getLogger(__name__)


class RetryQueue:
    def __init__(self, path: str, max_tries: int = 0, base_delay: float = 5.0,
                 max_delay: float = 600.0):
        self.path = path
        self.max_tries = max_tries
        self.base_delay, self.max_delay = base_delay, max_delay
        self._items: list[dict] = self._load()

    def _load(self) -> list[dict]:
        items = []
        try:
            with open(self.path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    try:
                        items.append(json.loads(line))
                    except ValueError:
                        log.error("%s:%d: unreadable retry entry skipped", self.path, n)
        except FileNotFoundError:
            pass
        return items

    def _save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for it in self._items:
                f.write(json.dumps(it) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, msgs: list[Message], tries: dict[int, int]) -> None:
        now = time.time()
        for m in msgs:
            n = tries.get(id(m), 1)
            topic, headers, body, ctype = codec.encode(m, "v02.post")
            delay = min(self.base_delay * 2 ** (n - 1), self.max_delay)
            self._items.append({"topic": topic, "headers": headers, "body": body,
                                "exchange": m.exchange, "tries": n, "due": now + delay})
        if msgs:
            self._save()

    def take_due(self, limit: int) -> tuple[list[Message], dict[int, int]]:
        now = time.time()
        due = [it for it in self._items if it["due"] <= now][:limit]
        if not due:
            return [], {}
        self._items = [it for it in self._items if not any(it is d for d in due)]
        self._save()
        msgs, tries = [], {}
        for it in due:
            m = codec.decode(it["topic"], it["headers"], it["body"], None, it["exchange"])
            m.received = now
            msgs.append(m)
            tries[id(m)] = it["tries"]
        return msgs, tries
