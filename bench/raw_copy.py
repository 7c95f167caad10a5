"""(c) The raw-copy ceiling: the legacy table into a second legacy-layout table, no transformation.

Every trick at once: token-range scans in parallel threads (and processes), vectors kept as
wire bytes, tuple rows, one prepared INSERT, many writes in flight. What this reaches is what
the node can take on this machine; a migration cannot be faster.

python -m bench.raw_copy --keyspace K --source legacy --target T --report FILE [--procs N ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from cassio_migration.connect import close_session, open_session, prepare_raw
from cassio_migration.cql import qualified
from cassio_migration.inflight import WriteWindow
from cassio_migration.job import ConnectionSpec
from cassio_migration.legacy import LEGACY_COLUMNS, create_index_cql, create_table_cql, describe_source
from cassio_migration.plan import TokenRange, make_plan, ring_tokens
from cassio_migration.report import write_json
from cassio_migration.retry import RetryPolicy
from cassio_migration.scan import scan_pages
from settings import load_settings

POLICY = RetryPolicy(120.0)


@dataclass(frozen=True)
class Job:
    """One process's share: plain data, so that it crosses a process boundary."""

    spec: ConnectionSpec
    keyspace: str
    source: str
    target: str
    ranges: tuple[TokenRange, ...]
    threads: int
    window: int
    page_size: int


def statements(session: Session, job: Job) -> tuple[PreparedStatement, PreparedStatement]:
    columns = ", ".join(LEGACY_COLUMNS)
    select = prepare_raw(
        session,
        f"SELECT {columns} FROM {qualified(job.keyspace, job.source)}"
        " WHERE token(document_id) > ? AND token(document_id) <= ?",
    )
    insert = prepare_raw(
        session,
        f"INSERT INTO {qualified(job.keyspace, job.target)} ({columns}) VALUES ({', '.join('?' * len(LEGACY_COLUMNS))})",
    )
    return select, insert


def run_job(job: Job) -> tuple[int, int]:
    """Copy the job's ranges; (rows copied, writes retried)."""
    session = open_session(job.spec, raw=True)
    try:
        select, insert = statements(session, job)
        # One window for all threads: the node sees `window` writes in flight per process.
        window = WriteWindow(session, job.window, POLICY)
        stop = threading.Event()

        def copy_range(r: TokenRange) -> int:
            rows = 0
            for page in scan_pages(session, select, (r.start, r.end), job.page_size, POLICY, stop):
                for row in page:  # (document_id, vector bytes, document, metadata_blob): the INSERT's binds
                    window.submit(insert, row)
                rows += len(page)
            return rows

        with ThreadPoolExecutor(job.threads, thread_name_prefix="range") as pool:
            copied = sum(pool.map(copy_range, job.ranges))
        window.drain()
        return copied, window.retries
    finally:
        close_session(session)


def prepare(spec: ConnectionSpec, keyspace: str, source_table: str, target: str, ranges: int) -> list[TokenRange]:
    """Create the target as the source is (table and vector index); the plan of token ranges."""
    session = open_session(spec)
    try:
        source = describe_source(session, keyspace, source_table)
        session.execute(create_table_cql(keyspace, target, source.key_type, source.dimension))
        session.execute(create_index_cql(keyspace, target))
        return make_plan(ring_tokens(session), ranges)
    finally:
        close_session(session)


def copy(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    spec = load_settings(dotenv_path=None).connection()
    ranges = prepare(spec, args.keyspace, args.source, args.target, args.ranges)
    jobs = [
        Job(
            spec,
            args.keyspace,
            args.source,
            args.target,
            tuple(ranges[i :: args.procs]),
            args.threads,
            args.window,
            args.page_size,
        )
        for i in range(args.procs)
    ]
    if args.procs == 1:
        results = [run_job(jobs[0])]
    else:
        # spawn, not fork: a forked driver's event loop and sockets are not safe to reuse.
        with multiprocessing.get_context("spawn").Pool(args.procs) as pool:
            results = pool.map(run_job, jobs)
    elapsed = time.monotonic() - started
    return {
        "rows_written": sum(r[0] for r in results),
        "write_retries": sum(r[1] for r in results),
        "elapsed_s": elapsed,
        "ranges": len(ranges),
        "procs": args.procs,
        "threads": args.threads,
        "window": args.window,
        "page_size": args.page_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="(c) the raw-copy ceiling")
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--procs", type=int, default=1, help="processes, each with its own connection")
    parser.add_argument("--threads", type=int, default=4, help="token ranges scanned at once per process")
    parser.add_argument("--window", type=int, default=16, help="writes in flight per process")
    parser.add_argument("--ranges", type=int, default=64, help="token ranges in the plan")
    parser.add_argument("--page-size", type=int, default=500, help="rows per page of a range scan")
    args = parser.parse_args()
    write_json(args.report, copy(args))


if __name__ == "__main__":
    main()
