"""(a) The original scripts' approach: one plain full scan, cassio 0.1.x VectorTable.put_async in groups of 100.

python -m bench.original --keyspace K --source legacy --target T --dimension D --report FILE
Connection settings come from the environment (CASSANDRA_CONTACT_POINTS, CASSANDRA_PORT, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session
from cassio.vector import VectorTable

from cassio_migration.connect import close_session, open_session
from cassio_migration.cql import qualified
from cassio_migration.report import write_json
from settings import load_settings

GROUP = 100  # writes sent before waiting for all of them, as the original scripts did


def metadata_of(blob: str | None) -> dict[str, Any] | None:
    """The row's metadata, or None for a row the original scripts skipped."""
    try:
        value = json.loads(blob) if blob is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class Progress:
    written: int = 0
    skipped: int = 0
    error: str = ""


def open_table(session: Session, args: argparse.Namespace) -> VectorTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # VectorTable is the legacy entry point on purpose
        return VectorTable(
            session=session,
            keyspace=args.keyspace,
            table=args.target,
            embedding_dimension=args.dimension,
            primary_key_type="UUID",
        )


def copy_rows(session: Session, table: VectorTable, args: argparse.Namespace, progress: Progress) -> None:
    # Plain CQL as the original: driver default paging, named-tuple rows, vectors as float lists.
    rows = session.execute(
        f"SELECT document_id, embedding_vector, document, metadata_blob FROM {qualified(args.keyspace, args.source)}"
    )
    pending: list[Any] = []
    for row in rows:
        metadata = metadata_of(row.metadata_blob)
        if metadata is None:
            progress.skipped += 1
            continue
        # cassio 0.1.x's VectorTable keeps the 0.0.x argument names (document, embedding_vector, document_id).
        pending.append(
            table.put_async(
                document=row.document,
                embedding_vector=row.embedding_vector,
                document_id=row.document_id,
                metadata=metadata,
            )
        )
        if len(pending) == GROUP:
            progress.written += wait_all(pending)
    progress.written += wait_all(pending)


def wait_all(pending: list[Any]) -> int:
    """Wait for every future of a group (the first failure raises, as in the original); how many."""
    for future in pending:
        future.result()
    done = len(pending)
    pending.clear()
    return done


def copy(args: argparse.Namespace) -> dict[str, Any]:
    """The copy, and how far it got: the original stops at the first failed write (no retry)."""
    started = time.monotonic()
    progress = Progress()
    session = open_session(load_settings(dotenv_path=None).connection())
    try:
        copy_rows(session, open_table(session, args), args, progress)
    except Exception as exc:  # reported with the rows done so far, so that its speed until then is known
        progress.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        close_session(session)
    elapsed = time.monotonic() - started
    return {
        "rows_written": progress.written,
        "rows_skipped": progress.skipped,
        "error": progress.error,
        "elapsed_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="(a) the original scripts' copy approach")
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--dimension", type=int, required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    report = copy(args)
    write_json(args.report, report)
    if report["error"]:
        sys.exit(f"error: {report['error']}")


if __name__ == "__main__":
    main()
