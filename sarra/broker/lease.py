"""One holder at a time among the processes that name the same lease, on
any number of machines: a lease held on the broker.

The lease is a queue with a single active consumer (RabbitMQ's
``x-single-active-consumer``): every contender consumes from it, the broker
delivers to one of them only, and to the next one when that one goes. Each
contender publishes a *token* into the queue when it connects; the active
consumer keeps one token unacknowledged (the lease) and acknowledges the
others. A holder that dies, or whose connection drops, gives its token back
to the queue at once (the broker requeues what was not acknowledged), and
the broker hands it to the next consumer: the takeover needs no timer, only
the broker noticing the connection is gone (at once for a process killed on
a live machine; after the heartbeat, ``broker_heartbeat``, for a machine
that vanished).

``held(wait)`` is what a holder asks before each piece of work: it also
keeps the lease's connection serviced. When the lease's connection is lost,
``held`` says False until it is connected again (and the token came back):
a holder that cannot reach the broker stops, as another may be taking over.
The queue is not durable and expires when no contender uses it
(``expire_s``); the tokens are published again by each contender when it
connects, so a broker restart loses nothing.
"""
import logging
import time

from ..errors import BrokerError
from .base import Broker, Outgoing

log = logging.getLogger(__name__)

RECONNECT = 2.0     # seconds between two attempts to reach the broker again


class Lease:
    def __init__(self, broker: Broker, name: str, expire_s: float = 600.0,
                 what: str = "work"):
        self.broker, self.name, self.expire_s, self.what = broker, name, expire_s, what
        self._token = None           # the delivery tag of the token we keep
        self._connected = False
        self._next_try = 0.0
        self._said = ""              # the last reason given for not contending

    def connect(self) -> None:
        """Connect, declare the lease's queue, put a token in and contend."""
        self._token = None
        self.broker.connect()
        self.broker.declare_queue(self.name, durable=False, expire_s=self.expire_s,
                                  single_active=True)
        self.broker.publish(Outgoing("", self.name, {}, b"lease", persistent=False))
        self.broker.flush()
        self.broker.consume(self.name, prefetch=10)
        self._connected = True
        self._said = ""

    def held(self, wait: float = 0.0) -> bool:
        """Whether this process holds the lease, after waiting up to ``wait``
        seconds for it (or for news of it)."""
        if not self._connected:
            if time.monotonic() < self._next_try:
                time.sleep(min(wait, max(0.0, self._next_try - time.monotonic())))
                return False
            try:
                self.connect()
            except BrokerError as exc:
                self._lost(exc)
                return False
        try:
            for delivery in self.broker.get(wait):
                if self._token is None:
                    self._token = delivery.tag
                    log.info("lease %s taken: this instance does the %s", self.name,
                             self.what)
                else:
                    self.broker.ack([delivery.tag])     # a contender's token: one is enough
        except BrokerError as exc:
            self._lost(exc)
            return False
        return self._token is not None

    def _lost(self, exc: BrokerError) -> None:
        if self._token is not None:
            log.warning("lease %s lost (%s): the %s stops until it is held again",
                        self.name, exc, self.what)
        elif str(exc) != self._said:         # each new reason once, not every 2 s
            log.warning("lease %s cannot be contended for (%s): no %s until it can",
                        self.name, exc, self.what)
        else:
            log.debug("lease %s: %s", self.name, exc)
        self._said = str(exc)
        self._token = None
        self._connected = False
        self._next_try = time.monotonic() + RECONNECT
        self.broker.close()

    def close(self) -> None:
        """Give the lease up (the token goes to the next contender)."""
        self._token = None
        self._connected = False
        self.broker.close()
