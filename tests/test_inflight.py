"""inflight.py with a fake session and a fake clock: the write window's bound and retries, the rate limiter."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from cassandra import WriteTimeout

from cassio_migration.errors import FatalError
from cassio_migration.inflight import RateLimiter, WriteWindow
from cassio_migration.retry import RetryPolicy


class FakeFuture:
    def __init__(self, session: FakeSession, params: Any) -> None:
        self.session, self.params = session, params

    def add_callbacks(self, callback: Any, errback: Any, errback_args: tuple[Any, ...] = ()) -> None:
        # Answer from another thread a little later, as the driver's event loop does.
        threading.Timer(0.002, self.session.answer, (self.params, callback, errback, errback_args)).start()


class FakeSession:
    """Fails the first `failures` tries of each write with a WriteTimeout; records the peak in flight."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.tries: dict[Any, int] = {}
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()

    def execute_async(self, statement: Any, params: Any) -> FakeFuture:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        return FakeFuture(self, params)

    def answer(self, params: Any, callback: Any, errback: Any, errback_args: tuple[Any, ...]) -> None:
        with self.lock:
            self.in_flight -= 1
            tries = self.tries[params] = self.tries.get(params, 0) + 1
        if tries <= self.failures:
            errback(WriteTimeout("timed out", write_type=0), *errback_args)
        else:
            callback(None)


def test_the_window_bounds_the_writes_in_flight_and_drain_waits_for_all() -> None:
    session = FakeSession()
    window = WriteWindow(session, 8, RetryPolicy(5))  # type: ignore[arg-type]
    for i in range(200):
        window.submit("INSERT", (i,))
    window.drain()
    assert session.peak <= 8 and session.in_flight == 0
    assert sorted(session.tries) == [(i,) for i in range(200)] and window.retries == 0


def test_a_timed_out_write_is_retried_until_it_succeeds() -> None:
    session = FakeSession(failures=2)
    window = WriteWindow(session, 4, RetryPolicy(30, first_delay_s=0.001))  # type: ignore[arg-type]
    for i in range(10):
        window.submit("INSERT", (i,))
    window.drain()
    assert all(n == 3 for n in session.tries.values()) and window.retries == 20


def test_a_write_that_keeps_failing_stops_the_run_with_the_resume_hint() -> None:
    session = FakeSession(failures=10**6)
    window = WriteWindow(session, 4, RetryPolicy(0.2, first_delay_s=0.01))  # type: ignore[arg-type]
    window.submit("INSERT", (1,))
    with pytest.raises(FatalError) as info:
        window.drain()
    message = str(info.value)
    assert message.startswith("a write still failed after 0.2 s of retries (MIGRATION_RETRY_SECONDS): WriteTimeout")
    assert message.endswith("the state is saved; run the same command again to resume")
    with pytest.raises(FatalError):
        window.submit("INSERT", (2,))  # no further write once one has failed for good


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_rate_limiter_spaces_acquisitions_by_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock.time, sleep=clock.sleep)
    for _ in range(500):
        limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(4.99)  # 500 rows at 100/s: the first is free
    assert limiter.limited


def test_the_rate_limiter_does_not_bank_idle_time_beyond_now() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock.time, sleep=clock.sleep)
    clock.now += 60  # idle for a minute
    for _ in range(3):
        limiter.acquire()
    assert clock.slept == pytest.approx([0.1, 0.1])


def test_no_rate_means_no_wait() -> None:
    limiter = RateLimiter(0, clock=lambda: pytest.fail("no clock needed"), sleep=lambda s: pytest.fail("no sleep"))  # type: ignore[arg-type,return-value]
    began = time.monotonic()
    for _ in range(1000):
        limiter.acquire()
    assert not limiter.limited and time.monotonic() - began < 0.5
