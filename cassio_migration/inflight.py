"""Many writes in flight within a bounded window, retried by the retry policy, rate-limited."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cassandra.cluster import Session

from .retry import RetryPolicy


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


class WriteWindow:
    """execute_async with at most `limit` writes in flight; `drain` waits for all.

    Memory is bounded by the window, not by how many rows pass through. A failed write
    is tried again as the retry policy says; once it gives up, `submit` and `drain` raise
    its FatalError.
    """

    def __init__(self, session: Session, limit: int, policy: RetryPolicy) -> None:
        self._session = session
        self._slots = threading.BoundedSemaphore(limit)
        self._limit = limit
        self._policy = policy
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self.retries = 0

    def submit(self, statement: Any, params: Any) -> None:
        if self._failure is not None:
            raise self._policy.gave_up("a write", self._failure)
        self._slots.acquire()
        self._send(statement, params, time.monotonic(), 0)

    def _send(self, statement: Any, params: Any, first_try: float, attempt: int) -> None:
        try:
            future = self._session.execute_async(statement, params)
        except Exception as exc:  # the driver raises synchronously when no host is up
            self._failed(exc, statement, params, first_try, attempt)
            return
        future.add_callbacks(self._done, self._failed, errback_args=(statement, params, first_try, attempt))

    def _done(self, _result: Any) -> None:
        self._slots.release()

    def _failed(self, exc: BaseException, statement: Any, params: Any, first_try: float, attempt: int) -> None:
        if self._policy.should_retry(exc, first_try):
            with self._lock:
                self.retries += 1
            timer = threading.Timer(
                self._policy.delay(attempt), self._send, (statement, params, first_try, attempt + 1)
            )
            timer.daemon = True
            timer.start()
            return
        with self._lock:
            if self._failure is None:
                self._failure = exc
        self._slots.release()

    def drain(self) -> None:
        """Wait until every submitted write has finished; raise if one failed for good."""
        for _ in range(self._limit):
            self._slots.acquire()
        for _ in range(self._limit):
            self._slots.release()
        if self._failure is not None:
            raise self._policy.gave_up("a write", self._failure)
