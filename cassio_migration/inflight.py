"""Many writes in flight: an adaptive window shared by a process's ranges, retries, a rate limit.

The window follows the database, as TCP's congestion window follows the network: it grows
while writes succeed and halves when they time out, come back slow, or the node says it is
overloaded (a hosted database's quota, a busy cluster), never above `--concurrency`. So a copy
that meets a quota backs off instead of failing, and a database that keeps up gets every write
in flight it can take. `--rate-limit` stays a hard cap on top.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from .job import ConnectionSpec
from .retry import RetryPolicy, refuses_row, saturated

START = 16  # the window's first size: it doubles each round trip until the first back-off (slow start)


class RateLimiter:
    """At most `rate` acquisitions per second across threads (0 = unlimited)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = clock() if self._interval else 0.0
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return bool(self._interval)

    def acquire(self, n: int = 1) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(self._next, now)
            self._next = start + n * self._interval
        if start > now:
            self._sleep(start - now)


class Later:
    """Runs callables at their time on one thread of its own: a write waiting for its retry waits
    here, not in a thread of its own (a thread per retry cost more CPU than the writes, measured)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def call(self, delay_s: float, fn: Callable[..., None], *args: Any) -> None:
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay_s, next(self._order), fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="retries", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, fn, args = heapq.heappop(self._due)
            try:
                fn(*args)
            except Exception:  # a bug; the other waiting calls must still run
                logging.getLogger(__name__).exception("a delayed call failed")


LATER = Later()


@dataclass(frozen=True)
class PaceReport:
    """What the window did over a span: how often it backed off, and the sizes it took."""

    backoffs: int = 0
    low: int = 0
    high: int = 0


class Pace:
    """How many writes this process keeps in flight: additive increase, multiplicative decrease.

    `ceiling`: never more (`--concurrency`). A write slower than `slow_s` (by default a quarter
    of the default request timeout), or failed with a
    timeout or an overload error, halves the window, once for the writes in flight then; each
    success grows it by 1/window (one more per round trip), or by one (doubling per round trip)
    until the first back-off.
    """

    def __init__(
        self,
        ceiling: int,
        slow_s: float = ConnectionSpec.request_timeout / 4,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = ceiling
        self.slow_s = slow_s
        self._adaptive = adaptive
        self._clock = clock
        self._window = float(min(ceiling, START) if adaptive else ceiling)
        self._slow_start = True
        self._in_flight = 0
        self._last_cut = float("-inf")
        self._cond = threading.Condition()
        self.backoffs = 0
        self.low = self.high = int(self._window)

    @property
    def window(self) -> int:
        return max(1, int(self._window))

    def acquire(self, rows: int = 1) -> None:
        """Wait for room in the window for `rows` writes (a batch larger than the window goes alone), and take it."""
        with self._cond:
            while self._in_flight and self._in_flight + rows > self.window:
                self._cond.wait()
            self._in_flight += rows

    def release(self, rows: int = 1) -> None:
        """Writes are over (for good): their room is free."""
        with self._cond:
            self._in_flight -= rows
            self._cond.notify_all()

    def answered(self, sent: float, ok: bool, rows: int = 1) -> None:
        """A try of `rows` writes, sent at `sent`, came back: `ok`, or with an error that says the node is saturated.

        A write sent before the last back-off says nothing new about the window of now (the writes
        of one burst fail together): only the first of them halves it.
        """
        if not self._adaptive:
            return
        now = self._clock()
        with self._cond:
            if not ok or now - sent > self.slow_s:
                if sent >= self._last_cut:
                    self._window = max(1.0, self._window / 2)
                    self._slow_start = False
                    self.backoffs += 1
                    self.low = min(self.low, self.window)
                    self._last_cut = now
                return
            if self._window < self.ceiling:
                grown = self._window + (rows if self._slow_start else rows / self.window)
                self._window = min(float(self.ceiling), grown)
                self.high = max(self.high, self.window)
                self._cond.notify_all()

    def report(self) -> PaceReport:
        """Back-offs so far, and the window's range: one process's figures, as a range ends."""
        with self._cond:
            return PaceReport(self.backoffs, self.low, self.high)


def unlogged(rows: list[Any]) -> BatchStatement:
    """An UNLOGGED batch of bound rows, which keeps them (`.rows`) to send one by one if need be."""
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for bound in rows:
        batch.add(bound)
    batch.rows = rows
    return batch


class WriteWindow:
    """One range's writes, sent through the process's `Pace`; `drain` waits for this range's writes.

    With `batch_rows` > 1, rows that go to the same replicas are sent together, as UNLOGGED
    batches of up to `batch_rows` rows and `batch_bytes` bytes (a row larger than that goes
    alone): fewer requests for the same writes, each row still with its own write time and
    TTL. Memory is bounded by the window and the open batches, not by how many rows pass
    through. A failed write is tried again as the retry policy says, keeping its room in the
    window meanwhile; once the policy gives up, `submit` and `drain` raise its FatalError.
    A write the database refuses for the row's own content (`refuses_row`) goes to `on_refused`
    with the row's `origin` and the database's message, and the range goes on; a batch so
    refused is sent again row by row, to find the row.
    """

    def __init__(
        self,
        session: Session,
        pace: Pace,
        policy: RetryPolicy,
        batch_rows: int = 1,
        batch_bytes: int = 4 * 1024,
        on_refused: Callable[[Any, str], None] | None = None,
    ) -> None:
        self._session = session
        self._on_refused = on_refused
        self._pace = pace
        self._policy = policy
        self._batch_rows = batch_rows
        self._batch_bytes = batch_bytes
        self._groups: dict[Any, tuple[list[Any], int]] = {}  # replicas -> (bound rows, bytes) waiting
        self._cond = threading.Condition()
        self._pending = 0
        self._failure: BaseException | None = None
        self.retries = 0

    def submit(self, statement: Any, params: Any, origin: Any = None) -> None:
        """Write one row (`origin`: what `on_refused` gets if the database refuses it): at once, or in the
        batch of its replicas."""
        if self._failure is not None:
            raise self._policy.gave_up("a write", self._failure)
        bound = statement.bind(params)
        bound.origin = origin
        if self._batch_rows <= 1:
            self._start(bound, None, 1)
            return
        size = sum(len(v) for v in bound.values if v)  # the row's bytes on the wire
        if size >= self._batch_bytes:
            self._start(bound, None, 1)
            return
        replicas = self._replicas(bound)
        rows, nbytes = self._groups.get(replicas, ([], 0))
        if rows and nbytes + size > self._batch_bytes:
            self._flush(replicas)
            rows, nbytes = [], 0
        rows.append(bound)
        self._groups[replicas] = (rows, nbytes + size)
        if len(rows) >= self._batch_rows:
            self._flush(replicas)

    def _replicas(self, bound: Any) -> Any:
        """Who stores the row: the replicas of its token (the driver's token map), or None if unknown."""
        token_map = self._session.cluster.metadata.token_map
        if token_map is None or bound.routing_key is None:
            return None
        token = token_map.token_class.from_key(bound.routing_key)
        return frozenset(h.endpoint for h in token_map.get_replicas(bound.keyspace, token)) or None

    def _flush(self, replicas: Any) -> None:
        rows, _ = self._groups.pop(replicas)
        self._start(rows[0] if len(rows) == 1 else unlogged(rows), None, len(rows))

    def _start(self, statement: Any, params: Any, rows: int) -> None:
        self._pace.acquire(rows)
        with self._cond:
            self._pending += 1
        self._send(statement, params, rows, time.monotonic(), 0)

    def _send(self, statement: Any, params: Any, rows: int, first_try: float, attempt: int) -> None:
        sent = time.monotonic()
        try:
            future = self._session.execute_async(statement, params)
        except Exception as exc:  # the driver raises synchronously when no host is up
            self._failed(exc, statement, params, rows, first_try, attempt, sent)
            return
        future.add_callbacks(
            self._done,
            self._failed,
            callback_args=(rows, sent),
            errback_args=(statement, params, rows, first_try, attempt, sent),
        )

    def _done(self, _result: Any, rows: int, sent: float) -> None:
        self._pace.answered(sent, ok=True, rows=rows)
        self._finished(rows)

    def _failed(
        self, exc: BaseException, statement: Any, params: Any, rows: int, first_try: float, attempt: int, sent: float
    ) -> None:
        if saturated(exc):
            self._pace.answered(sent, ok=False, rows=rows)
        if isinstance(statement, BatchStatement) and (refuses_row(exc) or "too large" in str(exc).lower()):
            # Larger on the node than its batch_size_fail_threshold, or a row in it refused: each row on its
            # own, in the same room.
            with self._cond:
                self._pending += len(statement.rows) - 1
            for bound in statement.rows:
                self._send(bound, None, 1, first_try, attempt)
            return
        if self._on_refused is not None and refuses_row(exc):
            self._on_refused(getattr(statement, "origin", None), str(exc))
            self._finished(rows)
            return
        if self._policy.should_retry(exc, first_try):
            with self._cond:
                self.retries += 1
            LATER.call(self._policy.delay(attempt), self._send, statement, params, rows, first_try, attempt + 1)
            return
        with self._cond:
            if self._failure is None:
                self._failure = exc
        self._finished(rows)

    def _finished(self, rows: int) -> None:
        self._pace.release(rows)
        with self._cond:
            self._pending -= 1
            if not self._pending:
                self._cond.notify_all()

    def drain(self) -> None:
        """Send the open batches; wait until every write of this range has finished; raise if one failed for good."""
        for replicas in list(self._groups):
            self._flush(replicas)
        with self._cond:
            while self._pending:
                self._cond.wait()
        if self._failure is not None:
            raise self._policy.gave_up("a write", self._failure)
