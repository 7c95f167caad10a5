"""Migrate a legacy cassio 0.0.x vector table to the cassio 0.1.x layout, or verify it.

python migrate.py            copy (resumes an unfinished pass; after a completed one,
                             starts a new pass that catches the rows written since)
python migrate.py --verify   compare every source row with its target row
"""

from __future__ import annotations

from typing import Any

import click

from cassio_migration.cli import Console, run, setting_options
from cassio_migration.errors import EXIT_OK, EXIT_REJECTS, UsageError
from cassio_migration.report import write_json
from cassio_migration.workflow import migrate, replay, verify
from settings import FLAGGED, load_settings


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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no progress lines; only the summary and errors.")
@setting_options(FLAGGED)
def main(
    do_verify: bool,
    delete_extra: bool,
    replay_file: str | None,
    dry_run: bool,
    restart: bool,
    full: bool,
    report_file: str | None,
    quiet: bool,
    **flags: Any,
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
        job = settings.job()
        options = settings.run_options(
            dry_run=dry_run, restart=restart, full=full, quiet=quiet, delete_extra=delete_extra
        )
        if delete_extra and not do_verify:
            raise UsageError("--delete-extra goes with --verify")
        if do_verify:
            result = verify(job, options, console.info)
            console.out(result.lines())
            data = result.as_dict()
            code = EXIT_OK if result.clean else EXIT_REJECTS
        else:
            if replay_file:
                summary = replay(job, options, replay_file, console.info)
            else:
                summary = migrate(job, options, console.info)
            console.out(summary.lines())
            data = summary.as_dict()
            code = EXIT_OK if not summary.pass_rows_rejected else EXIT_REJECTS
        if report_file:
            write_json(report_file, data)
        return code

    run(body, Console(quiet=quiet))


if __name__ == "__main__":
    main()
