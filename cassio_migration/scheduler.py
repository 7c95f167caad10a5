"""Runs range tasks on threads of this process or on Dask workers, with one refill loop.

`run_all` keeps every slot busy: as soon as one task ends, the next one starts, so a
slow range never leaves the other slots idle. It stops the same way for both backends
on Ctrl-C (Interrupted) or on the first task that fails: the running tasks are told to
stop at their next page (their ranges stay undone), the others are never started.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any, Generic, Protocol, TypeVar

from .errors import RESUME_HINT, FatalError, Interrupted, UsageError
from .job import Clusters, RunOptions
from .plan import TokenRange
from .tasks import RunSpec, TaskFailure, progress_topic, release, run_task_reporting_errors

SCHEDULER_TIMEOUT_S = 8.0  # a --scheduler address that does not answer fails within this
WORKERS_TIMEOUT_S = 20.0  # how long a scheduler with no worker yet is given to get one
TASK_RETRIES = 2  # a task that raised an unexpected error is tried again (a dead worker's task is rescheduled anyway)

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class Backend(Protocol[T_contra, R_co]):
    """Where tasks run: `slots` at once."""

    slots: int

    def submit(self, item: T_contra) -> Any:
        """Start a task; a future with add_done_callback()."""

    def outcome(self, future: Any, item: T_contra) -> R_co | None:
        """The task's result (None: stopped before it finished); raises the task's error."""

    def stop(self, running: list[Any]) -> None:
        """Stop the running tasks at their next page and wait for them; start no other."""

    def check(self) -> None:
        """Called while waiting for tasks: raise if they can no longer end (no worker left)."""


def run_all(
    items: Iterable[T], backend: Backend[T, R], on_result: Callable[[R], None], check: Callable[[], None] = lambda: None
) -> None:
    """Run every item's task, refilling each slot as its task ends; results in order of arrival.

    `check` runs now and then while tasks run, as `backend.check` does: what it raises stops the run.
    """

    def checks() -> None:
        backend.check()
        check()

    pending = deque(items)
    running: dict[Any, T] = {}
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def start() -> None:
        item = pending.popleft()
        future = backend.submit(item)
        running[future] = item
        future.add_done_callback(finished.put)

    try:
        while pending and len(running) < backend.slots:
            start()
        while running:
            future = _next(finished, checks)
            result = backend.outcome(future, running.pop(future))
            if result is not None:
                on_result(result)
            if pending:
                start()
    except KeyboardInterrupt:
        backend.stop(list(running))
        raise Interrupted() from None
    except BaseException:
        backend.stop(list(running))
        raise


def _next(finished: queue.SimpleQueue[Any], check: Callable[[], None]) -> Any:
    """The next finished future; wakes up now and then so that Ctrl-C is seen at once."""
    while True:
        with suppress(queue.Empty):
            return finished.get(timeout=0.5)
        check()


class Threads(Generic[T, R]):
    """Tasks on a pool of threads of this process."""

    def __init__(self, slots: int, task: Callable[[T], R | None], stop: Callable[[], None]) -> None:
        self.slots = slots
        self._task = task
        self._stop = stop
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="range")

    def submit(self, item: T) -> Future[R | None]:
        return self._pool.submit(self._task, item)

    def outcome(self, future: Future[R | None], item: T) -> R | None:
        return future.result()

    def stop(self, running: list[Any]) -> None:
        self._stop()
        wait(running)

    def check(self) -> None:
        pass  # this process's threads always end

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@contextmanager
def threads(slots: int, task: Callable[[T], R | None], stop: Callable[[], None]) -> Iterator[Threads[T, R]]:
    pool = Threads(slots, task, stop)
    try:
        yield pool
    finally:
        pool.close()


class Dask:
    """Range tasks on the workers of a Dask cluster; each worker process builds the run's context once."""

    def __init__(self, client: Any, spec: RunSpec, threads: int) -> None:
        self.slots = threads
        self._client = client
        self._spec = spec
        self._no_worker_since: float | None = None

    def check(self) -> None:
        """With no worker left for WORKERS_TIMEOUT_S (all died, none restarted), the tasks would wait forever."""
        try:
            workers = len(self._client.nthreads())
        except Exception:  # the scheduler is gone: the futures say so
            return
        if workers:
            self._no_worker_since = None
            return
        now = time.monotonic()
        self._no_worker_since = self._no_worker_since or now
        if now - self._no_worker_since > WORKERS_TIMEOUT_S:
            raise FatalError(
                f"the Dask cluster has had no worker for {WORKERS_TIMEOUT_S:g} s: start some"
                f" (`dask worker ...`); {RESUME_HINT}"
            )

    def submit(self, r: TokenRange) -> Any:
        return self._client.submit(
            run_task_reporting_errors,
            self._spec,
            r,
            key=f"range-{r.start}-{self._spec.key}",
            retries=TASK_RETRIES,
            pure=False,
        )

    def outcome(self, future: Any, r: TokenRange) -> Any:
        from distributed import KilledWorker
        from distributed.utils import CancelledError

        try:
            result = future.result()
        except KilledWorker:
            raise FatalError(
                f"range ({r.start}, {r.end}] was running on a worker that died, again and again"
                f" (Dask gave up on it: distributed.scheduler.allowed-failures); {RESUME_HINT}"
            ) from None
        except CancelledError:
            raise FatalError(
                f"the Dask scheduler dropped range ({r.start}, {r.end}] (connection to the scheduler lost?);"
                f" {RESUME_HINT}"
            ) from None
        if isinstance(result, TaskFailure):
            raise result.error()
        return result

    def stop(self, running: list[Any]) -> None:
        with suppress(Exception):  # the scheduler may be the thing that failed
            self._client.cancel(running)
        self.release()

    def release(self) -> None:
        """Every worker process closes what it opened for the run."""
        with suppress(Exception):
            self._client.run(release, self._spec.key, on_error="ignore")


@contextmanager
def dask_backend(
    spec: RunSpec,
    options: RunOptions,
    clusters: Clusters,
    progress: Callable[[int], None] | None,
    echo: Callable[[str], None],
) -> Iterator[Dask]:
    """A Dask backend for the run: on a local cluster of worker processes, or on the cluster at --scheduler.

    The spec sent to the workers carries no secret, and the number of worker processes
    (their share of --rate-limit).
    """
    with _dask_client(options, clusters, echo) as (client, processes, threads):
        spec = replace(spec, job=spec.job.without_secrets(), processes=processes)
        topic = progress_topic(spec.key)
        if progress is not None:
            client.subscribe_topic(topic, lambda event: progress(event[1]))
        backend = Dask(client, spec, threads)
        try:
            yield backend
            backend.release()
        finally:
            if progress is not None:
                with suppress(Exception):  # the scheduler may be gone
                    client.unsubscribe_topic(topic)


@contextmanager
def _dask_client(options: RunOptions, clusters: Clusters, echo: Callable[[str], None]) -> Iterator[Any]:
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
            client = _remote_client(options.scheduler)
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


def _remote_client(address: str) -> Any:
    from distributed import Client

    try:
        client = Client(address, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise FatalError(
            f"cannot reach the Dask scheduler at {address} ({exc}): is `dask scheduler` running"
            " there? Check --scheduler (DASK_SCHEDULER_ADDRESS)"
        ) from None
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except TimeoutError:
        client.close()
        raise FatalError(
            f"the Dask scheduler at {address} has no worker (waited {WORKERS_TIMEOUT_S:g} s):"
            f" start some with `dask worker {address}`"
        ) from None
    return client


def _local_cluster(options: RunOptions, clusters: Clusters) -> Any:
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
