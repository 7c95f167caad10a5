"""What the benchmark asks of the node: drops, row counts, waiting until it is idle."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cassandra.cluster import Session

from cassio_migration.connect import DDL_TIMEOUT_S, schema_change
from cassio_migration.cql import qualified, quote
from cassio_migration.job import ConnectionSpec
from cassio_migration.legacy import create_index_cql, create_table_cql
from cassio_migration.retry import RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
# Background work that competes with the next program for the node's CPU (with compactions).
FLUSH_POOLS = ("MemtableFlushWriter", "MemtablePostFlush", "PerDiskMemtableFlushWriter_0")
# A node busy flushing and compacting vector indexes may take minutes over a schema change: try again.
DDL = RetryPolicy(600.0, hint="")


def ddl(session: Session, cql: str) -> None:
    schema_change(session, cql, DDL)


def release_version(session: Session) -> str:
    row = session.execute("SELECT release_version FROM system.local").one()
    return str(row.release_version) if row else "unknown"


def node_pids(spec: ConnectionSpec) -> list[int]:
    """The pids of the nodes scripts/cassandra.sh or scripts/cluster.sh started on this machine on the
    port we connect to ([] if none: the node is elsewhere)."""
    if spec.is_astra or set(spec.contact_points) - {"127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost"}:
        return []
    work = Path(os.environ.get("CASSANDRA_WORKDIR", ROOT / ".cassandra"))
    files = [
        work / f"node-{spec.port}" / "cassandra.pid",
        *sorted(work.glob(f"cluster-{spec.port}/node*/cassandra.pid")),
    ]
    pids = []
    for path in files:
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        if os.path.exists(f"/proc/{pid}"):
            pids.append(pid)
    return pids


def drop_keyspace(session: Session, keyspace: str) -> None:
    ddl(session, f"DROP KEYSPACE IF EXISTS {quote(keyspace)}")


def create_source(session: Session, keyspace: str, table: str, dimension: int) -> None:
    """The legacy table as create.py makes it (it then finds it there), but never compacted.

    The source is only read: compacting it rebuilds its vector graph, minutes of node CPU on
    2 cores that would land inside whichever program runs then, for a few SSTables fewer to scan.
    """
    no_compaction = " WITH compaction = {'class': 'SizeTieredCompactionStrategy', 'enabled': 'false'}"
    ddl(session, create_table_cql(keyspace, table, "uuid", dimension) + no_compaction)
    ddl(session, create_index_cql(keyspace, table))


def table_exists(session: Session, keyspace: str, table: str) -> bool:
    found = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s", (keyspace, table)
    )
    return found.one() is not None


def drop_table(session: Session, keyspace: str, table: str) -> None:
    """Drop and make sure it is gone: a leftover would make the next program append to old rows."""
    ddl(session, f"DROP TABLE IF EXISTS {qualified(keyspace, table)}")
    deadline = time.monotonic() + DDL_TIMEOUT_S
    while table_exists(session, keyspace, table):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{keyspace}.{table} is still there {DDL_TIMEOUT_S:.0f} s after DROP TABLE")
        time.sleep(0.5)


def count_rows(session: Session, keyspace: str, table: str, key: str) -> int:
    """Rows by a paged scan of the key alone: COUNT(*) times out on large tables."""
    statement = session.prepare(f"SELECT {quote(key)} FROM {qualified(keyspace, table)}")
    statement.fetch_size = 5000
    return sum(1 for _ in session.execute(statement, timeout=DDL_TIMEOUT_S))


def busy_tasks(session: Session, keyspace: str) -> int:
    """Flushes anywhere (short) and compactions of our keyspace; other keyspaces' compactions are not ours to wait for."""
    pools = session.execute("SELECT name, active_tasks, pending_tasks FROM system_views.thread_pools")
    flushes: int = sum(r.active_tasks + r.pending_tasks for r in pools if r.name in FLUSH_POOLS)
    ours = session.execute("SELECT kind FROM system_views.sstable_tasks WHERE keyspace_name = %s", (keyspace,))
    return flushes + len(list(ours))


def wait_idle(session: Session, keyspace: str, timeout_s: float = 300.0) -> float:
    """Wait until no flush and none of our compactions runs (twice in a row); the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - started < timeout_s:
        quiet = quiet + 1 if busy_tasks(session, keyspace) == 0 else 0
        time.sleep(0.5)
    return time.monotonic() - started


def flush(session: Session, keyspace: str, table: str) -> None:
    """Flush a table's memtable without nodetool (no JMX here): a short periodic flush, then none.

    Else the source's memtable is flushed (and its vector graph written) inside whichever
    program happens to fill the node's memtable space first.
    """
    name = qualified(keyspace, table)
    ddl(session, f"ALTER TABLE {name} WITH memtable_flush_period_in_ms = 1000")
    try:
        time.sleep(2.5)  # the flush is scheduled within one period
        wait_idle(session, keyspace, timeout_s=1200.0)
    finally:
        ddl(session, f"ALTER TABLE {name} WITH memtable_flush_period_in_ms = 0")
