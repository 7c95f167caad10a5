"""(d) The client ceiling (benchmark only): migrate.py's own copy, into a target the node does not index.

On this machine the node's vector indexing (~11 ms of CPU a row at 1536 dimensions) is the
limit of every program. To see how fast the client itself goes where the database keeps up
(Astra DB, a large cluster), this runs the very code of `python migrate.py` (settings, plan,
state, transform, write window, report) into a target table with the target's columns but
without its two SAI indexes. Such a table is no migration result: it exists only here.

python -m bench.client_ceiling --report FILE   (settings from the environment, as migrate.py)
"""

from __future__ import annotations

import argparse
from typing import Any

from cassandra.cluster import Session

from cassio_migration import workflow
from cassio_migration.connect import DDL_TIMEOUT_S
from cassio_migration.cql import quote
from cassio_migration.report import write_json
from cassio_migration.target import TargetSpec, prepare_target
from settings import load_settings


def without_indexes(session: Session, spec: TargetSpec, *, create: bool) -> Any:
    """The target as cassio creates it, then its SAI indexes dropped; never created again."""
    table = prepare_target(session, spec, create=create)
    rows = session.execute(
        "SELECT index_name FROM system_schema.indexes WHERE keyspace_name = %s AND table_name = %s",
        (spec.keyspace, spec.table),
    )
    for row in rows:
        session.execute(f"DROP INDEX IF EXISTS {quote(spec.keyspace)}.{quote(row.index_name)}", timeout=DDL_TIMEOUT_S)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description="(d) migrate.py's copy into an unindexed target: the client ceiling")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    settings = load_settings(dotenv_path=None)
    job = settings.job()
    # The one change to migrate.py's path: the target loses its indexes before the copy.
    workflow.prepare_target = without_indexes
    summary = workflow.migrate(job, settings.run_options(quiet=True), lambda line: None)
    write_json(args.report, summary.as_dict())


if __name__ == "__main__":
    main()
