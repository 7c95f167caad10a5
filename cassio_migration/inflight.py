"""Many writes in flight within a bounded window, retried with back-off, rate-limited."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from cassandra import OperationTimedOut, Unavailable, WriteFailure, WriteTimeout
from cassandra.cluster import NoHostAvailable, Session
from cassandra.protocol import OverloadedErrorMessage

from .errors import FatalError

# Errors worth another try: the node was slow, busy, or briefly away.
# A write failure is retried too: every write carries its own timestamp, so a retry is idempotent
# (Cassandra 5.0.9's vector index fails writes from too many threads at once on small machines).
RETRYABLE = (
    WriteTimeout,
    WriteFailure,
    OperationTimedOut,
    Unavailable,
    NoHostAvailable,
    OverloadedErrorMessage,
    ConnectionError,
)


class RateLimiter:
    """At most `rate` acquisitions per second across threads (0 = unlimited)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return bool(self._interval)

    def acquire(self, n: int = 1) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + n * self._interval
        if start > now:
            time.sleep(start - now)


# What a stopped copy tells the user: its state (done ranges) is in the database.
RESUME_HINT = "the state is saved: run the same command again to resume"


class WriteWindow:
    """execute_async with at most `limit` writes in flight; `drain` waits for all.

    Memory is bounded by the window, not by how many rows pass through. A failed write
    is retried with exponential back-off until `retry_seconds` have passed since its
    first try; past that, `submit` and `drain` raise FatalError, ending with `hint`
    (what to do next).
    """

    def __init__(self, session: Session, limit: int, retry_seconds: float = 120.0, hint: str = RESUME_HINT) -> None:
        self._session = session
        self._slots = threading.BoundedSemaphore(limit)
        self._limit = limit
        self._retry_seconds = retry_seconds
        self._hint = hint
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self.retries = 0

    def _gave_up(self, exc: BaseException) -> FatalError:
        reason = f"{type(exc).__name__}: {exc}"[:300]
        if isinstance(exc, RETRYABLE):
            message = (
                f"a write still failed after {self._retry_seconds:g} s of retries (MIGRATION_RETRY_SECONDS): {reason}"
            )
        else:
            message = f"a write failed: {reason}"
        return FatalError(f"{message}; {self._hint}" if self._hint else message)

    def submit(self, statement: Any, params: Any) -> None:
        if self._failure is not None:
            raise self._gave_up(self._failure)
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
        elapsed = time.monotonic() - first_try
        if isinstance(exc, RETRYABLE) and elapsed < self._retry_seconds:
            with self._lock:
                self.retries += 1
            delay = min(10.0, 0.1 * 2**attempt) * (0.5 + random.random())
            timer = threading.Timer(delay, self._send, (statement, params, first_try, attempt + 1))
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
            raise self._gave_up(self._failure)
