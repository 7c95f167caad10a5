"""ONE range task: scan a token range of the source, transform, write with write time + TTL.

A task keeps no state of its own beyond what it reads from and writes to the state
table, so it can run in another thread or process. Vectors stay raw bytes end to end.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from cassandra import OperationTimedOut, ReadFailure, ReadTimeout, Unavailable
from cassandra.cluster import NoHostAvailable, Session
from cassandra.query import PreparedStatement

from .connect import prepare_raw
from .cql import qualified
from .errors import FatalError, UsageError
from .inflight import RateLimiter, WriteWindow
from .legacy import LegacyTable
from .plan import TokenRange
from .state import RangeResult
from .target import TargetSpec
from .transform import Reject, transformer_for

READ_RETRYABLE = (ReadTimeout, ReadFailure, OperationTimedOut, Unavailable, NoHostAvailable, ConnectionError)
MIN_PAGE = 10


@dataclass(frozen=True)
class CopyOptions:
    """What a range task needs, as plain data (never a secret)."""

    source: LegacyTable
    target: TargetSpec
    key_to_text: bool = False
    wrap_key: str | None = None
    page_size: int = 200
    concurrency: int = 128
    retry_seconds: float = 120.0
    dry_run: bool = False


def source_select(source: LegacyTable) -> str:
    """The range scan: the key and value columns, then the write time and the TTL of each value column.

    A row comes back as (*columns, *writetimes, *ttls): see `newest_write`.
    """
    layout = source.layout
    return (
        f"SELECT {', '.join(layout.columns)}, "
        + ", ".join(f"WRITETIME({c})" for c in layout.values)
        + ", "
        + ", ".join(f"TTL({c})" for c in layout.values)
        + f" FROM {qualified(source.keyspace, source.table)}"
        f" WHERE token({', '.join(layout.partition_key)}) > ? AND token({', '.join(layout.partition_key)}) <= ?"
    )


def newest_write(row: Sequence[Any], width: int, values: int) -> tuple[int | None, int]:
    """The row's write time (the newest of its values) and the remaining TTL of that write.

    `width` columns, of which `values` value columns, then their write times, then their TTLs.
    cassio wrote all columns in one INSERT, so they agree; for rows other code wrote
    piecewise, the newest write decides.
    """
    best: int | None = None
    ttl = 0
    for wt, t in zip(row[width : width + values], row[width + values : width + 2 * values]):
        if wt is not None and (best is None or wt > best):
            best, ttl = wt, t or 0
    return best, ttl


def row_key(row: Sequence[Any], key_width: int) -> str:
    """A source row's key, for reports and rejects files."""
    return str(row[0]) if key_width == 1 else json.dumps([str(k) for k in row[:key_width]], ensure_ascii=False)


class BudgetSpent(FatalError):
    """More rows were rejected than --max-errors allows."""


class ErrorBudget:
    """Rejected rows allowed before the run stops: a count, and/or a share of the rows read."""

    MIN_ROWS_FOR_RATIO = 1000  # a share of the first few rows says little

    def __init__(self, max_count: int | None = None, max_ratio: float | None = None) -> None:
        self.max_count = max_count
        self.max_ratio = max_ratio
        self.read = 0
        self.rejected = 0
        self._lock = threading.Lock()

    def add(self, read: int, rejected: int) -> None:
        with self._lock:
            self.read += read
            self.rejected += rejected
            if self.max_count is not None and self.rejected > self.max_count:
                raise BudgetSpent(f"{self.rejected} rows rejected, more than the {self.max_count} allowed")
            if self.read >= self.MIN_ROWS_FOR_RATIO:
                self._check_ratio(self.read, self.rejected)

    def check_total(self, read: int, rejected: int) -> None:
        """At the end of a pass, on its totals (earlier runs of a resumed pass included)."""
        if self.max_count is not None and rejected > self.max_count:
            raise BudgetSpent(f"{rejected} rows rejected in this pass, more than the {self.max_count} allowed")
        self._check_ratio(read, rejected)

    def _check_ratio(self, read: int, rejected: int) -> None:
        if self.max_ratio is not None and rejected > self.max_ratio * read:
            raise BudgetSpent(f"{rejected} of {read} rows rejected, more than the {self.max_ratio:.2%} allowed")


class RejectSink:
    """Rejected rows as JSON lines (key, reason, detail, the raw row): replayable with --replay.

    The row holds each source column by name (bytes as `<name>_b64`, UUIDs as text), its
    write time, its TTL, and when it was read (the TTL counts down from there).
    """

    def __init__(self, stream: TextIO | None, columns: Sequence[str]) -> None:
        self._stream = stream
        self._columns = tuple(columns)
        self._lock = threading.Lock()

    def write(self, key: str, reject: Reject, row: Sequence[Any], writetime: int | None, ttl: int) -> None:
        if self._stream is None:
            return
        encoded: dict[str, Any] = {}
        for name, value in zip(self._columns, row):
            if isinstance(value, bytes):
                encoded[f"{name}_b64"] = base64.b64encode(value).decode()
            else:
                encoded[name] = str(value) if isinstance(value, uuid.UUID) else value
        record = {
            "key": key,
            "reason": reject.reason,
            "detail": reject.detail,
            "row": {**encoded, "writetime": writetime, "ttl": ttl, "read_at": int(time.time())},
        }
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")


def replay_rows(path: str, source: LegacyTable) -> Iterator[tuple[Any, ...]]:
    """The rows of a rejects file, as a range scan returns them (edit the file to fix them first)."""
    layout = source.layout
    uuids = source.uuid_columns
    blanks = (None,) * (len(layout.values) - 1)
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)["row"]
                columns: list[Any] = []
                for name in layout.columns:
                    if f"{name}_b64" in row:
                        encoded = row[f"{name}_b64"]
                        columns.append(base64.b64decode(encoded) if encoded is not None else None)
                    elif name in uuids:
                        columns.append(uuid.UUID(row[name]))
                    else:
                        columns.append(row[name])
                ttl = int(row["ttl"] or 0)
                if ttl:
                    ttl -= int(time.time()) - int(row["read_at"])
                    if ttl <= 0:
                        continue  # expired since it was rejected, as it has in the source
                writetime = row["writetime"]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"{path}, line {number}: not a rejects record ({exc})") from None
            yield (*columns, writetime, *blanks, ttl or None, *blanks)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class RangeCopier:
    """Copies token ranges; one per process, shared by its threads."""

    def __init__(
        self,
        source_session: Session,
        target_session: Session,
        options: CopyOptions,
        rejects: RejectSink,
        rate: RateLimiter | None = None,
        budget: ErrorBudget | None = None,
    ) -> None:
        self.options = options
        self.budget = budget or ErrorBudget()
        self.write_retries = 0
        self.read_retries = 0
        self.source = source_session
        self.target = target_session
        self.rejects = rejects
        self.rate = rate or RateLimiter(0)
        self.transformer = transformer_for(
            options.target, target_session, key_to_text=options.key_to_text, wrap_key=options.wrap_key
        )
        self.select = prepare_raw(source_session, source_select(options.source))
        self.insert: PreparedStatement | None = None
        if not options.dry_run:
            columns = self.transformer.columns
            self.insert = prepare_raw(
                target_session,
                f"INSERT INTO {qualified(options.target.keyspace, options.target.table)} ({', '.join(columns)})"
                f" VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ? AND TTL ?",
            )

    def pages(self, r: TokenRange, stop: threading.Event) -> Iterator[list[tuple[Any, ...]]]:
        """The range's rows page by page; a timed-out page is retried with a smaller page."""
        yield from scan_pages(
            self.source,
            self.select,
            (r.start, r.end),
            self.options.page_size,
            self.options.retry_seconds,
            stop,
            self._read_retried,
        )

    def _read_retried(self) -> None:
        self.read_retries += 1

    def copy(
        self,
        r: TokenRange,
        skip_before_us: int | None,
        stop: threading.Event,
        progress: Callable[[int], None] | None = None,
    ) -> RangeResult | None:
        """Copy one range; None if `stop` was set before it finished."""
        started = time.monotonic()
        counts = self.process(self.pages(r, stop), skip_before_us, stop, progress)
        if stop.is_set():
            return None
        return RangeResult(r.start, r.end, *counts, time.monotonic() - started, worker_name())

    def process(
        self,
        pages: Iterable[list[tuple[Any, ...]]],
        skip_before_us: int | None,
        stop: threading.Event,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int, int, int, int]:
        """Transform and write rows as a range scan returns them: (read, written, rejected, skipped, bytes)."""
        window = (
            None
            if self.options.dry_run
            else WriteWindow(self.target, self.options.concurrency, self.options.retry_seconds)
        )
        values_of = self.transformer.values
        insert = self.insert
        layout = self.options.source.layout
        width, nvalues, nkey = len(layout.columns), len(layout.values), len(layout.key)
        # Bound once: the per-row loop pays no call for an unlimited rate or a dry run.
        acquire = self.rate.acquire if self.rate.limited else None
        submit = window.submit if window is not None else None
        read = written = rejected = skipped = nbytes = 0
        try:
            for page in pages:
                page_rejected = 0
                for row in page:
                    ts, ttl = newest_write(row, width, nvalues)
                    if ts is None:
                        reject = Reject("no_values", "every value column is NULL")
                        self.rejects.write(row_key(row, nkey), reject, row, ts, ttl)
                        page_rejected += 1
                        continue
                    if skip_before_us is not None and ts < skip_before_us:
                        skipped += 1
                        continue
                    values = values_of(*row[:width])
                    if isinstance(values, Reject):
                        self.rejects.write(row_key(row, nkey), values, row, ts, ttl)
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
                self.write_retries += window.retries
        return read, written, rejected, skipped, nbytes


def scan_pages(
    session: Session,
    statement: PreparedStatement,
    params: tuple[Any, ...],
    page_size: int,
    retry_seconds: float,
    stop: threading.Event,
    on_retry: Callable[[], None] | None = None,
) -> Iterator[list[tuple[Any, ...]]]:
    """Manual paging, so that a timed-out page is retried (halving the page) without restarting the range."""
    paging_state = None
    size = page_size
    while not stop.is_set():
        first_try = time.monotonic()
        attempt = 0
        while True:
            bound = statement.bind(params)
            bound.fetch_size = size
            try:
                result = session.execute(bound, paging_state=paging_state)
                break
            except READ_RETRYABLE as exc:
                if time.monotonic() - first_try > retry_seconds or stop.is_set():
                    raise FatalError(
                        f"reading the source still failed after {retry_seconds:g} s of retries"
                        f" (MIGRATION_RETRY_SECONDS): {type(exc).__name__}: {exc}; run the same command again"
                        " (a migration resumes where it stopped)"
                    ) from None
                size = max(MIN_PAGE, size // 2)
                if on_retry:
                    on_retry()
                time.sleep(min(10.0, 0.2 * 2**attempt))
                attempt += 1
        yield result.current_rows
        paging_state = result.paging_state
        if paging_state is None:
            return
