"""One range: scan the source -> transform -> write with the source's write time and TTL.

A `RangeCopier` keeps no state of its own beyond what it reads and writes, so ranges can
run on any thread or process. Vectors stay raw bytes end to end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from .connect import prepare_raw
from .cql import qualified
from .inflight import Pace, RateLimiter, WriteWindow
from .job import Job, RunOptions
from .legacy import LegacyTable
from .plan import TokenRange
from .rejects import ErrorBudget, RejectSink
from .retry import RetryPolicy
from .scan import Router, newest_write, row_key, scan_pages, source_select
from .state import Counts, RangeResult, WorkerId
from .target import TargetSpec
from .transform import Reject, transformer_for


class RangeCopier:
    """Copies token ranges; one per process, shared by its threads."""

    def __init__(
        self,
        source_session: Session,
        target_session: Session,
        job: Job,
        options: RunOptions,
        source: LegacyTable,
        target: TargetSpec,
        rejects: RejectSink,
        rate: RateLimiter,
        budget: ErrorBudget,
        pace: Pace,
    ) -> None:
        self.options = options
        self.source = source
        self.policy = RetryPolicy(options.retry_seconds)
        self.budget = budget
        self.pace = pace
        self._source_session = source_session
        self._target_session = target_session
        self._rejects = rejects
        self._rate = rate
        self.transformer = transformer_for(target, target_session, job)
        self._select = prepare_raw(source_session, source_select(source), self.policy)
        self._router = Router(source_session, source.keyspace, options.scan_routing == "replica")
        self._insert: PreparedStatement | None = None
        if not options.dry_run:
            columns = self.transformer.columns
            self._insert = prepare_raw(
                target_session,
                f"INSERT INTO {qualified(target.keyspace, target.table)} ({', '.join(columns)})"
                f" VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ? AND TTL ?",
                self.policy,
            )

    def copy(
        self,
        r: TokenRange,
        skip_before_us: int | None,
        stop: threading.Event,
        progress: Callable[[int], None] | None = None,
    ) -> RangeResult | None:
        """Copy one range; None if `stop` was set before it finished."""
        started = time.monotonic()
        read_retries = 0

        def retried() -> None:
            nonlocal read_retries
            read_retries += 1

        pages = scan_pages(
            self._source_session,
            self._select,
            (r.start, r.end),
            self.options.page_size,
            self.policy,
            stop,
            on_retry=retried,
            hosts=self._router.replicas(r),
        )
        counts, write_retries = self.process(pages, skip_before_us, stop, progress)
        if stop.is_set():
            return None
        elapsed = time.monotonic() - started
        worker = WorkerId.current()
        return RangeResult(r.start, r.end, counts, elapsed, worker, read_retries, write_retries, self.pace.report())

    def process(
        self,
        pages: Iterable[list[tuple[Any, ...]]],
        skip_before_us: int | None,
        stop: threading.Event,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[Counts, int]:
        """Transform and write rows as a range scan returns them; the counts, and how many writes were retried."""
        options = self.options
        window = (
            None
            if options.dry_run
            else WriteWindow(self._target_session, self.pace, self.policy, options.batch_rows, options.batch_kib * 1024)
        )
        values_of = self.transformer.values
        insert = self._insert
        reject = self._rejects.write
        layout = self.source.layout
        width, nvalues, nkey = len(layout.columns), len(layout.values), len(layout.key)
        # Bound once: the per-row loop pays no call for an unlimited rate or a dry run.
        acquire = self._rate.acquire if self._rate.limited else None
        submit = window.submit if window is not None else None
        read = written = rejected = skipped = nbytes = 0
        try:
            for page in pages:
                page_rejected = 0
                for row in page:
                    ts, ttl = newest_write(row, width, nvalues)
                    if ts is None:
                        reject(row_key(row, nkey), "no_values", "every value column is NULL", row, ts, ttl)
                        page_rejected += 1
                        continue
                    if skip_before_us is not None and ts < skip_before_us:
                        skipped += 1
                        continue
                    values = values_of(*row[:width])
                    if isinstance(values, Reject):
                        reject(row_key(row, nkey), values.reason, values.detail, row, ts, ttl)
                        page_rejected += 1
                        continue
                    nbytes += sum(len(v) for v in row[nkey:width] if v is not None)
                    written += 1
                    if submit is not None:
                        if acquire is not None:
                            acquire()
                        submit(insert, (*values, ts, ttl))
                read += len(page)
                rejected += page_rejected
                self.budget.add(len(page), page_rejected)
                if progress:
                    progress(len(page))
                if stop.is_set():
                    break
        finally:
            if window is not None:
                window.drain()
        return Counts(read, written, rejected, skipped, nbytes), window.retries if window is not None else 0
