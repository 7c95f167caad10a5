"""The job's state in the target keyspace: its context, its pass, and one row per range.

A pass is one scan of the whole source. The plan of a pass is stored before any copy;
a re-run resumes the running pass (done ranges are skipped), or, when the last pass
completed, starts a new one (the re-run after the cutover).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from .cql import qualified
from .errors import RESUME_HINT, FatalError, UsageError
from .inflight import PaceReport
from .plan import TokenRange, check_coverage
from .retry import RETRYABLE, RetryPolicy

JOBS = "cassio_migration_jobs"
PLAN_WRITES_IN_FLIGHT = 8
RANGES = "cassio_migration_ranges"


@dataclass
class Pass:
    number: int
    resumed: bool
    ranges: list[TokenRange]
    done: set[int]  # range starts finished in this pass
    skip_before_us: int | None  # rows written before this (µs) were copied by a completed pass (None: copy all)


@dataclass(frozen=True)
class Counts:
    """What a range (or a run, or a pass) did with its rows: read = written + rejected + skipped."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    bytes: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.read + other.read,
            self.written + other.written,
            self.rejected + other.rejected,
            self.skipped + other.skipped,
            self.bytes + other.bytes,
        )

    @property
    def balanced(self) -> bool:
        return self.read == self.written + self.rejected + self.skipped


@dataclass(frozen=True, order=True)
class WorkerId:
    """The process (and thread) that ran a range; stored as `host:pid:thread`."""

    host: str = ""
    pid: int = 0
    thread: str = ""

    @classmethod
    def current(cls) -> WorkerId:
        return cls(socket.gethostname(), os.getpid(), threading.current_thread().name)

    @classmethod
    def parse(cls, text: str | None) -> WorkerId:
        host, _, rest = (text or "").partition(":")
        pid, _, thread = rest.partition(":")
        return cls(host, int(pid) if pid.isdigit() else 0, thread)

    @property
    def process(self) -> str:
        return f"{self.host}:{self.pid}"

    def __str__(self) -> str:
        return f"{self.process}:{self.thread}"


@dataclass(frozen=True)
class RangeResult:
    """One range done: its row in the state table."""

    start: int
    end: int
    counts: Counts = Counts()
    duration_s: float = 0.0
    worker: WorkerId = field(default_factory=WorkerId)
    # How often a page or a write was tried again, and the process's write window when the range
    # ended: reported by the run, not kept in the state.
    read_retries: int = 0
    write_retries: int = 0
    pace: PaceReport = PaceReport()


def context_differences(stored: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """What differs between a stored job context and this job's, as `key: old -> new`."""
    return [
        f"{k}: {stored.get(k)!r} -> {context.get(k)!r}"
        for k in sorted(set(stored) | set(context))
        if stored.get(k) != context.get(k)
    ]


def _now_ms() -> int:
    return int(time.time() * 1000)


class StateStore:
    def __init__(self, session: Session, keyspace: str, job: str, policy: RetryPolicy = RetryPolicy()) -> None:
        self.session = session
        self.job = job
        self.policy = policy
        self._jobs = qualified(keyspace, JOBS)
        self._ranges = qualified(keyspace, RANGES)

    def create_tables(self) -> None:
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._jobs} (job text PRIMARY KEY, context text, pass_number int,"
            " pass_status text, pass_started_at timestamp, pass_finished_at timestamp, ranges int,"
            " copied_before_us bigint)"
        )
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._ranges} (job text, pass_number int, range_start bigint,"
            " range_end bigint, status text, rows_read bigint, rows_written bigint, rows_rejected bigint,"
            " rows_skipped bigint, bytes bigint, started_at timestamp, finished_at timestamp,"
            " duration_ms bigint, worker text, PRIMARY KEY ((job, pass_number), range_start))"
        )

    def _execute(self, query: Any, params: Any = None) -> Any:
        """Execute, retrying a node that is slow or away, as the copy's own reads and writes do."""
        return self.policy.call("recording progress in the state table", lambda: self.session.execute(query, params))

    def _execute_many(self, statement: Any, params: list[tuple[Any, ...]]) -> None:
        """Execute for each of `params`; the ones that failed are tried again, as the policy says."""
        todo = params

        def some_more() -> None:
            nonlocal todo
            results = execute_concurrent_with_args(
                self.session, statement, todo, concurrency=PLAN_WRITES_IN_FLIGHT, raise_on_first_error=False
            )
            failed = [(p, r) for p, (ok, r) in zip(todo, results) if not ok]
            todo = [p for p, _ in failed]
            if failed:
                error = failed[0][1]
                if not isinstance(error, RETRYABLE):
                    raise FatalError(f"storing the plan failed: {error}; {RESUME_HINT}")
                raise error

        self.policy.call("storing the plan", some_more)

    def job_row(self) -> Any:
        return self._execute(f"SELECT * FROM {self._jobs} WHERE job = %s", (self.job,)).one()

    def check_context(self, context: dict[str, Any], restart: bool) -> Any:
        """The stored job row, refused if it belongs to a different job (unless restart)."""
        row = self.job_row()
        if row is None:
            return None
        stored = json.loads(row.context)
        if stored == context:
            return row
        if restart:
            self.discard()
            return None
        differences = ", ".join(context_differences(stored, context))
        raise UsageError(
            f"the state for target {self.job} belongs to a different job ({differences}):"
            " run with --restart to discard it, or choose another TARGET_TABLE"
        )

    def discard(self) -> None:
        row = self.job_row()
        if row is not None:
            for number in range(1, (row.pass_number or 0) + 1):
                self._execute(f"DELETE FROM {self._ranges} WHERE job = %s AND pass_number = %s", (self.job, number))
            self._execute(f"DELETE FROM {self._jobs} WHERE job = %s", (self.job,))

    def begin(self, context: dict[str, Any], plan: Sequence[TokenRange], *, restart: bool, full: bool) -> Pass:
        """Resume the running pass, or store a new plan and start a new pass."""
        row = self.check_context(context, restart)
        if row is not None and row.pass_status == "running":
            ranges, done = self.load(row.pass_number)
            skip = None if full else row.copied_before_us
            return Pass(row.pass_number, True, ranges, done, skip)
        check_coverage(plan)
        number = (row.pass_number if row else 0) + 1
        skip_before = None if (full or row is None) else row.copied_before_us
        cql = f"INSERT INTO {self._ranges} (job, pass_number, range_start, range_end, status) VALUES (?, ?, ?, ?, 'pending')"
        insert = self.policy.call("preparing the plan's insert", lambda: self.session.prepare(cql))
        self._execute_many(insert, [(self.job, number, r.start, r.end) for r in plan])
        self._execute(
            f"INSERT INTO {self._jobs} (job, context, pass_number, pass_status, pass_started_at, ranges)"
            " VALUES (%s, %s, %s, 'running', %s, %s)",
            (self.job, json.dumps(context, sort_keys=True), number, _now_ms(), len(plan)),
        )
        return Pass(number, False, sorted(plan), set(), skip_before)

    def load(self, number: int) -> tuple[list[TokenRange], set[int]]:
        rows = list(
            self._execute(
                f"SELECT range_start, range_end, status FROM {self._ranges} WHERE job = %s AND pass_number = %s",
                (self.job, number),
            )
        )
        ranges = [TokenRange(r.range_start, r.range_end) for r in rows]
        check_coverage(ranges)
        return ranges, {r.range_start for r in rows if r.status == "done"}

    def range_started(self, number: int, r: TokenRange, worker: WorkerId) -> None:
        self._execute(
            f"UPDATE {self._ranges} SET status = 'running', started_at = %s, worker = %s"
            " WHERE job = %s AND pass_number = %s AND range_start = %s",
            (_now_ms(), str(worker), self.job, number, r.start),
        )

    def range_done(self, number: int, result: RangeResult) -> None:
        # One row per range, keyed by its start: a range done twice is still counted once.
        self._execute(
            f"UPDATE {self._ranges} SET status = 'done', rows_read = %s, rows_written = %s, rows_rejected = %s,"
            " rows_skipped = %s, bytes = %s, finished_at = %s, duration_ms = %s, worker = %s"
            " WHERE job = %s AND pass_number = %s AND range_start = %s",
            (
                result.counts.read,
                result.counts.written,
                result.counts.rejected,
                result.counts.skipped,
                result.counts.bytes,
                _now_ms(),
                int(result.duration_s * 1000),
                str(result.worker),
                self.job,
                number,
                result.start,
            ),
        )

    def finish_pass(self, clock_skew_s: float) -> None:
        """Mark the pass done: every source row written before it started is now copied.

        The mark is set `clock_skew_s` earlier than the start, as room for clock skew
        between the clients that wrote the rows and this one.
        """
        row = self.job_row()
        started_us = int(row.pass_started_at.replace(tzinfo=UTC).timestamp() * 1_000_000)
        self._execute(
            f"UPDATE {self._jobs} SET pass_status = 'done', pass_finished_at = %s, copied_before_us = %s WHERE job = %s",
            (_now_ms(), started_us - int(clock_skew_s * 1_000_000), self.job),
        )

    def copied_before_us(self) -> int | None:
        """Source rows written before this (µs) were copied by a completed pass; None if none completed."""
        try:
            row = self.job_row()
        except InvalidRequest:  # no state table: nothing was ever migrated here
            return None
        return row.copied_before_us if row is not None else None

    def results(self, number: int) -> list[RangeResult]:
        """The done ranges of a pass, as their rows in the state table hold them."""
        rows = self._execute(
            f"SELECT range_start, range_end, status, rows_read, rows_written, rows_rejected, rows_skipped, bytes,"
            f" duration_ms, worker FROM {self._ranges} WHERE job = %s AND pass_number = %s",
            (self.job, number),
        )
        return [
            RangeResult(
                r.range_start,
                r.range_end,
                Counts(r.rows_read or 0, r.rows_written or 0, r.rows_rejected or 0, r.rows_skipped or 0, r.bytes or 0),
                (r.duration_ms or 0) / 1000,
                WorkerId.parse(r.worker),
            )
            for r in rows
            if r.status == "done"
        ]


def total(results: Iterable[RangeResult]) -> Counts:
    return sum((r.counts for r in results), Counts())


# --- Read-only, for `migrate.py --status` and `--cleanup` (status.py): safe while a run writes ---

TABLES = (JOBS, RANGES)  # every state table: --cleanup drops them when no job is left in them


class StateReader(StateStore):
    """The state of a job as stored, read without changing it."""

    def pass_ranges(self, number: int) -> list[Any]:
        """Every range row of a pass as stored: status, counts, start and end times, worker."""
        return list(
            self._execute(
                f"SELECT range_start, status, rows_read, rows_written, rows_rejected, rows_skipped, started_at,"
                f" finished_at FROM {self._ranges} WHERE job = %s AND pass_number = %s",
                (self.job, number),
            )
        )

    def jobs(self) -> list[str]:
        """The jobs (target tables) with a state in this keyspace."""
        return [r.job for r in self._execute(f"SELECT job FROM {self._jobs}")]
