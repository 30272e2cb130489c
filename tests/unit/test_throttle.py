"""The rate limiter: virtual scheduling, shared through a file by instances."""
import threading
import time

import pytest

from sarra.throttle import Throttle


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept += s
        self.now += s


@pytest.mark.parametrize("shared", [False, True])
def test_units_pass_at_the_rate(tmp_path, shared):
    t = FakeTime()
    th = Throttle(str(tmp_path / "t") if shared else None, rate=100, burst=0.1,
                  sleep=t.sleep, clock=t.clock)
    for _ in range(1000):
        th.consume(1)
    # 1000 units at 100/s take 10 s, less the 0.1 s burst allowed at the start
    assert t.now - 1000.0 == pytest.approx(9.9)


def test_instances_sharing_the_file_share_the_rate(tmp_path):
    t = FakeTime()
    a = Throttle(str(tmp_path / "t"), rate=1000, burst=0, sleep=t.sleep, clock=t.clock)
    b = Throttle(str(tmp_path / "t"), rate=1000, burst=0, sleep=t.sleep, clock=t.clock)
    for _ in range(50):       # two instances, 50 chunks of 10 units each
        a.consume(10)
        b.consume(10)
    assert t.now - 1000.0 == pytest.approx(1.0)


def test_a_pause_earns_only_the_burst(tmp_path):
    t = FakeTime()
    th = Throttle(None, rate=10, burst=0.5, sleep=t.sleep, clock=t.clock)
    th.consume(10)
    t.now += 60                       # idle for a minute
    th.consume(10)                    # 1 s of work, 0.5 s of it free
    assert t.slept == pytest.approx(0.5 + 0.5)


def test_zero_rate_is_no_limit(tmp_path):
    th = Throttle(str(tmp_path / "t"), rate=0)
    assert not th and th.consume(10**9) == 0.0


def test_threads_on_one_file_in_real_time(tmp_path):
    """Four writers, 200 units of 1 at 1000/s in all: about 0.2 s."""
    path = str(tmp_path / "t")

    def work():
        th = Throttle(path, rate=1000, burst=0)
        for _ in range(50):
            th.consume(1)
        th.close()

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for x in threads:
        x.start()
    for x in threads:
        x.join()
    assert 0.19 <= time.monotonic() - started < 0.6
