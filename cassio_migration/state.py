"""The job's state in the target keyspace: its context, its pass, and one row per range.

A pass is one scan of the whole source. The plan of a pass is stored before any copy;
a re-run resumes the running pass (done ranges are skipped), or, when the last pass
completed, starts a new one (the re-run after the cutover) over the same ranges, so that
each range's record of what was copied (digest.py) lines up with the pass before.

The job's row changes only through lightweight transactions that name the pass they
expect, and a restart starts a new pass number rather than reusing the old rows' keys: a
run that lost the race, or whose clock is behind another machine's, can never overwrite
a newer pass.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from .cql import qualified
from .digest import Digest
from .errors import RESUME_HINT, FatalError, UsageError
from .inflight import PaceReport
from .lease import LEASES
from .plan import TokenRange, check_coverage
from .retry import RETRYABLE, RetryPolicy

DIGESTS = "cassio_migration_digests"
JOBS = "cassio_migration_jobs"
PLAN_WRITES_IN_FLIGHT = 8
RANGES = "cassio_migration_ranges"


@dataclass
class Pass:
    number: int
    resumed: bool
    ranges: list[TokenRange]
    done: set[int]  # range starts finished in this pass
    known_pass: int | None  # the last completed pass: its record says what was copied before (None: nothing)


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
    # How often a page or a write was tried again, the bytes read and the process's write window when
    # the range ended: reported by the run, not kept in the state.
    read_retries: int = 0
    write_retries: int = 0
    bytes_read: int = 0  # the values of the whole rows read (text, vectors): a re-run reads few of them
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
        self.keyspace = keyspace
        self.job = job
        self.policy = policy
        self._jobs = qualified(keyspace, JOBS)
        self._ranges = qualified(keyspace, RANGES)
        self._digests = qualified(keyspace, DIGESTS)

    def create_tables(self) -> None:
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._jobs} (job text PRIMARY KEY, context text, pass_number int,"
            " pass_status text, pass_started_at timestamp, pass_finished_at timestamp, ranges int,"
            " known_pass int)"
        )
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._ranges} (job text, pass_number int, range_start bigint,"
            " range_end bigint, status text, rows_read bigint, rows_written bigint, rows_rejected bigint,"
            " rows_skipped bigint, bytes bigint, started_at timestamp, finished_at timestamp,"
            " duration_ms bigint, worker text, PRIMARY KEY ((job, pass_number), range_start))"
        )
        # One partition per range and pass: a range's record is read and replaced whole.
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._digests} (job text, pass_number int, range_start bigint,"
            " chunk int, hashes blob, PRIMARY KEY ((job, pass_number, range_start), chunk))"
        )
        self._add_missing_column(JOBS, "known_pass", "int")

    def _add_missing_column(self, table: str, column: str, cql_type: str) -> None:
        """A state table made by an earlier version of the tool gets the column it lacks."""
        found = self._execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
            (self.keyspace, table),
        )
        if column not in {r.column_name for r in found}:
            self._execute(f"ALTER TABLE {qualified(self.keyspace, table)} ADD {column} {cql_type}")

    def _execute(self, query: Any, params: Any = None) -> Any:
        """Execute, retrying a node that is slow or away, as the copy's own reads and writes do."""
        return self.policy.call("recording progress in the state table", lambda: self.session.execute(query, params))

    def _execute_many(self, statement: Any, params: list[tuple[Any, ...]], what: str) -> None:
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
                    raise FatalError(f"{what} failed: {error}; {RESUME_HINT}")
                raise error

        self.policy.call(what, some_more)

    def _prepare(self, cql: str) -> Any:
        return self.policy.call("preparing a state query", lambda: self.session.prepare(cql))

    def job_row(self) -> Any:
        return self._execute(f"SELECT * FROM {self._jobs} WHERE job = %s", (self.job,)).one()

    def _changed(self, result: Any, what: str) -> None:
        """A job row's lightweight transaction must have applied: else another run changed the job meanwhile."""
        if not result.was_applied:
            raise FatalError(f"another run of this job {what} meanwhile: this run stopped; {RESUME_HINT}")

    def check_context(self, context: dict[str, Any], restart: bool) -> Any:
        """The stored job row, refused if it belongs to a different job (unless restart)."""
        row = self.job_row()
        if row is None or restart:
            return row
        stored = json.loads(row.context)
        if stored == context:
            return row
        differences = ", ".join(context_differences(stored, context))
        raise UsageError(
            f"the state for target {self.job} belongs to a different job ({differences}):"
            " run with --restart to discard it, or choose another TARGET_TABLE"
        )

    def begin(self, context: dict[str, Any], plan: Sequence[TokenRange], *, restart: bool) -> Pass:
        """Resume the running pass, or start a new pass: over the ranges of the last completed pass, else `plan`."""
        row = self.check_context(context, restart)
        if row is not None and row.pass_status == "running" and not restart:
            ranges, done = self.load(row.pass_number)
            return Pass(row.pass_number, True, ranges, done, row.known_pass)
        known = row.pass_number if row is not None and row.pass_status == "done" and not restart else None
        ranges = self.load(known)[0] if known is not None else sorted(plan)
        check_coverage(ranges)
        number = (row.pass_number if row is not None else 0) + 1
        now = _now_ms()
        text = json.dumps(context, sort_keys=True)
        if row is None:
            claimed = self._execute(
                f"INSERT INTO {self._jobs} (job, context, pass_number, pass_status, pass_started_at, ranges,"
                " known_pass) VALUES (%s, %s, %s, 'running', %s, %s, %s) IF NOT EXISTS",
                (self.job, text, number, now, len(ranges), known),
            )
        else:
            claimed = self._execute(
                f"UPDATE {self._jobs} SET context = %s, pass_number = %s, pass_status = 'running',"
                " pass_started_at = %s, pass_finished_at = null, ranges = %s, known_pass = %s"
                " WHERE job = %s IF pass_number = %s",
                (text, number, now, len(ranges), known, self.job, row.pass_number),
            )
        self._changed(claimed, f"started pass {number}")
        insert = self._prepare(
            f"INSERT INTO {self._ranges} (job, pass_number, range_start, range_end, status) VALUES (?, ?, ?, ?, 'pending')"
        )
        self._execute_many(insert, [(self.job, number, r.start, r.end) for r in ranges], "storing the plan")
        if restart and row is not None:
            self.forget(range(1, row.pass_number + 1), ranges, rows=True)
        return Pass(number, False, ranges, set(), known)

    def load(self, number: int) -> tuple[list[TokenRange], set[int]]:
        rows = list(
            self._execute(
                f"SELECT range_start, range_end, status FROM {self._ranges} WHERE job = %s AND pass_number = %s",
                (self.job, number),
            )
        )
        ranges = [TokenRange(r.range_start, r.range_end) for r in rows]
        check_coverage(ranges)
        return sorted(ranges), {r.range_start for r in rows if r.status == "done"}

    def forget(self, numbers: Iterable[int], ranges: Sequence[TokenRange], *, rows: bool) -> None:
        """Delete the records of these passes (those a later pass holds), and with `rows` their range rows (a restart)."""
        for number in numbers:
            starts = {r.start for r in ranges}
            for r in self._execute(
                f"SELECT range_start FROM {self._ranges} WHERE job = %s AND pass_number = %s", (self.job, number)
            ):
                starts.add(r.range_start)
            delete = self._prepare(f"DELETE FROM {self._digests} WHERE job = ? AND pass_number = ? AND range_start = ?")
            self._execute_many(delete, [(self.job, number, s) for s in starts], "deleting an old record")
            if rows:
                self._execute(f"DELETE FROM {self._ranges} WHERE job = %s AND pass_number = %s", (self.job, number))

    def discard(self) -> None:
        """Forget the job: every pass's range rows and records, then its row (the caller holds the lease)."""
        row = self.job_row()
        if row is None:
            return
        self.forget(range(1, row.pass_number + 1), (), rows=True)
        gone = self._execute(
            f"DELETE FROM {self._jobs} WHERE job = %s IF pass_number = %s", (self.job, row.pass_number)
        )
        self._changed(gone, f"changed pass {row.pass_number}")

    def range_started(self, number: int, r: TokenRange, worker: WorkerId) -> None:
        self._execute(
            f"UPDATE {self._ranges} SET status = 'running', started_at = %s, worker = %s"
            " WHERE job = %s AND pass_number = %s AND range_start = %s",
            (_now_ms(), str(worker), self.job, number, r.start),
        )

    def digest(self, number: int, start: int) -> Digest:
        """What a range of a pass copied (empty if it recorded nothing)."""
        rows = self._execute(
            f"SELECT hashes FROM {self._digests} WHERE job = %s AND pass_number = %s AND range_start = %s",
            (self.job, number, start),
        )
        return Digest.from_chunks(r.hashes for r in rows)

    def range_done(self, number: int, result: RangeResult, digest: Digest) -> None:
        """The range's record, then its row: a range is done only once its record is stored."""
        key = (self.job, number, result.start)
        self._execute(f"DELETE FROM {self._digests} WHERE job = %s AND pass_number = %s AND range_start = %s", key)
        insert = self._prepare(
            f"INSERT INTO {self._digests} (job, pass_number, range_start, chunk, hashes) VALUES (?, ?, ?, ?, ?)"
        )
        self._execute_many(insert, [(*key, i, c) for i, c in enumerate(digest.chunks())], "storing what was copied")
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
                *key,
            ),
        )

    def finish_pass(self, current: Pass) -> None:
        """Mark this run's pass done (refused if another run changed the job meanwhile); drop the records it holds."""
        done = self._execute(
            f"UPDATE {self._jobs} SET pass_status = 'done', pass_finished_at = %s WHERE job = %s"
            " IF pass_number = %s AND pass_status = 'running'",
            (_now_ms(), self.job, current.number),
        )
        # Already done under this pass's number: a run killed after its last range (its end of pass still
        # in flight when the lease was taken over) finished it; no other run can have started since.
        found = None if done.was_applied else done.one()
        seen = (getattr(found, "pass_number", None), getattr(found, "pass_status", None))  # none: no job row
        if found is None or seen != (current.number, "done"):
            self._changed(done, f"changed pass {current.number}")
        if current.known_pass is not None:
            # Each range's record of this pass holds the one before: the older one is no longer read.
            self.forget([current.known_pass], current.ranges, rows=False)

    def records(self) -> tuple[list[TokenRange], dict[int, int]] | None:
        """The ranges of the job's latest pass, and for each range the pass whose record says what was
        copied there so far (the latest pass if the range is done in it, else the last completed pass).
        None if the job has no state, or no range ever completed."""
        try:
            row = self.job_row()
        except InvalidRequest:  # no state table: nothing was ever migrated here
            return None
        if row is None:
            return None
        ranges, done = self.load(row.pass_number)
        records = {r.start: row.pass_number for r in ranges if r.start in done}
        if row.known_pass is not None:
            records = {r.start: records.get(r.start, row.known_pass) for r in ranges}
        return (ranges, records) if records else None

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

TABLES = (JOBS, RANGES, DIGESTS, LEASES)  # every state table: --cleanup drops them when no job is left in them


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

    def lease_holder(self) -> tuple[str, Any] | None:
        """Who holds the job's lease now, and until when (None: no run holds it)."""
        try:
            row = self._execute(
                f"SELECT owner, expires_at FROM {qualified(self.keyspace, LEASES)} WHERE job = %s", (self.job,)
            ).one()
        except InvalidRequest:  # no lease table: no run of this version ever held one
            return None
        return (row.owner, row.expires_at) if row is not None else None

    def jobs(self) -> list[str]:
        """The jobs (target tables) with a state in this keyspace."""
        return [r.job for r in self._execute(f"SELECT job FROM {self._jobs}")]
