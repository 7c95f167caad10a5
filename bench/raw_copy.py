"""(c) The raw-copy ceiling: the same writes as migrate.py, with the least a client can do around them.

The target is created as migrate.py creates it (cassio's MetadataVectorCassandraTable: the same
columns and the same two SAI indexes), and every row gets the values migrate.py writes (its
transform, with the source's write time and TTL). Around the writes, nothing else: no state
table, no rejects file, no error budget, no progress. Token-range scans in parallel threads
(and processes), vectors as wire bytes, tuple rows, many writes in flight. What this reaches
is what the node can take for this work; a migration cannot be faster.

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

from cassio_migration.connect import close_session, open_session, prepare_raw
from cassio_migration.cql import qualified
from cassio_migration.inflight import Pace, WriteWindow
from cassio_migration.job import Clusters, ConnectionSpec, Job
from cassio_migration.legacy import LegacyTable, describe_source
from cassio_migration.plan import TokenRange, make_plan, ring_tokens
from cassio_migration.report import write_json
from cassio_migration.retry import RetryPolicy
from cassio_migration.scan import newest_write, scan_pages, source_select
from cassio_migration.target import TargetSpec, prepare_target, target_spec
from cassio_migration.transform import Reject, transformer_for
from settings import load_settings

POLICY = RetryPolicy(120.0)


@dataclass(frozen=True)
class Share:
    """One process's share: plain data, so that it crosses a process boundary."""

    spec: ConnectionSpec
    source: LegacyTable
    target: TargetSpec
    ranges: tuple[TokenRange, ...]
    threads: int
    window: int
    page_size: int


def run_share(share: Share) -> tuple[int, int]:
    """Copy the share's ranges; (rows copied, writes retried)."""
    session = open_session(share.spec, raw=True)
    try:
        transformer = transformer_for(share.target, session)
        columns = transformer.columns
        select = prepare_raw(session, source_select(share.source), POLICY)
        insert = prepare_raw(
            session,
            f"INSERT INTO {qualified(share.target.keyspace, share.target.table)} ({', '.join(columns)})"
            f" VALUES ({', '.join('?' * len(columns))}) USING TIMESTAMP ? AND TTL ?",
            POLICY,
        )
        width, nvalues = len(share.source.layout.columns), len(share.source.layout.values)
        # One window for all threads: the node sees `window` writes in flight per process.
        window = WriteWindow(session, Pace(share.window), POLICY)
        stop = threading.Event()

        def copy_range(r: TokenRange) -> int:
            rows = 0
            for page in scan_pages(session, select, (r.start, r.end), share.page_size, POLICY, stop):
                for row in page:
                    ts, ttl = newest_write(row, width, nvalues)
                    values = transformer.values(*row[:width])
                    if ts is not None and not isinstance(values, Reject):
                        window.submit(insert, (*values, ts, ttl))
                        rows += 1
            return rows

        with ThreadPoolExecutor(share.threads, thread_name_prefix="range") as pool:
            copied = sum(pool.map(copy_range, share.ranges))
        window.drain()
        return copied, window.retries
    finally:
        close_session(session)


def prepare(
    spec: ConnectionSpec, keyspace: str, source_table: str, target: str, ranges: int
) -> tuple[Share, list[TokenRange]]:
    """The target, created as migrate.py creates it; the plan of token ranges."""
    session = open_session(spec)
    try:
        source = describe_source(session, keyspace, source_table)
        target_of = target_spec(source, Job(Clusters(spec), keyspace, source_table, target))
        prepare_target(session, target_of, create=True)
        plan = make_plan(ring_tokens(session), ranges)
        return Share(spec, source, target_of, (), 0, 0, 0), plan
    finally:
        close_session(session)


def copy(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    spec = load_settings(dotenv_path=None).connection()
    base, ranges = prepare(spec, args.keyspace, args.source, args.target, args.ranges)
    shares = [
        Share(spec, base.source, base.target, tuple(ranges[i :: args.procs]), args.threads, args.window, args.page_size)
        for i in range(args.procs)
    ]
    if args.procs == 1:
        results = [run_share(shares[0])]
    else:
        # spawn, not fork: a forked driver's event loop and sockets are not safe to reuse.
        with multiprocessing.get_context("spawn").Pool(args.procs) as pool:
            results = pool.map(run_share, shares)
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
    parser.add_argument("--window", type=int, default=128, help="writes in flight per process")
    parser.add_argument("--ranges", type=int, default=64, help="token ranges in the plan")
    parser.add_argument("--page-size", type=int, default=500, help="rows per page of a range scan")
    args = parser.parse_args()
    write_json(args.report, copy(args))


if __name__ == "__main__":
    main()
