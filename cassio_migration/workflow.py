"""The one place that wires a job: open sessions -> recognise the tables -> plan -> run range tasks -> report."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

from .connect import Sessions, open_sessions
from .errors import RESUME_HINT, BudgetSpent, MigrationError, SchemaError, UsageError
from .frameworks import detect, detection_line, preset, sample_rows
from .handoff import open_with
from .job import Job, RunOptions
from .lease import Lease
from .legacy import LegacyTable, describe_source
from .plan import (
    MAX_TOKEN,
    MIN_TOKEN,
    TokenRange,
    estimated_rows,
    make_plan,
    range_count,
    require_murmur3,
    ring_tokens,
    sampled_rows,
)
from .rejects import RUN_FILE, ErrorBudget, merge_rejects, replay_rows, worker_file
from .report import MigrateSummary, Progress, RunLog, VerifySummary, run_folder, write_json
from .retry import RetryPolicy
from .scheduler import Backend, dask_backend, run_all, threads
from .state import Pass, RangeResult, StateStore, WorkerId, total
from .target import TargetSpec, check_target, prepare_target, target_spec
from .tasks import PassInfo, RangeRunner, RunSpec, rejects_stream
from .verify import VerifyCounts

Echo = Callable[[str], None]


def job_context(job: Job, source: LegacyTable, target: TargetSpec) -> dict[str, Any]:
    """What makes this job this job: a state with another context is refused. No secrets."""
    return {
        **job.clusters.context(),
        "source": source.name,
        "target": target.name,
        **target.context(),
        "wrap_key": job.metadata_wrap_key,
        # a framework's preset also rejects the rows its reader cannot take
        **({"framework": job.target_framework} if job.target_framework != "cassio" else {}),
    }


def _tables(sessions: Sessions, job: Job) -> tuple[Job, LegacyTable, TargetSpec]:
    """Recognise the source's legacy class; the job with its framework's preset applied, and its target."""
    source = describe_source(sessions.plain, job.keyspace, job.old_table)
    job = preset(job, source)
    return job, source, target_spec(source, job)


def _open_job(sessions: Sessions, job: Job, options: RunOptions, echo: Echo) -> tuple[Job, LegacyTable, TargetSpec]:
    """Recognise the source (and the framework that wrote it), check (and unless dry run, create) the target."""
    job, source, target = _tables(sessions, job)
    echo(f"source {source.name}: {source.describe()}")
    said = detection_line(source, detect(source, sample_rows(sessions.plain, source)), job.target_framework)
    if said:
        echo(said)
    # cassio's CREATE ... IF NOT EXISTS: safe to try again when a busy node times out.
    create = not options.dry_run
    RetryPolicy(options.retry_seconds).call(
        "creating the target table", lambda: prepare_target(sessions.target_plain, target, create=create)
    )
    return job, source, target


def _plan(sessions: Sessions, source: LegacyTable, options: RunOptions) -> tuple[list[TokenRange], int]:
    """The ranges, and the table's estimated rows (0: no estimate yet), the progress's total."""
    estimate = estimated_rows(sessions.plain, source.keyspace, source.table)
    count = range_count(estimate, options.splits, options.parallel_ranges, options.rows_per_range)
    if not estimate and not options.splits:  # no estimates (yet, or ever: Astra DB may keep none)
        key = source.layout.partition_key
        estimate = sampled_rows(sessions.plain, source.keyspace, source.table, key, RetryPolicy(options.retry_seconds))
        # Only ever more ranges than a table without estimates gets: a large table, small ranges.
        count = max(count, range_count(estimate, 0, options.parallel_ranges, options.rows_per_range))
    return make_plan(ring_tokens(sessions.plain), count), estimate


def _counted(on_result: Callable[[Any], None], progress: Progress) -> Callable[[Any], None]:
    """A range's result handed on, and counted by the progress."""

    def both(result: Any) -> None:
        on_result(result)
        progress.range_done()

    return both


def _run_log(job: Job, echo: Echo) -> RunLog:
    """The run's lines, to run.log as well once its folder exists."""
    return RunLog(echo, job.clusters.secrets_environment().values())


@contextmanager
def _backend(
    spec: RunSpec, sessions: Sessions, progress: Callable[[int], None], echo: Echo
) -> Iterator[Backend[Any, Any]]:
    """Where the run's range tasks go: Dask workers, or threads of this process with its own sessions."""
    options = spec.options
    if options.uses_dask:
        with dask_backend(spec, options, spec.job.clusters, progress, echo) as backend:
            yield backend
        return
    with ExitStack() as stack:
        rejects = stack.enter_context(rejects_stream(spec.folder)) if spec.mode == "copy" else None
        runner = RangeRunner(spec, sessions, rejects, progress)
        yield stack.enter_context(threads(options.parallel_ranges, runner.run, runner.stop.set))


@contextmanager
def _copying(
    summary: MigrateSummary, options: RunOptions, log: RunLog, rows: int = 0, ranges: int = 0
) -> Iterator[Progress]:
    """The copy part of a run: its status, rejects file and report, written however the run ends."""
    assert summary.run_folder is not None
    folder = summary.run_folder
    log.open(folder)
    progress = Progress(rows, "rows", options.quiet, ranges=ranges, every_s=options.progress_seconds, log=log)
    started = time.monotonic()
    try:
        yield progress
        summary.status = "done" if not summary.pass_rows_rejected else "done_with_rejects"
    except MigrationError as exc:
        summary.status = "stopped"
        summary.error = str(exc)
        log.record(f"stopped: {exc}")  # the log tells how the run ended, as its report does
        if isinstance(exc, BudgetSpent):
            raise BudgetSpent(
                f"error budget spent: {exc}; fix the rows (see {os.path.join(folder, RUN_FILE)})"
                f" or raise --max-errors; {RESUME_HINT}"
            ) from None
        raise
    finally:
        progress.close()
        summary.copy_s = time.monotonic() - started
        summary.rejects_file = _gather_rejects(folder, summary.results, log)
        write_json(os.path.join(folder, "report.json"), summary.as_dict())


def _gather_rejects(folder: str, results: Iterable[RangeResult], echo: Echo) -> str | None:
    """Merge the processes' rejects files into the run's; its path, if it holds any row."""
    merged = set(merge_rejects(folder))
    rejecting = {r.worker for r in results if r.counts.rejected}
    for worker in sorted({WorkerId(w.host, w.pid) for w in rejecting}):
        part = worker_file(worker.host, worker.pid)
        if part not in merged:
            echo(f"rows rejected on worker {worker.process} are in {os.path.join(folder, part)} on that host")
    path = os.path.join(folder, RUN_FILE)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        os.remove(path)
    return path if os.path.isfile(path) else None


def _require_murmur3(sessions: Sessions) -> None:
    require_murmur3(sessions.plain, "source")
    if sessions.target_plain is not sessions.plain:
        require_murmur3(sessions.target_plain, "target")


def migrate(job: Job, options: RunOptions, echo: Echo) -> MigrateSummary:
    """Copy the source into the target: resume the running pass, or start a new one."""
    started = time.monotonic()
    log = _run_log(job, echo)
    with open_sessions(job.clusters) as sessions:
        _require_murmur3(sessions)
        job = replace(job, clusters=sessions.clusters)  # a bundle fetched by database id goes to the workers
        job, source, target = _open_job(sessions, job, options, log)
        planned, estimate = _plan(sessions, source, options)
        summary = MigrateSummary("running", *job.clusters.names(source.name, target.name), dry_run=options.dry_run)
        summary.open_with = open_with(job, target)
        with ExitStack() as held:
            state: StateStore | None = None
            current: Pass | None = None
            lease: Lease | None = None
            ranges, done = planned, set[int]()
            if not options.dry_run:
                policy = RetryPolicy(options.retry_seconds)
                state = StateStore(sessions.target_plain, target.keyspace, target.table, policy)
                state.create_tables()
                lease = held.enter_context(_lease(sessions, target, options))
                current = state.begin(job_context(job, source, target), planned, restart=options.restart)
                ranges, done = current.ranges, current.done
                summary.pass_number, summary.resumed = current.number, current.resumed
            pass_info = PassInfo(current.number, current.known_pass) if current is not None else None
            summary.ranges, summary.ranges_skipped = len(ranges), len(done)
            summary.plan_s = time.monotonic() - started
            known = current is not None and current.known_pass is not None and not options.full
            log(
                f"pass {summary.pass_number}: {'resuming, ' if summary.resumed else ''}{len(ranges)} ranges,"
                f" {len(done)} already done"
                + ("; rows copied by an earlier pass and unchanged since are skipped" if known else "")
            )
            summary.run_folder = run_folder(options.runs_dir, "dry-run" if options.dry_run else "migrate", target.table)
            spec = RunSpec(uuid.uuid4().hex, "copy", job, options, source, target, summary.run_folder, pass_info)
            try:
                todo = [r for r in ranges if r.start not in done]
                share = estimate * len(todo) // len(ranges) if ranges else 0
                with _copying(summary, options, log, share, len(todo)) as progress:
                    with _backend(spec, sessions, progress.update, log) as backend:
                        check = lease.check if lease is not None else lambda: None
                        run_all(todo, backend, _counted(summary.results.append, progress), check)
                    if state is not None and pass_info is not None:
                        summary.pass_counts = total(state.results(pass_info.number))
                    whole = summary.pass_counts or summary.counts
                    ErrorBudget(options.max_errors).check_total(whole.read, whole.rejected)
            finally:
                summary.elapsed_s = time.monotonic() - started
            if state is not None and current is not None and lease is not None:
                lease.check()
                state.finish_pass(current)
    return summary


def _lease(sessions: Sessions, target: TargetSpec, options: RunOptions) -> Lease:
    """The job's lease: one run of a job at a time (taken on entering, let go on leaving)."""
    lease = Lease(
        sessions.target_plain, target.keyspace, target.table, options.lease_s, RetryPolicy(options.retry_seconds)
    )
    lease.create_table()
    return lease


def replay(job: Job, options: RunOptions, rejects_file: str, echo: Echo) -> MigrateSummary:
    """Migrate the rows of a rejects file (after fixing them in it), each with its own write time and TTL."""
    if not os.path.isfile(rejects_file):
        raise UsageError(f"--replay {rejects_file}: no such file")
    started = time.monotonic()
    log = _run_log(job, echo)
    with open_sessions(job.clusters) as sessions:
        job, source, target = _open_job(sessions, job, options, log)
        summary = MigrateSummary(
            "running", rejects_file, job.clusters.names("", target.name)[1], dry_run=options.dry_run
        )
        summary.open_with = open_with(job, target)
        summary.plan_s = time.monotonic() - started
        summary.run_folder = run_folder(options.runs_dir, "replay", target.table)
        spec = RunSpec(uuid.uuid4().hex, "copy", job, options, source, target, summary.run_folder)
        try:
            with _copying(summary, options, log) as progress, rejects_stream(spec.folder) as rejects:
                runner = RangeRunner(spec, sessions, rejects, progress.update)
                assert runner.copier is not None
                copy_started = time.monotonic()
                rows = _chunks(replay_rows(rejects_file, source))
                counts, retries = runner.copier.process(rows, threading.Event(), progress.update)
                elapsed = time.monotonic() - copy_started
                summary.results.append(
                    RangeResult(MIN_TOKEN, MAX_TOKEN, counts, elapsed, WorkerId.current(), write_retries=retries)
                )
                ErrorBudget(options.max_errors).check_total(counts.read, counts.rejected)
        finally:
            summary.elapsed_s = time.monotonic() - started
    return summary


def _chunks(rows: Iterable[tuple[Any, ...]], size: int = 500) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def verify(job: Job, options: RunOptions, echo: Echo) -> VerifySummary:
    """Compare every source row with its target row as cassio 0.1.x reads it."""
    started = time.monotonic()
    with open_sessions(job.clusters) as sessions:
        _require_murmur3(sessions)
        job = replace(job, clusters=sessions.clusters)  # a bundle fetched by database id goes to the workers
        job, source, target = _tables(sessions, job)
        try:
            exists = check_target(sessions.target_plain, target)
        except SchemaError as exc:
            raise SchemaError(f"{exc} (--verify takes the flags the copy ran with: --for, --key-type, ...)") from None
        if not exists:
            raise SchemaError(f"target {target.name} does not exist: run migrate.py first")
        state = StateStore(sessions.target_plain, target.keyspace, target.table, RetryPolicy(options.retry_seconds))
        with ExitStack() as held:
            if options.delete_extra and not options.dry_run:
                held.enter_context(_lease(sessions, target, options))
            # The ranges of the copy, so that each range's record of what it copied lines up.
            found = state.records()
            planned, estimate = _plan(sessions, source, options)
            ranges, records = found if found is not None else (planned, None)
            folder = run_folder(options.runs_dir, "verify", target.table)
            log = _run_log(job, echo)
            log.open(folder)
            spec = RunSpec(uuid.uuid4().hex, "verify", job, options, source, target, folder, records=records)
            counts = VerifyCounts()
            progress = Progress(
                estimate, "rows", options.quiet, ranges=len(ranges), every_s=options.progress_seconds, log=log
            )
            try:
                with _backend(spec, sessions, progress.update, log) as backend:
                    run_all(ranges, backend, _counted(counts.merge, progress))
            finally:
                progress.close()
        summary = VerifySummary(*job.clusters.names(source.name, target.name), counts, time.monotonic() - started)
        summary.dry_run = options.dry_run
        summary.open_with = open_with(job, target)
        summary.run_folder = folder
        write_json(os.path.join(folder, "report.json"), summary.as_dict())
        return summary
