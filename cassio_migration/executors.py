"""Run range tasks: a range task is plain data plus one function, so it can run anywhere.

The in-process executor runs them on threads of this process. The Dask executor runs
them on worker processes: a local cluster of N processes (`--workers N`) or the workers
of an existing Dask cluster (`--scheduler ADDRESS`): one code path for both. This process
keeps the plan and the progress bar; a worker runs range tasks, and a range task records
its own range in the state table, so the executor only has to run it and pass results on.
A task carries no secret: workers read credentials from their own environment.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from .connect import Clusters
from .copy import BudgetSpent, CopyOptions, ErrorBudget, RangeCopier, RejectSink, worker_name
from .errors import CredentialsError, FatalError, Interrupted, MigrationError, SchemaError, UsageError
from .inflight import RESUME_HINT, RateLimiter
from .plan import TokenRange
from .state import RangeResult, StateStore
from .verify import RangeVerifier, VerifyCounts

if TYPE_CHECKING:
    from .workflow import JobOptions, Sessions

SCHEDULER_TIMEOUT_S = 8.0  # a --scheduler address that does not answer fails within this
WORKERS_TIMEOUT_S = 20.0  # how long a scheduler with no worker yet is given to get one
TASK_RETRIES = 2  # a task that raised an unexpected error is tried again (a dead worker's task is rescheduled anyway)
INTERRUPTED = "interrupted: the state is saved; run the same command again to resume"


@dataclass(frozen=True)
class PassInfo:
    """Which pass of which job a range task belongs to (None for a dry run: no state)."""

    state_keyspace: str
    job: str
    number: int
    skip_before_us: int | None
    dry_run: bool = False


class RangeWorker:
    """Runs range tasks with one process's copier, recording each in the state table."""

    def __init__(
        self,
        copier: RangeCopier,
        state: StateStore | None,
        info: PassInfo,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.copier = copier
        self.state = state
        self.info = info
        self.progress = progress

    def run(self, r: TokenRange, stop: threading.Event) -> RangeResult | None:
        if self.state is not None:
            self.state.range_started(self.info.number, r, worker_name())
        result = self.copier.copy(r, self.info.skip_before_us, stop, self.progress)
        if result is not None and self.state is not None:
            # One row per range, keyed by its start: a range run twice is still counted once.
            self.state.range_done(self.info.number, result)
        return result


T = TypeVar("T")


def run_in_threads(
    ranges: Iterable[TokenRange],
    task: Callable[[TokenRange, threading.Event], T | None],
    parallel: int,
    on_result: Callable[[T], None],
) -> None:
    """Run range tasks on a thread pool; Ctrl-C stops them cleanly and raises Interrupted."""
    stop = threading.Event()
    pending = list(ranges)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="range") as pool:
        futures: set[Future[T | None]] = set()
        try:
            while pending or futures:
                while pending and len(futures) < parallel:
                    futures.add(pool.submit(task, pending.pop(0), stop))
                done, futures = wait(futures, return_when=FIRST_EXCEPTION)
                for f in done:
                    result = f.result()
                    if result is not None:
                        on_result(result)
        except KeyboardInterrupt:
            stop.set()
            wait(futures)
            raise Interrupted(INTERRUPTED) from None
        except BaseException:
            stop.set()
            wait(futures)
            raise


# --- range tasks as plain data --------------------------------------------------------------------


@dataclass(frozen=True)
class RangeTask:
    """One range to copy, with everything a worker process needs and no secret."""

    job_key: str  # this run: a worker builds its sessions and copier once per job key
    clusters: Clusters  # secrets replaced by a marker: the worker fills them from its environment
    copy: CopyOptions
    info: PassInfo
    range: TokenRange
    rate_limit: float  # rows/s for the worker process: its share of --rate-limit (0 = none)
    max_errors: int | None
    max_error_ratio: float | None
    run_folder: str  # the worker writes its rejects to <run_folder>/rejects-<host>-<pid>.jsonl


@dataclass(frozen=True)
class VerifyTask:
    """One range to verify, with everything a worker process needs and no secret."""

    job_key: str
    clusters: Clusters
    copy: CopyOptions
    range: TokenRange
    copied_before_us: int | None
    delete_extra: bool


@dataclass(frozen=True)
class TaskFailure:
    """A MigrationError raised on a worker, as plain data (not retried: the task already retried)."""

    kind: str
    message: str
    worker: str

    def error(self) -> MigrationError:
        known = (FatalError, UsageError, SchemaError, CredentialsError, BudgetSpent, Interrupted)
        cls = next((c for c in known if c.__name__ == self.kind), FatalError)
        return cls(f"on worker {self.worker}: {self.message}")


# --- the worker side: one job context per process and job key ---------------------------------------


@dataclass
class _Job:
    sessions: Sessions
    run: Callable[[Any, threading.Event], Any]
    stream: TextIO | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    running: int = 0
    released: bool = False

    def close(self) -> None:
        self.sessions.close()
        if self.stream is not None:
            self.stream.close()


_JOBS: dict[str, _Job] = {}
_RELEASED: set[str] = set()
_BUILDING: dict[str, threading.Lock] = {}
_JOBS_LOCK = threading.Lock()


def _progress_to_client(job_key: str) -> Callable[[int], None] | None:
    """Rows done, sent to the client's progress bar as Dask events (None outside a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    topic = progress_topic(job_key)
    return lambda n: worker.log_event(topic, n)


def progress_topic(job_key: str) -> str:
    return f"cassio-migration-progress-{job_key}"


def _copy_job(task: RangeTask) -> _Job:
    from .workflow import connect

    clusters = task.clusters.with_secrets_from_environment()
    sessions = connect(clusters.source, clusters.target)
    stream: TextIO | None = None
    try:
        os.makedirs(task.run_folder, exist_ok=True)
        path = os.path.join(task.run_folder, f"rejects-{socket.gethostname()}-{os.getpid()}.jsonl")
        # A line at a time: a killed worker loses no finished line. Closed when the job is released.
        stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        copier = RangeCopier(
            sessions.raw,
            sessions.target_raw,
            task.copy,
            RejectSink(stream, task.copy.source.layout.columns),
            RateLimiter(task.rate_limit),
            ErrorBudget(task.max_errors, task.max_error_ratio),
        )
        state = (
            None
            if task.info.dry_run
            else StateStore(sessions.target_plain, task.info.state_keyspace, task.info.job, task.copy.retry_seconds)
        )
        worker = RangeWorker(copier, state, task.info, _progress_to_client(task.job_key))
    except BaseException:
        sessions.close()
        if stream is not None:
            stream.close()
        raise
    return _Job(sessions, worker.run, stream)


def _verify_job(task: VerifyTask) -> _Job:
    from .workflow import connect

    clusters = task.clusters.with_secrets_from_environment()
    sessions = connect(clusters.source, clusters.target)
    try:
        verifier = RangeVerifier(sessions.raw, sessions.target_raw, task.copy, task.copied_before_us, task.delete_extra)
    except BaseException:
        sessions.close()
        raise
    progress = _progress_to_client(task.job_key)
    return _Job(sessions, lambda r, stop: verifier.verify(r, stop, progress))


def _acquire(job_key: str, build: Callable[[], _Job]) -> _Job | None:
    """The process's context of this job, built by the first of its tasks; None once the run is over.

    Built under a lock of its own, so that the process lock is never held while connecting.
    """
    with _JOBS_LOCK:
        if job_key in _RELEASED:
            return None  # the run is over (finished, failed or interrupted)
        building = _BUILDING.setdefault(job_key, threading.Lock())
    with building:
        with _JOBS_LOCK:
            if job_key in _RELEASED:
                return None
            job = _JOBS.get(job_key)
            if job is not None:
                job.running += 1
                return job
        built = build()
        with _JOBS_LOCK:
            if job_key not in _RELEASED:
                built.running += 1
                _JOBS[job_key] = built
                return built
        built.close()
        return None


def _run_task(job_key: str, build: Callable[[], _Job], r: TokenRange) -> Any:
    try:
        job = _acquire(job_key, build)
        if job is None:
            return None
        try:
            return job.run(r, job.stop)
        finally:
            with _JOBS_LOCK:
                job.running -= 1
                last = job.released and not job.running
            if last:
                job.close()
    except MigrationError as exc:
        return TaskFailure(type(exc).__name__, str(exc), worker_name().rsplit(":", 1)[0])


def run_range_task(task: RangeTask) -> RangeResult | TaskFailure | None:
    """Copy one range on a worker (a module-level function: Dask pickles it by name)."""
    result: RangeResult | TaskFailure | None = _run_task(task.job_key, lambda: _copy_job(task), task.range)
    return result


def verify_range_task(task: VerifyTask) -> VerifyCounts | TaskFailure | None:
    """Verify one range on a worker."""
    result: VerifyCounts | TaskFailure | None = _run_task(task.job_key, lambda: _verify_job(task), task.range)
    return result


def release_job(job_key: str) -> None:
    """The run is over: stop its tasks at their next page, close its sessions and rejects file."""
    with _JOBS_LOCK:
        _RELEASED.add(job_key)
        _BUILDING.pop(job_key, None)
        job = _JOBS.pop(job_key, None)
        if job is None:
            return
        job.stop.set()
        job.released = True
        idle = not job.running
    if idle:
        job.close()


def merge_rejects(run_folder: str) -> list[str]:
    """Append the workers' rejects files to the run's rejects.jsonl (each row once) and remove them.

    Returns the names of the worker files merged. A line a killed worker left unfinished
    is dropped: its range was copied again elsewhere, and rejected its rows again.
    """
    parts = sorted(glob.glob(os.path.join(glob.escape(run_folder), "rejects-*.jsonl")))
    if not parts:
        return []
    seen: set[str] = set()
    with open(os.path.join(run_folder, "rejects.jsonl"), "a", encoding="utf-8") as out:
        for part in parts:
            with open(part, encoding="utf-8") as f:
                for line in f:
                    if not line.endswith("\n"):
                        continue
                    try:
                        key = str(json.loads(line)["key"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if key not in seen:
                        seen.add(key)
                        out.write(line)
            os.remove(part)
    return [os.path.basename(p) for p in parts]


# --- the client side ----------------------------------------------------------------------------------


def uses_dask(options: JobOptions) -> bool:
    return bool(options.workers or options.scheduler)


def copy_ranges(
    ranges: Sequence[TokenRange],
    worker: RangeWorker,
    on_result: Callable[[RangeResult], None],
    clusters: Clusters,
    options: JobOptions,
    run_folder: str,
    echo: Callable[[str], None],
) -> None:
    """Copy the ranges: on threads of this process, or as range tasks on Dask workers."""
    if not uses_dask(options):
        run_in_threads(ranges, worker.run, options.parallel_ranges, on_result)
        return
    key = uuid.uuid4().hex
    public = clusters.without_secrets()
    rejecting: set[str] = set()

    def make(r: TokenRange, processes: int) -> RangeTask:
        return RangeTask(
            key,
            public,
            worker.copier.options,
            worker.info,
            r,
            options.rate_limit / processes,
            options.max_errors,
            options.max_error_ratio,
            run_folder,
        )

    def record(result: RangeResult) -> None:
        if result.rows_rejected:
            rejecting.add(result.worker.rsplit(":", 1)[0])
        on_result(result)

    try:
        _run_on_dask(key, ranges, make, run_range_task, record, worker.progress, clusters, options, echo)
    finally:
        merged = set(merge_rejects(run_folder))
        for name in sorted(rejecting):
            host, pid = name.rsplit(":", 1)
            part = f"rejects-{host}-{pid}.jsonl"
            if part not in merged:
                echo(f"rows rejected on worker {name} are in {os.path.join(run_folder, part)} on that host")


def verify_ranges(
    ranges: Sequence[TokenRange],
    verifier: RangeVerifier,
    progress: Callable[[int], None],
    on_result: Callable[[VerifyCounts], None],
    clusters: Clusters,
    options: JobOptions,
    echo: Callable[[str], None],
) -> None:
    """Verify the ranges: on threads of this process, or as range tasks on Dask workers."""
    if not uses_dask(options):
        run_in_threads(ranges, lambda r, stop: verifier.verify(r, stop, progress), options.parallel_ranges, on_result)
        return
    key = uuid.uuid4().hex
    public = clusters.without_secrets()

    def make(r: TokenRange, processes: int) -> VerifyTask:
        return VerifyTask(key, public, verifier.options, r, verifier.copied_before_us, verifier.delete_extra)

    _run_on_dask(key, ranges, make, verify_range_task, on_result, progress, clusters, options, echo)


def _run_on_dask(
    key: str,
    ranges: Sequence[TokenRange],
    make: Callable[[TokenRange, int], Any],
    function: Callable[[Any], Any],
    on_result: Callable[[Any], None],
    progress: Callable[[int], None] | None,
    clusters: Clusters,
    options: JobOptions,
    echo: Callable[[str], None],
) -> None:
    """Submit one task per range, as many at once as the workers have threads; results in order of arrival."""
    if not ranges:
        return
    from distributed import as_completed

    with _dask_client(options, clusters, echo) as (client, processes, threads):
        if progress is not None:
            client.subscribe_topic(progress_topic(key), lambda event: progress(event[1]))
        pending = deque(ranges)
        running: dict[Any, TokenRange] = {}
        arrived = as_completed()

        def submit() -> None:
            r = pending.popleft()
            future = client.submit(
                function, make(r, processes), key=f"range-{r.start}-{key}", retries=TASK_RETRIES, pure=False
            )
            running[future] = r
            arrived.add(future)

        try:
            while pending and len(running) < threads:
                submit()
            for future in arrived:
                result = _result(future, running.pop(future))
                if isinstance(result, TaskFailure):
                    raise result.error()
                if result is not None:
                    on_result(result)
                if pending:
                    submit()
        except KeyboardInterrupt:
            _abandon(client, key, running)
            raise Interrupted(INTERRUPTED) from None
        except BaseException:
            _abandon(client, key, running)
            raise
        else:
            client.run(release_job, key, on_error="ignore")
        finally:
            if progress is not None:
                with suppress(Exception):  # the scheduler may be gone
                    client.unsubscribe_topic(progress_topic(key))


def _result(future: Any, r: TokenRange) -> Any:
    from distributed import KilledWorker
    from distributed.utils import CancelledError

    try:
        return future.result()
    except KilledWorker:
        raise FatalError(
            f"range ({r.start}, {r.end}] was running on a worker that died, again and again"
            f" (Dask gave up on it: distributed.scheduler.allowed-failures); {RESUME_HINT}"
        ) from None
    except CancelledError:
        raise FatalError(
            f"the Dask scheduler dropped range ({r.start}, {r.end}] (connection to the scheduler lost?); {RESUME_HINT}"
        ) from None


def _abandon(client: Any, key: str, running: dict[Any, TokenRange]) -> None:
    """Stop the run's tasks at their next page (their ranges stay undone) and cancel the others."""
    with suppress(Exception):  # the scheduler may be the thing that failed
        client.cancel(list(running))
    with suppress(Exception):
        client.run(release_job, key, on_error="ignore")


@contextmanager
def _dask_client(options: JobOptions, clusters: Clusters, echo: Callable[[str], None]) -> Iterator[Any]:
    """A Dask client: of a local cluster of worker processes, or of the cluster at --scheduler."""
    from distributed import Client

    if options.workers and options.scheduler:
        raise UsageError(
            "--workers and --scheduler (MIGRATION_WORKERS, DASK_SCHEDULER_ADDRESS) exclude each other: give one"
        )
    started = time.monotonic()
    dask_log = logging.getLogger("distributed")
    log_level = dask_log.level
    dask_log.setLevel(logging.ERROR)
    cluster: Any = None
    try:
        if options.scheduler:
            try:
                client = Client(options.scheduler, timeout=SCHEDULER_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                raise FatalError(
                    f"cannot reach the Dask scheduler at {options.scheduler} ({exc}): is `dask scheduler` running"
                    " there? Check --scheduler (DASK_SCHEDULER_ADDRESS)"
                ) from None
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            except TimeoutError:
                client.close()
                raise FatalError(
                    f"the Dask scheduler at {options.scheduler} has no worker (waited {WORKERS_TIMEOUT_S:g} s):"
                    f" start some with `dask worker {options.scheduler}`"
                ) from None
            where = f"Dask cluster at {options.scheduler}"
        else:
            cluster = _local_cluster(options, clusters)
            client = Client(cluster)
            client.register_plugin(_ignore_ctrl_c())
            where = "local Dask cluster"
        try:
            nthreads = client.nthreads()
            processes, threads = len(nthreads), sum(nthreads.values())
            echo(
                f"{where}: {processes} worker process{'es' if processes != 1 else ''}, {threads} threads"
                f" (ready in {time.monotonic() - started:.1f} s)"
            )
            yield client, processes, threads
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
        dask_log.setLevel(log_level)


def _local_cluster(options: JobOptions, clusters: Clusters) -> Any:
    """N worker processes on this machine, ranges at once shared among them (as many as --parallel-ranges)."""
    from distributed import LocalCluster

    # The workers read credentials from their own environment: give them this process's settings.
    env = clusters.secrets_environment()
    # Ctrl-C goes to the whole process group: only this process handles it (it stops the workers).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        return LocalCluster(
            n_workers=options.workers,
            threads_per_worker=-(-options.parallel_ranges // options.workers),
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,  # a failed task is reported here, once, by the client
            env=env,
        )
    except (OSError, TimeoutError) as exc:
        raise FatalError(f"could not start {options.workers} local worker processes: {exc}") from None
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _ignore_ctrl_c() -> Any:
    """A worker plugin: local workers (also those restarted after a crash) leave Ctrl-C to this process."""
    from distributed import WorkerPlugin

    class IgnoreCtrlC(WorkerPlugin):
        name = "cassio-migration-ignore-ctrl-c"

        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreCtrlC()
