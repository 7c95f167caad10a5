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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from cassandra import OperationTimedOut, ReadFailure, ReadTimeout, Unavailable
from cassandra.cluster import NoHostAvailable, Session
from cassandra.query import PreparedStatement

from .connect import prepare_raw
from .cql import qualified
from .errors import FatalError
from .inflight import RateLimiter, WriteWindow
from .legacy import LegacyVectorTable
from .plan import TokenRange
from .state import RangeResult
from .target import TargetSpec, cassio_table
from .transform import Reject, Transformer

READ_RETRYABLE = (ReadTimeout, ReadFailure, OperationTimedOut, Unavailable, NoHostAvailable, ConnectionError)
MIN_PAGE = 10


@dataclass(frozen=True)
class CopyOptions:
    """What a range task needs, as plain data (never a secret)."""

    source: LegacyVectorTable
    target: TargetSpec
    key_to_text: bool = False
    wrap_key: str | None = None
    page_size: int = 200
    concurrency: int = 128
    retry_seconds: float = 120.0
    dry_run: bool = False


def source_select(source: LegacyVectorTable) -> str:
    """The range scan: every column, with the write time and TTL of each value column."""
    cols = ("embedding_vector", "document", "metadata_blob")
    return (
        "SELECT document_id, embedding_vector, document, metadata_blob, "
        + ", ".join(f"WRITETIME({c})" for c in cols)
        + ", "
        + ", ".join(f"TTL({c})" for c in cols)
        + f" FROM {qualified(source.keyspace, source.table)}"
        " WHERE token(document_id) > ? AND token(document_id) <= ?"
    )


def newest_write(writetimes: tuple[Any, ...], ttls: tuple[Any, ...]) -> tuple[int | None, int]:
    """The row's write time (the newest of its values) and the remaining TTL of that write.

    cassio wrote all columns in one INSERT, so they agree; for rows other code wrote
    piecewise, the newest write decides.
    """
    best: int | None = None
    ttl = 0
    for wt, t in zip(writetimes, ttls):
        if wt is not None and (best is None or wt > best):
            best, ttl = wt, t or 0
    return best, ttl


class RejectSink:
    """Rejected rows as JSON lines (key, reason, detail, the raw row): replayable."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, key: Any, reject: Reject, row: tuple[Any, ...], writetime: int | None, ttl: int) -> None:
        if self._stream is None:
            return
        vector = row[1]
        record = {
            "key": str(key),
            "reason": reject.reason,
            "detail": reject.detail,
            "row": {
                "document_id": str(row[0]),
                "embedding_vector_b64": base64.b64encode(vector).decode() if vector is not None else None,
                "document": row[2],
                "metadata_blob": row[3],
                "writetime": writetime,
                "ttl": ttl,
            },
        }
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")


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
    ) -> None:
        self.options = options
        self.source = source_session
        self.target = target_session
        self.rejects = rejects
        self.rate = rate or RateLimiter(0)
        self.transformer = Transformer(
            cassio_table(target_session, options.target, provision=False),
            key_to_text=options.key_to_text,
            wrap_key=options.wrap_key,
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
            self.source, self.select, (r.start, r.end), self.options.page_size, self.options.retry_seconds, stop
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
        per_range = max(1, self.options.concurrency)
        window = None if self.options.dry_run else WriteWindow(self.target, per_range, self.options.retry_seconds)
        values_of = self.transformer.values
        insert = self.insert
        read = written = rejected = skipped = nbytes = 0
        for page in self.pages(r, stop):
            for row in page:
                read += 1
                ts, ttl = newest_write(row[4:7], row[7:10])
                if ts is None:
                    self.rejects.write(row[0], Reject("no_values", "every value column is NULL"), row, ts, ttl)
                    rejected += 1
                    continue
                if skip_before_us is not None and ts < skip_before_us:
                    skipped += 1
                    continue
                values = values_of(row[0], row[1], row[2], row[3])
                if isinstance(values, Reject):
                    self.rejects.write(row[0], values, row, ts, ttl)
                    rejected += 1
                    continue
                nbytes += len(row[1] or b"") + len(row[2] or "") + len(row[3] or "")
                written += 1
                if window is not None:
                    self.rate.acquire()
                    window.submit(insert, (*values, ts, ttl))
            if progress:
                progress(len(page))
            if stop.is_set():
                break
        if window is not None:
            window.drain()
        if stop.is_set():
            return None
        return RangeResult(
            r.start, r.end, read, written, rejected, skipped, nbytes, time.monotonic() - started, worker_name()
        )


def scan_pages(
    session: Session,
    statement: PreparedStatement,
    params: tuple[Any, ...],
    page_size: int,
    retry_seconds: float,
    stop: threading.Event,
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
                    raise FatalError(f"reading the source failed after retries: {type(exc).__name__}: {exc}") from None
                size = max(MIN_PAGE, size // 2)
                time.sleep(min(10.0, 0.2 * 2**attempt))
                attempt += 1
        yield result.current_rows
        paging_state = result.paging_state
        if paging_state is None:
            return
