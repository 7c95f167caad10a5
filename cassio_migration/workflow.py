"""The one place that wires a job: plan -> run range tasks -> report."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session

from .connect import Clusters, ConnectionSpec, close_session, open_session
from .copy import BudgetSpent, CopyOptions, ErrorBudget, RangeCopier, RejectSink, replay_rows
from .errors import MigrationError, SchemaError, UsageError
from .executors import PassInfo, RangeWorker, copy_ranges, verify_ranges
from .inflight import RateLimiter
from .legacy import LegacyTable, describe_source
from .plan import estimated_rows, make_plan, range_count, ring_tokens
from .report import Progress, run_folder, table, write_json
from .state import RangeResult, StateStore
from .target import TargetSpec, check_target, prepare_target, target_spec
from .verify import CATEGORIES, RangeVerifier, VerifyCounts


@dataclass(frozen=True)
class JobOptions:
    keyspace: str
    source_table: str
    target_table: str
    target_keyspace: str | None = None
    key_to_text: bool = False
    metadata_indexing: str = "all"
    wrap_key: str | None = None
    partition_id: str | None = None  # vector tables: a clustered target, every row in this partition
    partition_field: str | None = None  # vector tables: a clustered target, the partition from this metadata field
    page_size: int = 200
    concurrency: int = 128
    parallel_ranges: int = 4
    splits: int = 0
    rate_limit: float = 0.0
    retry_seconds: float = 120.0
    runs_dir: str = "runs"
    dry_run: bool = False
    restart: bool = False
    full: bool = False
    quiet: bool = False
    delete_extra: bool = False
    clock_skew_s: float = 300.0
    max_errors: int | None = None  # rejected rows allowed before the run stops
    max_error_ratio: float | None = None  # the same, as a share of the rows read
    workers: int = 0  # > 0: range tasks on that many local worker processes (a local Dask cluster)
    scheduler: str | None = None  # range tasks on the workers of the Dask cluster at this address

    @property
    def target_ks(self) -> str:
        return self.target_keyspace or self.keyspace


@dataclass
class Sessions:
    """A plain session (schema, cassio) and a raw one (vectors as bytes, tuple rows), for the source
    and for the target (the same sessions when the target is on the source's cluster)."""

    plain: Session
    raw: Session
    target_plain: Session
    target_raw: Session

    def close(self) -> None:
        for session in {id(s): s for s in (self.raw, self.plain, self.target_raw, self.target_plain)}.values():
            close_session(session)


def connect(source: ConnectionSpec, target: ConnectionSpec | None = None) -> Sessions:
    plain, raw = open_session(source), open_session(source, raw=True)
    if target is None:
        return Sessions(plain, raw, plain, raw)
    try:
        return Sessions(plain, raw, open_session(target), open_session(target, raw=True))
    except BaseException:
        close_session(raw)
        close_session(plain)
        raise


@dataclass
class MigrateSummary:
    status: str
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    rows_skipped: int = 0
    ranges: int = 0
    ranges_copied: int = 0
    ranges_skipped: int = 0
    pass_number: int = 0
    resumed: bool = False
    elapsed_s: float = 0.0
    plan_s: float = 0.0
    copy_s: float = 0.0
    rejects_file: str | None = None
    run_folder: str | None = None
    error: str | None = None
    pass_rows_rejected: int = 0  # this pass, earlier runs of a resumed pass included
    bytes: int = 0
    read_retries: int = 0
    source: str = ""
    target: str = ""
    dry_run: bool = False
    write_retries: int = 0
    workers: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, read: int, written: int, rejected: int, skipped: int, nbytes: int) -> None:
        self.rows_read += read
        self.rows_written += written
        self.rows_rejected += rejected
        self.rows_skipped += skipped
        self.bytes += nbytes

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.copy_s if self.copy_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["rows_per_s"] = round(self.rows_per_s, 1)
        data["elapsed_s"] = round(self.elapsed_s, 3)
        data["workers"] = {name: {**w, "rows_per_s": round(self._rate(w), 1)} for name, w in self.workers.items()}
        return data

    def _rate(self, worker: dict[str, float]) -> float:
        """A worker's rows per second of the copy's time (the workers' rates add up to the run's)."""
        return worker["rows"] / self.copy_s if self.copy_s > 0 else 0.0

    def lines(self) -> str:
        rows = [
            ("status", self.status + (" (dry run: nothing written)" if self.dry_run else "")),
            ("source -> target", f"{self.source} -> {self.target}"),
            ("pass", f"{self.pass_number}" + (" (resumed)" if self.resumed else "")),
            ("ranges", f"{self.ranges} planned, {self.ranges_copied} copied now, {self.ranges_skipped} done before"),
            ("rows read", f"{self.rows_read:,}"),
            ("rows written", f"{self.rows_written:,}" + (" (would be)" if self.dry_run else "")),
            (
                "rows rejected",
                f"{self.rows_rejected:,}"
                + (
                    f" ({self.pass_rows_rejected:,} in the whole pass)"
                    if self.pass_rows_rejected != self.rows_rejected
                    else ""
                ),
            ),
            ("rows skipped (unchanged)", f"{self.rows_skipped:,}"),
            ("read = written + rejected + skipped", "yes" if self.balanced else "NO"),
            ("plan time", f"{self.plan_s:.1f} s"),
            ("copy time", f"{self.copy_s:.1f} s ({self.rows_per_s:,.0f} rows/s)"),
            ("total time", f"{self.elapsed_s:.1f} s"),
        ]
        for name, w in sorted(self.workers.items()):
            rows.append(
                (f"worker {name}", f"{w['ranges']:,.0f} ranges, {w['rows']:,.0f} rows, {self._rate(w):,.0f} rows/s")
            )
        if self.write_retries or self.read_retries:
            rows.append(
                ("retries", f"{self.write_retries} writes, {self.read_retries} reads (the page was halved at each)")
            )
        if self.rejects_file:
            rows.append(("rejects file", self.rejects_file))
        return table(rows)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_written + self.rows_rejected + self.rows_skipped


def job_context(options: JobOptions, clusters: Clusters, source: Any, target: TargetSpec) -> dict[str, Any]:
    """What makes this job this job: a state with another context is refused. No secrets."""
    return {
        **clusters.context(),
        "source": source.name,
        "target": target.name,
        **target.context(),
        "wrap_key": options.wrap_key,
    }


def migrate(clusters: Clusters, options: JobOptions, echo: Callable[[str], None]) -> MigrateSummary:
    started = time.monotonic()
    sessions = connect(clusters.source, clusters.target)
    try:
        return _migrate(sessions, clusters, options, echo, started)
    finally:
        sessions.close()


def replay(clusters: Clusters, options: JobOptions, rejects_file: str, echo: Callable[[str], None]) -> MigrateSummary:
    """Migrate the rows of a rejects file (after fixing them in it), each with its own write time and TTL."""
    if not os.path.isfile(rejects_file):
        raise UsageError(f"--replay {rejects_file}: no such file")
    started = time.monotonic()
    sessions = connect(clusters.source, clusters.target)
    try:
        source, target, copy_options = _open_job(sessions, options, echo)
        summary = MigrateSummary(
            "running", source=rejects_file, target=clusters.names("", target.name)[1], dry_run=options.dry_run
        )
        summary.plan_s = time.monotonic() - started
        with _run(summary, options, "replay", target.table, sessions, copy_options) as (copier, progress):
            counts = copier.process(
                _chunks(replay_rows(rejects_file, source)), None, threading.Event(), progress.update
            )
            summary.add(*counts)
            summary.pass_rows_rejected = summary.rows_rejected
            copier.budget.check_total(summary.rows_read, summary.rows_rejected)
        summary.elapsed_s = time.monotonic() - started
        return summary
    finally:
        sessions.close()


def _chunks(rows: Iterable[tuple[Any, ...]], size: int = 500) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _describe_job(sessions: Sessions, options: JobOptions) -> tuple[LegacyTable, TargetSpec]:
    """Recognise the source's legacy class; the target it goes to."""
    source = describe_source(sessions.plain, options.keyspace, options.source_table)
    target = target_spec(
        source,
        options.target_ks,
        options.target_table,
        key_to_text=options.key_to_text,
        metadata_indexing=options.metadata_indexing,
        partition_id=options.partition_id,
        partition_field=options.partition_field,
    )
    return source, target


def _copy_options(options: JobOptions, source: LegacyTable, target: TargetSpec) -> CopyOptions:
    return CopyOptions(
        source,
        target,
        options.key_to_text,
        options.wrap_key,
        options.page_size,
        max(1, options.concurrency // options.parallel_ranges),
        options.retry_seconds,
        options.dry_run,
    )


def _open_job(
    sessions: Sessions, options: JobOptions, echo: Callable[[str], None]
) -> tuple[LegacyTable, TargetSpec, CopyOptions]:
    """Recognise the source, check (and unless dry run, create) the target."""
    source, target = _describe_job(sessions, options)
    echo(f"source {source.name}: {source.describe()}")
    prepare_target(sessions.target_plain, target, create=not options.dry_run)
    return source, target, _copy_options(options, source, target)


@contextmanager
def _run(
    summary: MigrateSummary, options: JobOptions, kind: str, job: str, sessions: Sessions, copy_options: CopyOptions
) -> Iterator[tuple[RangeCopier, Progress]]:
    """A run folder with its rejects file and report; the report is written however the run ends."""
    folder = run_folder(options.runs_dir, kind, job)
    summary.run_folder = folder
    rejects_path = os.path.join(folder, "rejects.jsonl")
    progress = Progress(None, "rows", options.quiet)
    copy_started = time.monotonic()
    with open(rejects_path, "w", encoding="utf-8") as rejects_stream:
        budget = ErrorBudget(options.max_errors, options.max_error_ratio)
        copier = RangeCopier(
            sessions.raw,
            sessions.target_raw,
            copy_options,
            RejectSink(rejects_stream, copy_options.source.layout.columns),
            RateLimiter(options.rate_limit),
            budget,
        )
        try:
            yield copier, progress
            summary.status = "done" if not summary.pass_rows_rejected else "done_with_rejects"
        except MigrationError as exc:
            summary.status = "stopped"
            summary.error = str(exc)
            if isinstance(exc, BudgetSpent):
                raise BudgetSpent(
                    f"error budget spent: {exc}; the state is saved: fix the rows (see {rejects_path})"
                    " or raise --max-errors, then run the same command again"
                ) from None
            raise
        finally:
            progress.close()
            summary.copy_s = time.monotonic() - copy_started
            summary.write_retries, summary.read_retries = copier.write_retries, copier.read_retries
            summary.rejects_file = rejects_path if summary.rows_rejected else None
            rejects_stream.close()
            if not summary.rows_rejected:
                os.remove(rejects_path)
            write_json(os.path.join(folder, "report.json"), summary.as_dict())


def _migrate(
    sessions: Sessions, clusters: Clusters, options: JobOptions, echo: Callable[[str], None], started: float
) -> MigrateSummary:
    source, target, copy_options = _open_job(sessions, options, echo)
    planned = make_plan(
        ring_tokens(sessions.plain),
        range_count(
            estimated_rows(sessions.plain, source.keyspace, source.table), options.splits, options.parallel_ranges
        ),
    )
    source_name, target_name = clusters.names(source.name, target.name)
    summary = MigrateSummary("running", source=source_name, target=target_name, dry_run=options.dry_run)
    state: StateStore | None = None
    if options.dry_run:
        ranges, done, number, resumed, skip_before = planned, set(), 0, False, None
    else:
        state = StateStore(sessions.target_plain, target.keyspace, target.table, options.retry_seconds)
        state.create_tables()
        current = state.begin(
            job_context(options, clusters, source, target), planned, restart=options.restart, full=options.full
        )
        ranges, done, number = current.ranges, current.done, current.number
        resumed, skip_before = current.resumed, current.skip_before_us
    summary.pass_number, summary.resumed, summary.ranges = number, resumed, len(ranges)
    summary.ranges_skipped = len(done)
    summary.plan_s = time.monotonic() - started
    echo(
        f"pass {number}: {'resuming, ' if resumed else ''}{len(ranges)} ranges, {len(done)} already done"
        + ("; rows unchanged since the last completed pass are skipped" if skip_before else "")
    )
    with _run(summary, options, "dry-run" if options.dry_run else "migrate", target.table, sessions, copy_options) as (
        copier,
        progress,
    ):
        worker = RangeWorker(
            copier,
            state,
            PassInfo(target.keyspace, target.table, number, skip_before, options.dry_run),
            progress.update,
        )

        def record(result: RangeResult) -> None:
            summary.add(result.rows_read, result.rows_written, result.rows_rejected, result.rows_skipped, result.bytes)
            summary.ranges_copied += 1
            w = summary.workers.setdefault(result.worker.rsplit(":", 1)[0], {"ranges": 0, "rows": 0, "seconds": 0.0})
            w["ranges"] += 1
            w["rows"] += result.rows_read
            w["seconds"] += result.duration_s

        try:
            todo = [r for r in ranges if r.start not in done]
            copy_ranges(todo, worker, record, clusters, options, summary.run_folder or options.runs_dir, echo)
            totals = state.totals(number) if state is not None else summary.as_dict()
            summary.pass_rows_rejected = totals["rows_rejected"]
            copier.budget.check_total(totals["rows_read"], totals["rows_rejected"])
        finally:
            summary.elapsed_s = time.monotonic() - started
    if state is not None:
        state.finish_pass(options.clock_skew_s)
    return summary


@dataclass
class VerifySummary:
    source: str
    target: str
    counts: VerifyCounts
    elapsed_s: float = 0.0

    @property
    def clean(self) -> bool:
        return self.counts.clean

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "clean" if self.clean else "differences",
            "source": self.source,
            "target": self.target,
            "source_rows": self.counts.source_rows,
            **self.counts.counts,
            "examples": {k: v for k, v in self.counts.examples.items() if v},
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def lines(self) -> str:
        labels = {
            "matching": "matching",
            "missing": "missing (in source, not in target)",
            "different": "different",
            "target_newer": "target newer (written by the application: not an error)",
            "deleted_in_target": "deleted in target after the migration (by the application or expired: not an error)",
            "extra": "extra (in target, not in source)",
            "extra_deleted": "extra, written by the migration, deleted now (--delete-extra)",
            "rejected": "rejected by the rules (not expected in target)",
        }
        rows = [
            ("verify", "clean" if self.clean else "DIFFERENCES FOUND"),
            ("source -> target", f"{self.source} -> {self.target}"),
            ("source rows", f"{self.counts.source_rows:,}"),
        ]
        for c in CATEGORIES:
            ex = self.counts.examples[c]
            rows.append((labels[c], f"{self.counts.counts[c]:,}" + (f"  e.g. {', '.join(ex)}" if ex else "")))
        rows.append(("time", f"{self.elapsed_s:.1f} s"))
        return table(rows)


def verify(clusters: Clusters, options: JobOptions, echo: Callable[[str], None]) -> VerifySummary:
    started = time.monotonic()
    sessions = connect(clusters.source, clusters.target)
    try:
        source, target = _describe_job(sessions, options)
        if not check_target(sessions.target_plain, target):
            raise SchemaError(f"target {target.name} does not exist: run migrate.py first")
        copy_options = _copy_options(options, source, target)
        copied_before = StateStore(sessions.target_plain, target.keyspace, target.table).copied_before_us()
        verifier = RangeVerifier(sessions.raw, sessions.target_raw, copy_options, copied_before, options.delete_extra)
        ranges = make_plan(
            ring_tokens(sessions.plain),
            range_count(
                estimated_rows(sessions.plain, source.keyspace, source.table), options.splits, options.parallel_ranges
            ),
        )
        total = VerifyCounts()
        progress = Progress(None, "rows", options.quiet)
        lock = threading.Lock()

        def record(counts: VerifyCounts) -> None:
            with lock:
                total.merge(counts)

        try:
            verify_ranges(ranges, verifier, progress.update, record, clusters, options, echo)
        finally:
            progress.close()
        summary = VerifySummary(*clusters.names(source.name, target.name), total, time.monotonic() - started)
        folder = run_folder(options.runs_dir, "verify", target.table)
        write_json(os.path.join(folder, "report.json"), summary.as_dict())
        return summary
    finally:
        sessions.close()
