"""What one range task is: plain data, plus the function that runs it in any process.

A task is a `RunSpec` (what every task of the run shares: the job without its secrets,
the run options, the source and target found, the pass) and a token range. The process
that runs it, this one or a Dask worker, builds its context for the run once (sessions,
copier or verifier, state store, rejects file) from the spec, under the run's key, and
reuses it for every range of that run until the run releases it. A copy task records its
range in the state table itself, so the scheduler only runs tasks and passes results on.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TextIO

from .connect import Sessions, open_sessions
from .copy import RangeCopier
from .digest import Records
from .errors import KNOWN_ERRORS, FatalError, MigrationError
from .inflight import Pace, RateLimiter
from .job import Job, RunOptions
from .legacy import LegacyTable
from .plan import TokenRange
from .rejects import ErrorBudget, RejectSink, worker_file
from .retry import RetryPolicy
from .state import RangeResult, StateStore, WorkerId
from .target import TargetSpec
from .verify import RangeVerifier, VerifyCounts


@dataclass(frozen=True)
class PassInfo:
    """Which pass of the job a copy task belongs to."""

    number: int
    known_pass: int | None  # the last completed pass: its record of each range says what was copied before


@dataclass(frozen=True)
class RunSpec:
    """What every range task of one run shares. Plain data: a task sent to a worker carries no secret."""

    key: str  # the run: a process builds its context once per key
    mode: str  # copy | verify
    job: Job
    options: RunOptions
    source: LegacyTable
    target: TargetSpec
    folder: str  # the run folder: each process writes its rejects there
    pass_info: PassInfo | None = None  # copy: None for a dry run (no state)
    records: dict[int, int] | None = None  # verify: range start -> the pass whose record says what was copied
    processes: int = 1  # processes sharing --rate-limit


@dataclass(frozen=True)
class TaskFailure:
    """A MigrationError raised on a worker, as plain data (a worker's error travels back as a result)."""

    kind: str
    message: str
    worker: str

    def error(self) -> MigrationError:
        return KNOWN_ERRORS.get(self.kind, FatalError)(f"on worker {self.worker}: {self.message}")


def rejects_stream(folder: str) -> TextIO:
    """This process's rejects file of the run; a line at a time, so a killed worker loses no finished line."""
    os.makedirs(folder, exist_ok=True)
    return open(
        os.path.join(folder, worker_file(socket.gethostname(), os.getpid())), "a", encoding="utf-8", buffering=1
    )


class RangeRunner:
    """One process's context of a run: runs its ranges with one copier (or verifier) and one state store."""

    def __init__(
        self, spec: RunSpec, sessions: Sessions, rejects: TextIO | None, progress: Callable[[int], None] | None
    ) -> None:
        self.spec = spec
        self.progress = progress
        self.stop = threading.Event()
        options = spec.options
        self.state: StateStore | None = None
        self.copier: RangeCopier | None = None
        self.verifier: RangeVerifier | None = None
        policy = RetryPolicy(options.retry_seconds)
        if spec.pass_info is not None or spec.records:
            self.state = StateStore(sessions.target_plain, spec.target.keyspace, spec.target.table, policy)
        if spec.mode == "verify":
            state = self.state
            records = Records(spec.records, state.digest) if spec.records and state is not None else None
            self.verifier = RangeVerifier(
                sessions.raw, sessions.target_raw, spec.job, options, spec.source, spec.target, records
            )
            return
        self.copier = RangeCopier(
            sessions.raw,
            sessions.target_raw,
            spec.job,
            options,
            spec.source,
            spec.target,
            RejectSink(rejects, spec.source.layout.columns),
            RateLimiter(options.rate_limit / spec.processes),
            ErrorBudget(options.max_errors),
            Pace(
                max(1, options.concurrency // spec.processes),
                slow_s=spec.job.clusters.target_side.request_timeout / 4,
                adaptive=options.window == "adaptive",
            ),
        )

    def run(self, r: TokenRange) -> RangeResult | VerifyCounts | None:
        """One range; None if the run was stopped before it finished."""
        if self.verifier is not None:
            return self.verifier.verify(r, self.stop, self.progress)
        assert self.copier is not None
        info = self.spec.pass_info
        if self.state is not None and info is not None:
            self.state.range_started(info.number, r, WorkerId.current())
        state = self.state
        known = state.digest(info.known_pass, r.start) if state and info and info.known_pass is not None else None
        copied = self.copier.copy(r, known, self.stop, self.progress)
        if copied is None:
            return None
        result, record = copied
        if state is not None and info is not None:
            state.range_done(info.number, result, record)
        return result


@dataclass
class _Context:
    runner: RangeRunner
    resources: ExitStack = field(default_factory=ExitStack)  # what this process opened for the run
    running: int = 0
    released: bool = False


_CONTEXTS: dict[str, _Context] = {}
_RELEASED: set[str] = set()
_BUILDING: dict[str, threading.Lock] = {}
_LOCK = threading.Lock()


def register(spec: RunSpec, sessions: Sessions, rejects: TextIO | None, progress: Callable[[int], None] | None) -> None:
    """Give this process a run's context built from sessions it already has (the in-process run)."""
    with _LOCK:
        _RELEASED.discard(spec.key)
        _CONTEXTS[spec.key] = _Context(RangeRunner(spec, sessions, rejects, progress))


def _progress_to_client(key: str) -> Callable[[int], None] | None:
    """Rows done, sent to the client's progress bar as Dask events (None outside a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    topic = progress_topic(key)
    return lambda n: worker.log_event(topic, n)


def progress_topic(key: str) -> str:
    return f"cassio-migration-progress-{key}"


def _build(spec: RunSpec) -> _Context:
    """A worker's context: its own sessions (secrets from its environment) and rejects file."""
    with ExitStack() as stack:
        job = spec.job
        sessions = stack.enter_context(open_sessions(job.clusters.with_secrets_from_environment()))
        rejects = stack.enter_context(rejects_stream(spec.folder)) if spec.mode == "copy" else None
        context = _Context(RangeRunner(spec, sessions, rejects, _progress_to_client(spec.key)))
        context.resources = stack.pop_all()
        return context


def _acquire(spec: RunSpec) -> _Context | None:
    """The process's context of the run, built by the first of its tasks; None once the run is over.

    Built under a lock of its own, so that the process lock is never held while connecting.
    """
    with _LOCK:
        if spec.key in _RELEASED:
            return None
        building = _BUILDING.setdefault(spec.key, threading.Lock())
    with building:
        with _LOCK:
            if spec.key in _RELEASED:
                return None
            context = _CONTEXTS.get(spec.key)
            if context is not None:
                context.running += 1
                return context
        built = _build(spec)
        with _LOCK:
            if spec.key not in _RELEASED:
                built.running += 1
                _CONTEXTS[spec.key] = built
                return built
        built.resources.close()
        return None


def run_task(spec: RunSpec, r: TokenRange) -> RangeResult | VerifyCounts | None:
    """Run one range of the run in this process (a module-level function: Dask pickles it by name)."""
    context = _acquire(spec)
    if context is None:
        return None
    try:
        return context.runner.run(r)
    finally:
        with _LOCK:
            context.running -= 1
            last = context.released and not context.running
        if last:
            context.resources.close()


def run_task_reporting_errors(spec: RunSpec, r: TokenRange) -> RangeResult | VerifyCounts | TaskFailure | None:
    """`run_task` on a Dask worker: a migration error comes back as data (Dask would retry an exception)."""
    try:
        return run_task(spec, r)
    except MigrationError as exc:
        return TaskFailure(type(exc).__name__, str(exc), WorkerId.current().process)


def release(key: str) -> None:
    """The run is over: stop its tasks at their next page, close what this process opened for it."""
    with _LOCK:
        _RELEASED.add(key)
        _BUILDING.pop(key, None)
        context = _CONTEXTS.pop(key, None)
        if context is None:
            return
        context.runner.stop.set()
        context.released = True
        idle = not context.running
    if idle:
        context.resources.close()
