"""The limits of the copy loop (sarra.transfer.base.copy), with fake streams,
a fake clock and a fake file system: too slow (transfer_rate_min over each
``timeout``), too big (download_size_max when the size is not announced),
short of space (disk_reserve); what each raises, and when.

The real transfers against a hostile server: tests/integration/test_hostile_servers.py.
"""
from __future__ import annotations

import io
import os
from types import SimpleNamespace

import pytest

from sarra.errors import TransferError
from sarra.transfer import base
from sarra.transfer.base import DISK_CHECK, Limits, copy

MiB = 1 << 20


class Clock:
    """time.monotonic for the copy loop: only the fakes move it."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(base.time, "monotonic", c)
    return c


class Source:
    """``chunk`` bytes per read, each read taking ``every`` seconds of the
    clock; ``total`` bytes in all (None: never ends); ``size``: the length
    the source announces (like an HTTP Content-Length)."""

    def __init__(self, clock: Clock, chunk: int, every: float, total: int | None = None,
                 size: int | None = None, slow_first: float = 0.0):
        self.clock, self.chunk, self.every, self.left = clock, chunk, every, total
        self.size, self.slow_first = size, slow_first
        self.reads = 0

    def read(self, n: int) -> bytes:
        self.reads += 1
        self.clock.now += self.every + (self.slow_first if self.reads == 1 else 0.0)
        k = min(n, self.chunk) if self.left is None else min(n, self.chunk, self.left)
        if self.left is not None:
            self.left -= k
        return b"x" * k

    def close(self) -> None:
        pass


class Sink(io.RawIOBase):
    """An output that counts what it is given (and has no file descriptor)."""

    def __init__(self):
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.n += len(data)
        return len(data)


# -- too slow -------------------------------------------------------------------

def test_a_trickle_is_cut_off_after_one_window(clock):
    start = clock.now
    src = Source(clock, chunk=1, every=2.0)             # one byte every 2 s
    with pytest.raises(TransferError) as info:
        copy(src, Sink(), 1000, [], 65536, limits=Limits(window=5, rate_min=1024))
    err = info.value
    assert err.recoverable and err.code == 499
    assert "too slow" in str(err) and "transfer_rate_min 1024 B/s" in str(err), str(err)
    # judged at the first chunk once 5 s have passed: after 6 s, not later
    assert clock.now - start == 6.0
    assert src.reads == 3


def test_without_a_minimum_rate_the_trickle_goes_on(clock):
    src = Source(clock, chunk=1, every=2.0, total=50)
    assert copy(src, Sink(), 50, [], 65536, limits=Limits(window=5, rate_min=0)) == 50
    assert copy(Source(clock, chunk=1, every=2.0, total=50), Sink(), 50, [], 65536) == 50


def test_a_fast_copy_is_never_judged_too_slow(clock):
    src = Source(clock, chunk=256 * 1024, every=0.01, total=64 * MiB)
    assert copy(src, Sink(), None, [], MiB, limits=Limits(window=2, rate_min=1 << 20)) \
        == 64 * MiB


def test_the_first_window_is_a_grace_period(clock):
    # 4.9 s before the first byte (a slow start), then fast: not cut
    src = Source(clock, chunk=64 * 1024, every=0.001, total=8 * MiB, slow_first=4.9)
    assert copy(src, Sink(), 8 * MiB, [], MiB, limits=Limits(window=5, rate_min=1024)) \
        == 8 * MiB


def test_a_transfer_that_slows_down_later_is_cut_off(clock):
    class Slowing(Source):
        def read(self, n):
            if self.reads == 20:
                self.every = 3.0           # from 1 MiB/s to 1 byte per 3 s
                self.chunk = 1
            return super().read(n)

    src = Slowing(clock, chunk=MiB, every=1.0)
    with pytest.raises(TransferError, match="too slow"):
        copy(src, Sink(), None, [], MiB, limits=Limits(window=5, rate_min=1024))
    assert src.reads < 20 + 5


def test_the_throttle_and_the_keepalive_are_not_the_transfer_being_slow(clock):
    class Throttle:                        # byte_rate_max: 1 KiB chunks at 100 B/s
        def consume(self, n):
            clock.now += n / 100

    def tick(_total):
        clock.now += 0.5                   # a slow broker keepalive

    src = Source(clock, chunk=1024, every=0.01, total=50 * 1024)
    got = copy(src, Sink(), None, [], 1024, tick=tick, throttle=Throttle(),
               limits=Limits(window=2, rate_min=10_000))
    assert got == 50 * 1024


# -- too big --------------------------------------------------------------------

def test_an_endless_stream_stops_at_the_ceiling_before_writing_past_it(clock):
    out = Sink()
    src = Source(clock, chunk=MiB, every=0.001)        # never ends
    with pytest.raises(TransferError) as info:
        copy(src, out, None, [], MiB, limits=Limits(size_max=3 * MiB + 5))
    err = info.value
    assert err.code == 413 and not err.recoverable
    assert "download_size_max" in str(err)
    assert out.n == 3 * MiB                            # the 4th MiB was not written


def test_a_stream_exactly_at_the_ceiling_is_fine(clock):
    src = Source(clock, chunk=MiB, every=0.001, total=3 * MiB)
    assert copy(src, Sink(), None, [], MiB, limits=Limits(size_max=3 * MiB)) == 3 * MiB


def test_a_length_announced_by_the_server_beyond_the_ceiling_is_refused_unread(clock):
    src = Source(clock, chunk=MiB, every=0.001, size=10 ** 12)
    with pytest.raises(TransferError, match="announced by the server") as info:
        copy(src, Sink(), None, [], MiB, limits=Limits(size_max=MiB))
    assert info.value.code == 413 and src.reads == 0


def test_an_announced_size_is_the_ceiling_itself(clock):
    # the post says 1000 bytes: the copy stops there, whatever the server sends
    src = Source(clock, chunk=MiB, every=0.001, size=10 ** 12)
    assert copy(src, Sink(), 1000, [], MiB) == 1000
    cfg = SimpleNamespace(timeout=30.0, transfer_rate_min=1024, download_size_max=MiB,
                          disk_reserve=0)
    assert Limits.of(cfg, sized=True).size_max == 0
    assert Limits.of(cfg, sized=False).size_max == MiB


# -- short of space -------------------------------------------------------------

class Disk:
    """os.fstatvfs of a file system with ``free`` bytes, less what ``out``
    has been given; counts the calls."""

    def __init__(self, free: int, out: Sink, size: int = 100 * (1 << 30)):
        self.free, self.out, self.size, self.calls = free, out, size, 0

    def __call__(self, fd: int):
        assert fd == 7
        self.calls += 1
        return SimpleNamespace(f_frsize=4096, f_blocks=self.size // 4096,
                               f_bavail=(self.free - self.out.n) // 4096)


def test_the_copy_stops_when_the_reserve_would_be_eaten(clock, monkeypatch):
    out = Sink()
    disk = Disk(100 * MiB, out)
    monkeypatch.setattr(base.os, "fstatvfs", disk)
    src = Source(clock, chunk=MiB, every=0.001)        # never ends
    with pytest.raises(TransferError) as info:
        copy(src, out, None, [], MiB, limits=Limits(reserve=80 * MiB, disk=7))
    err = info.value
    assert err.code == 507 and err.recoverable
    assert "disk_reserve" in str(err) and f"{80 * MiB} to be kept free" in str(err)
    # stopped within DISK_CHECK of the 20 MiB there were to take
    assert 20 * MiB - DISK_CHECK <= out.n <= 20 * MiB + DISK_CHECK
    # one look before, then one every DISK_CHECK bytes: cheap
    assert disk.calls <= 2 + out.n // DISK_CHECK


def test_a_known_length_that_would_eat_the_reserve_is_refused_before_reading(clock, monkeypatch):
    out = Sink()
    monkeypatch.setattr(base.os, "fstatvfs", Disk(100 * MiB, out))
    src = Source(clock, chunk=MiB, every=0.001, total=30 * MiB)
    with pytest.raises(TransferError, match="more bytes to write") as info:
        copy(src, out, 30 * MiB, [], MiB, limits=Limits(reserve=80 * MiB, disk=7))
    assert info.value.code == 507 and src.reads == 0 and out.n == 0
    # what fits goes through
    src = Source(clock, chunk=MiB, every=0.001, total=15 * MiB)
    assert copy(src, out, 15 * MiB, [], MiB, limits=Limits(reserve=80 * MiB, disk=7)) \
        == 15 * MiB


def test_a_reserve_in_percent_is_a_share_of_the_file_system(clock, monkeypatch):
    out = Sink()
    monkeypatch.setattr(base.os, "fstatvfs", Disk(100 * MiB, out, size=1000 * MiB))
    ok = Source(clock, chunk=MiB, every=0.001, total=5 * MiB)
    assert copy(ok, out, None, [], MiB, limits=Limits(reserve=0.09, disk=7)) == 5 * MiB
    out.n = 0
    with pytest.raises(TransferError, match="disk_reserve"):   # 10% = 100 MiB: none left
        copy(Source(clock, chunk=MiB, every=0.001, total=5 * MiB), out, None, [], MiB,
             limits=Limits(reserve=0.10, disk=7))


def test_the_reserve_is_checked_on_the_file_written_to(tmp_path):
    # a real file: its own descriptor, a real statvfs (a reserve of the whole disk fails)
    st = os.statvfs(tmp_path)
    with open(tmp_path / "f.tmp", "wb") as out:
        with pytest.raises(TransferError, match="disk_reserve"):
            copy(io.BytesIO(b"x" * 100), out, None, [], 65536,
                 limits=Limits(reserve=st.f_blocks * st.f_frsize))
        assert copy(io.BytesIO(b"x" * 100), out, None, [], 65536,
                    limits=Limits(reserve=4096)) == 100


# -- file: sources that never end -----------------------------------------------

def test_file_urls_read_regular_files_only(tmp_path):
    from sarra.transfer.file import FileTransfer
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "plain.bin").write_bytes(b"plain")
    t = FileTransfer()
    for path in (fifo, "/dev/zero", tmp_path):      # open() of the FIFO would wait forever
        with pytest.raises(TransferError, match="not a regular file") as info:
            t.open(f"file:{path}")
        assert not info.value.recoverable
    stream = t.open(f"file:{tmp_path}/plain.bin")
    try:
        assert stream.read(100) == b"plain"
    finally:
        stream.close()


def test_a_copy_cut_off_does_not_wait_to_hash_what_it_dropped(clock):
    import time as real_time

    class SlowSum:                         # the hashing thread's summer
        updates = 0

        def update(self, _chunk):
            real_time.sleep(0.05)
            SlowSum.updates += 1

    src = Source(clock, chunk=MiB, every=0.001)       # never ends: the hasher thread runs
    with pytest.raises(TransferError, match="download_size_max"):
        copy(src, Sink(), None, [SlowSum()], MiB, limits=Limits(size_max=20 * MiB))
    # 20 chunks went to the hasher; those still queued (up to 8) were dropped
    assert src.reads == 21 and SlowSum.updates <= 20 - 4, SlowSum.updates
