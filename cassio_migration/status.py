"""What the state tables say about a job (`migrate.py --status`), and their removal after it (`--cleanup`).

Both read the target's state tables only, through their own session: `--status` is safe while
a migration runs, from any machine with the same settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cassandra import InvalidRequest

from .connect import close_session, open_session, schema_change
from .cql import qualified
from .errors import UsageError
from .job import Job, RunOptions
from .lease import Lease, holder
from .report import duration, table
from .state import TABLES, Counts, StateReader


@dataclass
class PassStatus:
    number: int
    ranges: int
    done: int = 0
    running: int = 0
    counts: Counts = Counts()
    first_start: datetime | None = None  # when its first range began, and its last one ended
    last_end: datetime | None = None

    @property
    def left(self) -> int:
        return self.ranges - self.done - self.running

    @property
    def rows_per_s(self) -> float:
        if not (self.first_start and self.last_end and self.done):
            return 0.0
        seconds = (self.last_end - self.first_start).total_seconds()
        return self.counts.read / seconds if seconds > 0 else 0.0

    def eta_s(self, finished: bool) -> float | None:
        """The time left at the pace so far: the rows of the ranges not done, at the rows/s of those done."""
        if finished or not self.done or not self.rows_per_s:
            return None
        return (self.ranges - self.done) * (self.counts.read / self.done) / self.rows_per_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "ranges": self.ranges,
            "ranges_done": self.done,
            "ranges_running": self.running,
            "ranges_left": self.left,
            "rows_read": self.counts.read,
            "rows_written": self.counts.written,
            "rows_rejected": self.counts.rejected,
            "rows_skipped": self.counts.skipped,
            "rows_per_s": round(self.rows_per_s, 1),
        }


@dataclass
class JobStatus:
    target: str
    pass_status: str  # running (or stopped before its end) | done
    started_at: datetime
    finished_at: datetime | None
    passes: list[PassStatus] = field(default_factory=list)
    holder: str | None = None  # the run holding the job's lease now (host:pid:...), if any
    holder_until: datetime | None = None

    @property
    def current(self) -> PassStatus:
        return self.passes[-1]

    @property
    def finished(self) -> bool:
        return self.pass_status == "done"

    def outcome(self) -> str:
        """The last run's outcome, as far as the state tells it."""
        p = self.current
        if self.finished:
            rejected = f", {p.counts.rejected:,} rows rejected (see rejects.jsonl in its run folder)"
            return f"pass {p.number} completed at {_when(self.finished_at)}" + (rejected if p.counts.rejected else "")
        if self.holder is not None:
            since = f"last range done at {_when(p.last_end)}" if p.last_end else f"started at {_when(self.started_at)}"
            return (
                f"pass {p.number} running now: {holder(self.holder)} holds the job"
                f" (lease renewed until {_when(self.holder_until)}); {p.running} ranges running, {since}"
            )
        return f"pass {p.number} not finished: stopped before its end; run migrate.py again to resume"

    def as_dict(self) -> dict[str, Any]:
        eta = self.current.eta_s(self.finished)
        return {
            "target": self.target,
            "pass_number": self.current.number,
            "pass_status": self.pass_status,
            "pass_started_at": _when(self.started_at),
            "pass_finished_at": _when(self.finished_at) if self.finished_at else None,
            "passes": [p.as_dict() for p in self.passes],
            "rows_per_s": round(self.current.rows_per_s, 1),
            "eta_s": round(eta) if eta is not None else None,
            "outcome": self.outcome(),
        }

    def lines(self) -> str:
        p, eta = self.current, self.current.eta_s(self.finished)
        c = p.counts
        earlier = [f"pass {q.number}: {q.counts.read:,} rows read" for q in self.passes[:-1]]
        rows = [
            ("target", self.target),
            ("passes", f"{len(self.passes)}" + (f" ({'; '.join(earlier)})" if earlier else "")),
            (
                f"pass {p.number}",
                ("completed" if self.finished else "not finished") + f", began {_when(self.started_at)}",
            ),
            ("ranges", f"{p.done} done, {p.running} running, {p.left} left, of {p.ranges}"),
            ("rows", f"{c.read:,} read, {c.written:,} written, {c.rejected:,} rejected, {c.skipped:,} skipped"),
            ("rate", f"{p.rows_per_s:,.0f} rows/s"),
            ("ETA", duration(eta) if eta is not None else ("done" if self.finished else "unknown")),
            ("last run", self.outcome()),
        ]
        return table(rows)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "?"


@contextmanager
def _state(job: Job) -> Iterator[tuple[str, StateReader, Any]]:
    """The job's name, its state on the target's cluster (a session of its own) and its job row (None: no state)."""
    session = open_session(job.clusters.target_side)
    try:
        state = StateReader(session, job.target_ks, job.target_table)
        try:
            row = state.job_row()
        except InvalidRequest:  # no state table in the keyspace: nothing ever migrated there
            row = None
        yield f"{job.target_ks}.{job.target_table}", state, row
    finally:
        close_session(session)


def job_status(job: Job) -> JobStatus:
    """What the state tables hold about the job of `job`'s target: its passes, ranges and rows."""
    with _state(job) as (name, state, row):
        if row is None:
            raise UsageError(f"no migration state for {name}: migrate.py has not run for this target yet")
        status = JobStatus(name, row.pass_status, row.pass_started_at, row.pass_finished_at)
        for number in range(1, row.pass_number + 1):
            ranges = state.pass_ranges(number)
            if ranges or number == row.pass_number:  # a restart forgets the passes before it
                status.passes.append(_pass(number, ranges))
        holder = state.lease_holder() if not status.finished else None
        if holder is not None:
            status.holder, status.holder_until = holder
    return status


def _pass(number: int, ranges: list[Any]) -> PassStatus:
    p = PassStatus(number, len(ranges))
    for r in ranges:
        if r.status == "running":
            p.running += 1
        if r.status != "done":
            continue
        p.done += 1
        p.counts += Counts(r.rows_read or 0, r.rows_written or 0, r.rows_rejected or 0, r.rows_skipped or 0)
        if r.started_at and (p.first_start is None or r.started_at < p.first_start):
            p.first_start = r.started_at
        if r.finished_at and (p.last_end is None or r.finished_at > p.last_end):
            p.last_end = r.finished_at
    return p


def cleanup(job: Job) -> str:
    """Remove the finished job's state (the state tables too when no other job is left in them); what was done."""
    with _state(job) as (name, state, row):
        if row is None:
            return f"no migration state for {name}: nothing to clean up"
        if row.pass_status != "done":
            raise UsageError(
                f"pass {row.pass_number} of {name} is not finished (running now, or stopped before its end):"
                " let migrate.py finish it before --cleanup"
            )
        lease = Lease(state.session, job.target_ks, job.target_table, RunOptions().lease_s, state.policy)
        lease.create_table()  # a state made by an older version has none
        with lease:  # no run may start meanwhile
            state.discard()
        others = state.jobs()
        if others:
            return f"removed the migration state of {name} (the state tables stay for: {', '.join(sorted(others))})"
        for t in TABLES:
            schema_change(state.session, f"DROP TABLE IF EXISTS {qualified(job.target_ks, t)}", state.policy)
        return f"removed the migration state of {name}, and the state tables: no other job used them"
