"""Built-in on_message filters: ``size MIN MAX`` and ``age MAX_AGE``.

Both look only at the message (no I/O): the size announced by its ``parts``
header, the age of its ``pubtime``. A message they cannot judge (no parts
header: a delete, a link...) passes.
"""
import time

from ..config.options import parse_duration, parse_size
from ..message import Message, parse_time


class Size:
    """``size MIN MAX``: SKIP files smaller than MIN or larger than MAX bytes
    (k/m/g suffixes, binary; both bounds included)."""
    USAGE = "size MIN MAX"

    def __init__(self, cfg, minimum: str, maximum: str):
        self.min, self.max = parse_size(minimum), parse_size(maximum)
        if self.min > self.max:
            raise ValueError(f"MIN ({minimum}) is larger than MAX ({maximum})")

    def on_message(self, msg: Message) -> bool:
        size = msg.size
        return size is None or self.min <= size <= self.max


class Age:
    """``age MAX_AGE``: SKIP messages published longer than MAX_AGE ago
    (s/m/h/d suffixes)."""
    USAGE = "age MAX_AGE"

    def __init__(self, cfg, max_age: str, clock=time.time):
        self.max_age = parse_duration(max_age)
        self._clock = clock

    def on_message(self, msg: Message) -> bool:
        return self._clock() - parse_time(msg.pubtime) <= self.max_age
