"""The one retry policy of reads, writes and state updates: which errors, how long, what back-off.

Every write carries its own timestamp and every read is a plain SELECT, so each is
idempotent and safe to try again. A write failure is retried too: Cassandra 5.0.9's
vector index fails writes from too many threads at once on small machines.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cassandra import (
    InvalidRequest,
    OperationTimedOut,
    ReadFailure,
    ReadTimeout,
    Unavailable,
    WriteFailure,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import OverloadedErrorMessage

from .errors import RESUME_HINT, FatalError

# Errors worth another try: the node was slow, busy, or briefly away.
RETRYABLE: tuple[type[BaseException], ...] = (
    ReadTimeout,
    ReadFailure,
    WriteTimeout,
    WriteFailure,
    OperationTimedOut,
    Unavailable,
    NoHostAvailable,
    OverloadedErrorMessage,
    ConnectionError,
)
# The errors that say "the node is saturated": an adaptive window shrinks on them.
OVERLOAD: tuple[type[BaseException], ...] = (WriteTimeout, OperationTimedOut, OverloadedErrorMessage)


def saturated(exc: BaseException) -> bool:
    """Whether an error says the database is saturated. The driver answers a node's "overloaded"
    by trying the next host, and once no host is left raises NoHostAvailable with the nodes' errors."""
    if isinstance(exc, NoHostAvailable):
        return any(isinstance(e, OVERLOAD) for e in exc.errors.values())
    return isinstance(exc, OVERLOAD)


# InvalidRequest texts that speak of the job, not of one row: every row would meet them.
_NOT_THE_ROW = ("unconfigured table", "does not exist", "consistency level", "keyspace")


def refuses_row(exc: BaseException) -> bool:
    """Whether the database refused a write for the row's own content (an empty or too long key, a value
    past an index's term size or a guardrail), rather than for the table, the keyspace or the settings."""
    return isinstance(exc, InvalidRequest) and not any(s in str(exc).lower() for s in _NOT_THE_ROW)


MAX_DELAY_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a retryable error with exponential back-off and jitter, for up to `seconds` since the first try."""

    seconds: float = 120.0
    first_delay_s: float = 0.1
    hint: str = RESUME_HINT  # what to do next, ending the message of a run stopped by a failure

    def delay(self, attempt: int) -> float:
        """The pause before try `attempt + 1` (attempt 0 is the first try)."""
        return min(MAX_DELAY_S, self.first_delay_s * 2**attempt) * (0.5 + random.random())

    def should_retry(self, exc: BaseException, first_try: float) -> bool:
        return isinstance(exc, RETRYABLE) and time.monotonic() - first_try < self.seconds

    def gave_up(self, what: str, exc: BaseException) -> FatalError:
        """The error that stops the run: `what` (e.g. 'a write') failed for good."""
        reason = f"{type(exc).__name__}: {exc}"[:300]
        if isinstance(exc, RETRYABLE):
            message = f"{what} still failed after {self.seconds:g} s of retries (MIGRATION_RETRY_SECONDS): {reason}"
        else:
            message = f"{what} failed: {reason}"
        return FatalError(f"{message}; {self.hint}" if self.hint else message)

    def call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        stop: threading.Event | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """fn(), tried again on a retryable error; FatalError once the time is spent (or `stop` is set)."""
        first_try, attempt = time.monotonic(), 0
        while True:
            try:
                return fn()
            except RETRYABLE as exc:
                if not self.should_retry(exc, first_try) or (stop is not None and stop.is_set()):
                    raise self.gave_up(what, exc) from None
                if on_retry is not None:
                    on_retry()
                time.sleep(self.delay(attempt))
                attempt += 1
