"""One range: scan the source -> transform -> write with the source's write time and TTL.

A `RangeCopier` keeps no state of its own beyond what it reads and writes, so ranges can
run on any thread or process. Vectors stay raw bytes end to end.

A range is copied in one of two ways. The first time (or with `--full`), the scan reads
whole rows. When an earlier pass recorded what it copied there (digest.py), the scan reads
only keys and write times, skips the versions the record holds, and reads the other rows
whole by their key: a re-run after the cutover reads the vectors of the rows it copies, not
of the whole table. Either way every row read ends written (its hash recorded), skipped as
already copied, or rejected with a record; a row the database refuses is rejected too.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement

from .connect import prepare_raw
from .cql import qualified
from .digest import Digest, row_hash
from .inflight import Pace, RateLimiter, WriteWindow
from .job import Job, RunOptions
from .legacy import LegacyTable
from .plan import TokenRange
from .rejects import ErrorBudget, RejectSink
from .retry import RetryPolicy
from .scan import Router, newest_write, row_key, scan_pages, source_keys_select, source_row_select, source_select
from .state import Counts, RangeResult, WorkerId
from .target import TargetSpec
from .transform import Reject, transformer_for

LOOKUPS_IN_FLIGHT = 64
REFUSED = "refused_by_database"

Row = tuple[Any, ...]


@dataclass
class Tally:
    """What a range (or a replay) did so far, and the hashes of the row versions now in the target."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    skipped: int = 0
    nbytes: int = 0  # the values of the rows written
    bytes_read: int = 0  # the values of the whole rows read (a re-run reads keys and write times of the others)
    copied: array[int] = field(default_factory=lambda: array("Q"))
    refused: set[int] = field(default_factory=set)  # hashes of rows the database refused after they were sent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> Counts:
        return Counts(self.read, self.written, self.rejected, self.skipped, self.nbytes)

    def digest(self, known: Digest | None) -> Digest:
        """What is known copied now: the rows written or skipped here, and what the earlier record held."""
        kept = array("Q", (h for h in self.copied if h not in self.refused)) if self.refused else self.copied
        return Digest.of(kept).union(known)


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
        self._select_keys = prepare_raw(source_session, source_keys_select(source), self.policy)
        self._select_row = prepare_raw(source_session, source_row_select(source), self.policy)
        self._router = Router(source_session, source.keyspace, options.scan_routing == "replica")
        layout = source.layout
        self._width, self._nvalues, self._nkey = len(layout.columns), len(layout.values), len(layout.key)
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
        known: Digest | None,
        stop: threading.Event,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[RangeResult, Digest] | None:
        """Copy one range, skipping the row versions `known` holds (unless --full): its result and its
        record (None if `stop` was set before it finished)."""
        started = time.monotonic()
        read_retries = 0

        def retried() -> None:
            nonlocal read_retries
            read_retries += 1

        def scan(statement: PreparedStatement) -> Iterable[list[Row]]:
            return scan_pages(
                self._source_session,
                statement,
                (r.start, r.end),
                self.options.page_size,
                self.policy,
                stop,
                on_retry=retried,
                hosts=self._router.replicas(r),
            )

        tally = Tally()
        if known is not None and not self.options.full:
            write_retries = self._run(self._changed_rows(scan(self._select_keys), known, tally), tally, stop, progress)
        else:
            write_retries = self._run(((page, page) for page in scan(self._select)), tally, stop, progress)
        if stop.is_set():
            return None
        elapsed = time.monotonic() - started
        result = RangeResult(
            r.start,
            r.end,
            tally.counts(),
            elapsed,
            WorkerId.current(),
            read_retries=read_retries,
            write_retries=write_retries,
            bytes_read=tally.bytes_read,
            pace=self.pace.report(),
        )
        return result, tally.digest(known)

    def process(
        self, pages: Iterable[list[Row]], stop: threading.Event, progress: Callable[[int], None] | None = None
    ) -> tuple[Counts, int]:
        """Transform and write whole rows (a replay's); the counts, and how many writes were retried."""
        tally = Tally()
        retries = self._run(((page, page) for page in pages), tally, stop, progress)
        return tally.counts(), retries

    def _changed_rows(
        self, key_pages: Iterable[list[Row]], known: Digest, tally: Tally
    ) -> Iterable[tuple[list[Row], list[Row]]]:
        """(page of keys read, the whole rows of those not known copied): the known ones counted as skipped."""
        for page in key_pages:
            hashes = [self._hash(row, self._nkey) for row in page]
            found = known.contains([h or 0 for h in hashes])
            todo = []
            for row, h, copied in zip(page, hashes, found):
                if h is not None and copied:
                    tally.copied.append(h)
                else:
                    todo.append(row[: self._nkey])
            rows = self._look_up(todo)
            # Skipped: the rows known copied, and those deleted from the source since the key was read.
            tally.skipped += len(page) - len(rows)
            yield page, rows

    def _look_up(self, keys: list[Row]) -> list[Row]:
        """The whole rows of these keys, as the range scan returns rows (a row deleted meanwhile is left out)."""
        if not keys:
            return []

        def fetch() -> list[Row]:
            results = execute_concurrent_with_args(
                self._source_session, self._select_row, keys, concurrency=LOOKUPS_IN_FLIGHT
            )
            return [row for _, rows in results for row in rows]

        rows: list[Row] = self.policy.call("reading changed rows from the source", fetch)
        return rows

    def _hash(self, row: Sequence[Any], width: int) -> int | None:
        """The hash of a row's version (None: every value is NULL); `width`: its key and value columns."""
        ts, _ = newest_write(row, width, self._nvalues)
        return None if ts is None else row_hash(row_key(row, self._nkey), ts)

    def _run(
        self,
        pages: Iterable[tuple[list[Row], list[Row]]],
        tally: Tally,
        stop: threading.Event,
        progress: Callable[[int], None] | None,
    ) -> int:
        """Transform and write each (page read, its whole rows to write); how many writes were retried."""
        options = self.options
        reject = self._rejects.write

        def refused(origin: tuple[str, Row, int, int, int], message: str) -> None:
            key, row, ts, ttl, h = origin
            reject(key, REFUSED, f"the database refused the write: {message}"[:500], row, ts, ttl)
            with tally.lock:
                tally.refused.add(h)

        window = (
            None
            if options.dry_run
            else WriteWindow(
                self._target_session,
                self.pace,
                self.policy,
                options.batch_rows,
                options.batch_kib * 1024,
                on_refused=refused,
            )
        )
        values_of = self.transformer.values
        insert = self._insert
        width, nvalues, nkey = self._width, self._nvalues, self._nkey
        # Bound once: the per-row loop pays no call for an unlimited rate or a dry run.
        acquire = self._rate.acquire if self._rate.limited else None
        submit = window.submit if window is not None else None
        copied = tally.copied.append
        try:
            for page, rows in pages:
                page_rejected = page_written = page_bytes = written_bytes = 0
                for row in rows:
                    size = sum(len(v) for v in row[nkey:width] if v is not None)
                    page_bytes += size
                    ts, ttl = newest_write(row, width, nvalues)
                    key = row_key(row, nkey)
                    if ts is None:
                        reject(key, "no_values", "every value column is NULL", row, ts, ttl)
                        page_rejected += 1
                        continue
                    values = values_of(*row[:width])
                    if isinstance(values, Reject):
                        reject(key, values.reason, values.detail, row, ts, ttl)
                        page_rejected += 1
                        continue
                    h = row_hash(key, ts)
                    copied(h)
                    written_bytes += size
                    page_written += 1
                    if submit is not None:
                        if acquire is not None:
                            acquire()
                        submit(insert, (*values, ts, ttl), (key, row, ts, ttl, h))
                tally.read += len(page)
                tally.written += page_written
                tally.rejected += page_rejected
                tally.nbytes += written_bytes
                tally.bytes_read += page_bytes
                self.budget.add(len(page), page_rejected)
                if progress:
                    progress(len(page))
                if stop.is_set():
                    break
        finally:
            if window is not None:
                window.drain()
        if tally.refused:
            # Counted written when sent: they are rejected, with their records.
            tally.written -= len(tally.refused)
            tally.rejected += len(tally.refused)
            self.budget.add(0, len(tally.refused))
        return window.retries if window is not None else 0
