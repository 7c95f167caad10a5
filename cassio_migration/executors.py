"""Run range tasks: a range task is plain data plus one function, so it can run anywhere.

The in-process executor runs them on threads of this process. A range task records its
own range in the state table, so the executor only has to run it and pass results on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

from .copy import RangeCopier, worker_name
from .errors import Interrupted
from .plan import TokenRange
from .state import RangeResult, StateStore


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
            raise Interrupted("interrupted: the state is saved; run the same command again to resume") from None
        except BaseException:
            stop.set()
            wait(futures)
            raise
