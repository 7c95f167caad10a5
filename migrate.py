"""Migrate a legacy cassio 0.0.x vector table to the cassio 0.1.x layout, or verify it.

python migrate.py            copy (resumes an unfinished pass; after a completed one,
                             starts a new pass that catches the rows written since)
python migrate.py --verify   compare every source row with its target row
"""

from __future__ import annotations

import click

from cassio_migration.cli import Console, run
from cassio_migration.errors import EXIT_OK, EXIT_REJECTS, UsageError
from cassio_migration.report import write_json
from cassio_migration.workflow import migrate, replay, verify
from settings import load_settings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--verify",
    "do_verify",
    is_flag=True,
    help="Compare source and target instead of copying; exit 1 on missing or different rows.",
)
@click.option("--dry-run", is_flag=True, help="Read and transform every row, write nothing, report what would happen.")
@click.option(
    "--restart",
    is_flag=True,
    help="Discard the saved state of this target (also one left by a different job) and start over.",
)
@click.option(
    "--full", is_flag=True, help="Copy every row again, not only those written since the last completed pass."
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False),
    help="Also write the closing summary as JSON to this file.",
)
@click.option(
    "--delete-extra",
    is_flag=True,
    help="With --verify: delete target rows the source no longer has, if the migration wrote them (never rows the application wrote after the cutover).",
)
@click.option(
    "--replay",
    "replay_file",
    type=click.Path(dir_okay=False),
    help="Migrate the rows of a rejects file (fix them in the file first) instead of scanning the source.",
)
@click.option(
    "--max-errors",
    help="Rejected rows allowed before the run stops with exit 3 (state saved): a count (100) or a share (0.5%%). [MIGRATION_MAX_ERRORS]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no progress lines; only the summary and errors.")
@click.option(
    "--key-type",
    "target_key_type",
    help="Target key type: same (as the source) or text (UUID keys become their string form). [TARGET_KEY_TYPE]",
)
@click.option(
    "--metadata-indexing",
    help="Which metadata keys cassio indexes: all, none, allow:k1,k2 or deny:k1,k2. [METADATA_INDEXING]",
)
@click.option(
    "--wrap-metadata",
    "metadata_wrap_key",
    metavar="KEY",
    help="Migrate non-object or malformed metadata_blob values as {KEY: value} instead of rejecting them. [METADATA_WRAP_KEY]",
)
@click.option(
    "--partition-id",
    metavar="VALUE",
    help="Vector tables: write a ClusteredMetadataVectorCassandraTable, every row in partition VALUE. [TARGET_PARTITION_ID]",
)
@click.option(
    "--partition-field",
    metavar="KEY",
    help="Vector tables: write a ClusteredMetadataVectorCassandraTable, each row in the partition named by its metadata KEY. [TARGET_PARTITION_FIELD]",
)
@click.option("--concurrency", help="Writes in flight in all. [MIGRATION_CONCURRENCY]")
@click.option("--parallel-ranges", help="Token ranges copied at once. [MIGRATION_PARALLEL_RANGES]")
@click.option(
    "--splits", help="Number of token ranges in the plan; 0 = from the table's size estimate. [MIGRATION_SPLITS]"
)
@click.option("--page-size", help="Rows per page of the source scan. [MIGRATION_PAGE_SIZE]")
@click.option("--rate-limit", help="At most this many rows written per second; 0 = no limit. [MIGRATION_RATE_LIMIT]")
@click.option(
    "--workers",
    help="Copy (or verify) on N local worker processes (a local Dask cluster); 0 = in this process. [MIGRATION_WORKERS]",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run the range tasks on the workers of the Dask cluster at ADDRESS (tcp://HOST:8786); workers read"
    " CASSANDRA_PASSWORD / ASTRA_DB_APPLICATION_TOKEN (and their TARGET_ twins) from their own environment."
    " [DASK_SCHEDULER_ADDRESS]",
)
def main(
    do_verify: bool,
    delete_extra: bool,
    replay_file: str | None,
    dry_run: bool,
    restart: bool,
    full: bool,
    report_file: str | None,
    quiet: bool,
    **flags: str | None,
) -> None:
    """Migrate OLD_TABLE (cassio 0.0.x layout) into TARGET_TABLE (cassio 0.1.x layout).

    Settings come from the environment and .env (see template.env); flags override them.
    Exit codes: 0 done, nothing rejected (verify: clean); 1 done with rejected rows
    (verify: missing or different rows); 2 bad settings or usage; 3 fatal error;
    130 interrupted (state saved: run again to resume).
    """

    def body(console: Console) -> int:
        settings = load_settings()
        console.secrets = settings.secrets()
        settings = settings.override(**flags)
        options = settings.job_options(
            dry_run=dry_run, restart=restart, full=full, quiet=quiet, delete_extra=delete_extra
        )
        if delete_extra and not do_verify:
            raise UsageError("--delete-extra goes with --verify")
        if do_verify:
            result = verify(settings.clusters(), options, console.info)
            console.out(result.lines())
            data = result.as_dict()
            code = EXIT_OK if result.clean else EXIT_REJECTS
        else:
            if replay_file:
                summary = replay(settings.clusters(), options, replay_file, console.info)
            else:
                summary = migrate(settings.clusters(), options, console.info)
            console.out(summary.lines())
            data = summary.as_dict()
            code = EXIT_OK if not summary.pass_rows_rejected else EXIT_REJECTS
        if report_file:
            write_json(report_file, data)
        return code

    run(body, Console(quiet=quiet))


if __name__ == "__main__":
    main()
