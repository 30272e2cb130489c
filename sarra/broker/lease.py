"""One holder at a time among the processes that name the same lease, on
any number of machines: a lease held on the broker.

The lease is an exclusive queue: the contender whose connection declared
it holds it; the broker refuses it to the others (RESOURCE_LOCKED, which
they take for "held elsewhere") and deletes it the moment the holder's
connection closes, so the next contender to try (each tries every
``TRY_EVERY`` seconds) takes it over. A holder that dies frees it at once
when it is killed on a live machine, after the heartbeat
(``broker_heartbeat``) when its machine vanishes. Declaring a queue named
``q_<user>.*`` is all it needs of the broker's permissions (no publishing,
not even to the default exchange, which a switch's users may not write to).

``held(wait)`` is what a holder asks before each piece of work: it checks
the lease (declaring its queue again, which only its holder may) at most
every ``TRY_EVERY`` seconds, and says False once the connection is lost: a
holder that cannot reach the broker stops, as another may be taking over.
"""
import logging
import time

from ..errors import BrokerError
from .base import Broker, QueueLocked

log = logging.getLogger(__name__)

TRY_EVERY = 1.0     # seconds between two looks at the lease (contending, or checking it)
RECONNECT = 2.0     # seconds between two attempts to reach the broker again


class Lease:
    def __init__(self, broker: Broker, name: str, what: str = "work"):
        self.broker, self.name, self.what = broker, name, what
        self._held = False
        self._connected = False
        self._next_look = 0.0         # monotonic time of the next look at the lease
        self._said = ""               # the last reason given for not contending

    def held(self, wait: float = 0.0) -> bool:
        """Whether this process holds the lease; when it does not, this
        waits up to ``wait`` seconds (trying once more if it is time)."""
        deadline = time.monotonic() + wait
        while True:
            if time.monotonic() >= self._next_look:
                self._look()
            if self._held or time.monotonic() >= deadline:
                return self._held
            time.sleep(max(0.0, min(deadline, self._next_look) - time.monotonic()))

    def _look(self) -> None:
        try:
            if not self._connected:
                self.broker.connect()
                self._connected = True
            self.broker.declare_queue(self.name, durable=False, exclusive=True)
        except QueueLocked:
            self._held = False           # another contender's, for now
            self._next_look = time.monotonic() + TRY_EVERY
            return
        except BrokerError as exc:
            self._lost(exc)
            return
        if not self._held:
            log.info("lease %s taken: this instance does the %s", self.name, self.what)
        self._held, self._said = True, ""
        self._next_look = time.monotonic() + TRY_EVERY

    def _lost(self, exc: BrokerError) -> None:
        if self._held:
            log.warning("lease %s lost (%s): the %s stops until it is held again",
                        self.name, exc, self.what)
        elif str(exc) != self._said:         # each new reason once, not every 2 s
            log.warning("lease %s cannot be contended for (%s): no %s until it can",
                        self.name, exc, self.what)
        else:
            log.debug("lease %s: %s", self.name, exc)
        self._said = str(exc)
        self._held = self._connected = False
        self._next_look = time.monotonic() + RECONNECT
        self.broker.close()

    def close(self) -> None:
        """Give the lease up (its queue goes with the connection)."""
        self._held = self._connected = False
        self.broker.close()
