"""inflight.py with a fake session and a fake clock: the write window's bound and retries, the rate limiter."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from cassandra import InvalidRequest, OperationTimedOut, WriteTimeout
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import OverloadedErrorMessage
from cassandra.query import BatchStatement, SimpleStatement

from cassio_migration.errors import FatalError
from cassio_migration.inflight import START, Later, Pace, PaceReport, RateLimiter, WriteWindow
from cassio_migration.retry import RetryPolicy, saturated


class FakeFuture:
    def __init__(self, session: FakeSession, params: Any) -> None:
        self.session, self.params = session, params

    def add_callbacks(
        self, callback: Any, errback: Any, callback_args: tuple[Any, ...] = (), errback_args: tuple[Any, ...] = ()
    ) -> None:
        # Answer from another thread a little later, as the driver's event loop does.
        args = (self.params, callback, errback, callback_args, errback_args)
        threading.Timer(0.002, self.session.answer, args).start()


class Bound:
    """A bound statement stand-in: the params it was bound with (and the window's `origin`)."""

    def __init__(self, params: Any) -> None:
        self.params = params


class Insert:
    """A prepared INSERT stand-in."""

    def bind(self, params: Any) -> Bound:
        return Bound(params)


INSERT = Insert()


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
        return FakeFuture(self, params if params is not None else statement.params)

    def answer(
        self, params: Any, callback: Any, errback: Any, callback_args: tuple[Any, ...], errback_args: tuple[Any, ...]
    ) -> None:
        with self.lock:
            self.in_flight -= 1
            tries = self.tries[params] = self.tries.get(params, 0) + 1
        if tries <= self.failures:
            errback(WriteTimeout("timed out", write_type=0), *errback_args)
        else:
            callback(None, *callback_args)


def test_the_window_bounds_the_writes_in_flight_and_drain_waits_for_all() -> None:
    session = FakeSession()
    window = WriteWindow(session, Pace(8, slow_s=10, adaptive=False), RetryPolicy(5))  # type: ignore[arg-type]
    for i in range(200):
        window.submit(INSERT, (i,))
    window.drain()
    assert session.peak <= 8 and session.in_flight == 0
    assert sorted(session.tries) == [(i,) for i in range(200)] and window.retries == 0


def test_a_timed_out_write_is_retried_until_it_succeeds() -> None:
    session = FakeSession(failures=2)
    window = WriteWindow(session, Pace(4, slow_s=10), RetryPolicy(30, first_delay_s=0.001))  # type: ignore[arg-type]
    for i in range(10):
        window.submit(INSERT, (i,))
    window.drain()
    assert all(n == 3 for n in session.tries.values()) and window.retries == 20


def test_a_write_that_keeps_failing_stops_the_run_with_the_resume_hint() -> None:
    session = FakeSession(failures=10**6)
    window = WriteWindow(session, Pace(4, slow_s=10), RetryPolicy(0.2, first_delay_s=0.01))  # type: ignore[arg-type]
    window.submit(INSERT, (1,))
    with pytest.raises(FatalError) as info:
        window.drain()
    message = str(info.value)
    assert message.startswith("a write still failed after 0.2 s of retries (MIGRATION_RETRY_SECONDS): WriteTimeout")
    assert message.endswith("the state is saved; run the same command again to resume")
    with pytest.raises(FatalError):
        window.submit(INSERT, (2,))  # no further write once one has failed for good


class QuotaSession:
    """A database that takes `capacity` writes at once: a write beyond that is refused as overloaded."""

    def __init__(self, capacity: int, wrap: bool = False) -> None:
        self.capacity = capacity
        self.wrap = wrap  # refusals wrapped in NoHostAvailable, as the driver raises them
        self.in_flight = self.peak = self.refused = self.written = 0
        self.lock = threading.Lock()

    def execute_async(self, statement: Any, params: Any) -> QuotaFuture:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            over = self.in_flight > self.capacity
        return QuotaFuture(self, over)


class QuotaFuture:
    def __init__(self, session: QuotaSession, over: bool) -> None:
        self.session, self.over = session, over

    def add_callbacks(self, callback: Any, errback: Any, callback_args: Any = (), errback_args: Any = ()) -> None:
        threading.Timer(0.002, self.answer, (callback, errback, callback_args, errback_args)).start()

    def answer(self, callback: Any, errback: Any, callback_args: Any, errback_args: Any) -> None:
        with self.session.lock:
            self.session.in_flight -= 1
            if self.over:
                self.session.refused += 1
            else:
                self.session.written += 1
        if self.over:
            refused = OverloadedErrorMessage(0x1001, "quota exceeded", None)
            # As the driver raises it: each host said "overloaded", none was left to try.
            error = (
                NoHostAvailable("Unable to complete the operation", {"h1": refused}) if self.session.wrap else refused
            )
            errback(error, *errback_args)
        else:
            callback(None, *callback_args)


@pytest.mark.parametrize("wrap", [False, True], ids=["overloaded", "no-host-left-overloaded"])
def test_under_a_quota_the_window_backs_off_and_every_write_gets_through(wrap: bool) -> None:
    session = QuotaSession(capacity=6, wrap=wrap)
    pace = Pace(128, slow_s=10)
    window = WriteWindow(session, pace, RetryPolicy(30, first_delay_s=0.001))  # type: ignore[arg-type]
    for i in range(600):
        window.submit(INSERT, (i,))
    window.drain()
    assert session.written == 600 and session.refused > 0  # nothing lost, no write out of retries
    report = pace.report()
    assert report.backoffs >= 1 and report.low <= 8 and report.high <= 128
    # Refusals stay a small share: the window settles near what the database takes.
    assert session.refused < 600, session.refused


def test_a_fixed_window_does_not_adapt() -> None:
    session = QuotaSession(capacity=6)
    pace = Pace(32, slow_s=10, adaptive=False)
    window = WriteWindow(session, pace, RetryPolicy(30, first_delay_s=0.001))  # type: ignore[arg-type]
    for i in range(200):
        window.submit(INSERT, (i,))
    window.drain()
    assert session.written == 200 and pace.report() == PaceReport(0, 32, 32)


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


def test_the_window_doubles_per_round_trip_then_halves_once_per_burst_then_grows_by_one() -> None:
    clock = FakeClock()
    pace = Pace(128, slow_s=1.0, clock=clock.time)
    assert pace.window == START == 16
    for _ in range(16):
        pace.answered(clock.now, ok=True)
    assert pace.window == 32  # slow start: +1 a write, doubling per round trip
    burst = clock.now
    clock.now += 0.01
    pace.answered(burst, ok=False)
    assert pace.window == 16
    pace.answered(burst, ok=False)  # sent before the back-off, with the first: no second cut
    assert pace.window == 16 and pace.backoffs == 1
    sent = clock.now
    clock.now += 2.5
    pace.answered(sent, ok=True)  # slower than slow_s: a back-off, though it succeeded
    assert pace.window == 8 and pace.backoffs == 2
    for _ in range(8):
        pace.answered(clock.now, ok=True)
    assert pace.window == 9  # additive increase: one per round trip after the first back-off
    assert pace.report() == PaceReport(2, 8, 32)


def test_the_window_never_exceeds_its_ceiling_nor_drops_below_one() -> None:
    clock = FakeClock()
    pace = Pace(20, slow_s=1.0, clock=clock.time)
    for _ in range(1000):
        pace.answered(clock.now, ok=True)
    assert pace.window == 20
    for _ in range(20):
        clock.now += 1
        pace.answered(clock.now, ok=False)
    assert pace.window == 1


def test_later_runs_each_call_at_its_time_in_order_on_one_thread() -> None:
    later = Later()
    ran: list[tuple[str, str]] = []
    done = threading.Event()
    began = time.monotonic()
    for name, delay in (("c", 0.3), ("a", 0.1), ("b", 0.2)):
        later.call(delay, lambda n: ran.append((n, threading.current_thread().name)), name)
    later.call(0.35, done.set)
    assert done.wait(5)
    assert [n for n, _ in ran] == ["a", "b", "c"] and {t for _, t in ran} == {"retries"}
    assert time.monotonic() - began >= 0.3


class RowStatement:
    """A prepared INSERT stand-in: binding gives a statement of its own, with no routing key."""

    def bind(self, params: Any) -> SimpleStatement:
        bound = SimpleStatement(f"INSERT {params[0]}")
        bound.values = [b"x" * params[1]]  # type: ignore[attr-defined]
        return bound


class BatchCountingSession(FakeSession):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = type("C", (), {"metadata": type("M", (), {"token_map": None})()})()
        self.requests: list[int] = []

    def execute_async(self, statement: Any, params: Any) -> FakeFuture:
        self.requests.append(len(statement._statements_and_parameters) if isinstance(statement, BatchStatement) else 1)
        return super().execute_async(statement, id(statement))


def test_rows_go_in_unlogged_batches_of_at_most_n_rows_and_k_bytes_and_big_rows_alone() -> None:
    session = BatchCountingSession()
    pace = Pace(64, slow_s=10)
    window = WriteWindow(session, pace, RetryPolicy(5), batch_rows=5, batch_bytes=1000)  # type: ignore[arg-type]
    for i in range(23):
        window.submit(RowStatement(), (i, 100))
    window.submit(RowStatement(), ("big", 5000))  # larger than a batch may be: alone, at once
    for i in range(3):
        window.submit(RowStatement(), (i, 400))  # joins the 3 rows left open (300 bytes) while it fits in 1000
    window.drain()
    # 23 rows: 4 batches of 5, 3 left open; the big row alone; +400 +400 fit (1,100 would not): 4, then 2.
    assert session.requests == [5, 5, 5, 5, 1, 4, 2]
    assert session.in_flight == 0


class NoBatchesSession(BatchCountingSession):
    """A node whose batch size limit is lower than ours: it refuses every batch as too large."""

    def answer(
        self, params: Any, callback: Any, errback: Any, callback_args: tuple[Any, ...], errback_args: tuple[Any, ...]
    ) -> None:
        with self.lock:
            self.in_flight -= 1
        if isinstance(errback_args[0], BatchStatement):
            errback(InvalidRequest("Batch too large"), *errback_args)
        else:
            callback(None, *callback_args)


def test_a_batch_the_node_finds_too_large_is_sent_again_row_by_row() -> None:
    session = NoBatchesSession()
    window = WriteWindow(session, Pace(64, slow_s=10), RetryPolicy(5), batch_rows=4)  # type: ignore[arg-type]
    for i in range(10):
        window.submit(RowStatement(), (i, 10))
    window.drain()
    assert sorted(session.requests) == sorted([4, 4, 2, *[1] * 10])  # 3 batches refused, their 10 rows alone
    assert window.retries == 0


class RefusingSession(BatchCountingSession):
    """A node that refuses, for its content, every write holding the row numbered `bad` (a batch too)."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.bad = bad

    def answer(
        self, params: Any, callback: Any, errback: Any, callback_args: tuple[Any, ...], errback_args: tuple[Any, ...]
    ) -> None:
        with self.lock:
            self.in_flight -= 1
        statement = errback_args[0]
        rows = statement.rows if isinstance(statement, BatchStatement) else [statement]
        if any(r.query_string == f"INSERT {self.bad}" for r in rows):
            errback(InvalidRequest("Key may not be empty"), *errback_args)
        else:
            callback(None, *callback_args)


@pytest.mark.parametrize("batch_rows", [1, 4])
def test_a_row_the_node_refuses_goes_to_on_refused_and_the_others_are_written(batch_rows: int) -> None:
    session = RefusingSession(bad=5)
    refused: list[tuple[Any, str]] = []
    window = WriteWindow(
        session,  # type: ignore[arg-type]
        Pace(64, slow_s=10),
        RetryPolicy(5),
        batch_rows=batch_rows,
        on_refused=lambda origin, message: refused.append((origin, message)),
    )
    for i in range(10):
        window.submit(RowStatement(), (i, 10), f"row {i}")
    window.drain()  # no error: the range goes on
    assert refused == [("row 5", "Key may not be empty")]
    assert window.retries == 0
    assert session.in_flight == 0


def test_a_refusal_that_is_not_the_rows_fails_the_range() -> None:
    session = RefusingSession(bad=1)

    def answer_unconfigured(params: Any, callback: Any, errback: Any, cargs: Any, eargs: Any) -> None:
        with session.lock:
            session.in_flight -= 1
        errback(InvalidRequest("unconfigured table t"), *eargs)

    session.answer = answer_unconfigured  # type: ignore[method-assign]
    refused: list[Any] = []
    window = WriteWindow(
        session,  # type: ignore[arg-type]
        Pace(4, slow_s=10),
        RetryPolicy(5),
        on_refused=lambda origin, message: refused.append(origin),
    )
    window.submit(RowStatement(), (1, 10), "row 1")
    with pytest.raises(FatalError, match="unconfigured table"):
        window.drain()
    assert refused == []


def test_saturated_sees_through_no_host_available() -> None:
    refused = OverloadedErrorMessage(0x1001, "quota exceeded", None)
    assert saturated(refused) and saturated(OperationTimedOut())
    assert saturated(NoHostAvailable("none left", {"h1": refused, "h2": ConnectionRefusedError()}))
    assert not saturated(NoHostAvailable("none left", {"h1": ConnectionRefusedError()}))
    assert not saturated(InvalidRequest("bad"))
