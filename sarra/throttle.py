"""Rate limits (bytes/s of transfers, messages/s) shared by every instance
of a configuration.

One small file in the state directory per limit holds the time at which
the last booking ends ("virtual scheduling": ``n`` units book ``n / rate``
seconds from the later of now and the end of the last booking). Every
instance books under an exclusive lock on that file, then sleeps outside
the lock until its booking ends, so the configuration as a whole never
goes faster than the rate, however many instances share the work. A short
burst (``burst`` seconds' worth) is allowed after a pause.
"""
import fcntl
import os
import struct
import time
from typing import Callable

_SLOT = struct.Struct("<d")


class Throttle:
    def __init__(self, path: str | None, rate: float, burst: float = 0.1,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time):
        """``path``: the shared file (None: this process only); ``rate``:
        units per second (0: unlimited)."""
        self.rate, self.burst = float(rate), burst
        self._sleep, self._clock = sleep, clock
        self._fd = None
        self._next = 0.0                      # when path is None
        if path and self.rate > 0:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __bool__(self) -> bool:
        return self.rate > 0

    def consume(self, n: float) -> float:
        """Book ``n`` units (already done, or about to be) and wait until
        their booking ends; returns the seconds slept."""
        if self.rate <= 0 or n <= 0:
            return 0.0
        now = self._clock()
        if self._fd is None:
            start = max(now - self.burst, self._next)
            end = self._next = start + n / self.rate
        else:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(self._fd, _SLOT.size, 0)
                last = _SLOT.unpack(raw)[0] if len(raw) == _SLOT.size else 0.0
                end = max(now - self.burst, last) + n / self.rate
                os.pwrite(self._fd, _SLOT.pack(end), 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        wait = end - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
