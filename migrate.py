"""Migrate a legacy cassio 0.0.x table to the cassio 0.1.x layout, verify it, follow it, clean up after it.

python migrate.py --dry-run  what a copy would do, writing nothing
python migrate.py            copy (resumes an unfinished pass; after a completed one,
                             starts a new pass that catches the rows written since)
python migrate.py --verify   compare every source row with its target row
python migrate.py --status   how far the job is, from its state tables
python migrate.py --cleanup  remove the finished job's state
"""

from __future__ import annotations

from typing import Any

import click

from cassio_migration import __version__
from cassio_migration.cli import Command, Console, confirm, run, setting_options
from cassio_migration.errors import EXIT_OK, EXIT_REJECTS, UsageError
from cassio_migration.preflight import check_output_paths, check_rejects_file
from cassio_migration.report import append_log, write_json
from cassio_migration.status import cleanup, job_status
from cassio_migration.workflow import migrate, replay, verify
from settings import FLAGGED, load_settings

GROUPS = [
    (
        "What to do (a copy, unless one of these)",
        ["dry_run", "do_verify", "delete_extra", "replay_file", "status", "cleanup_state", "restart", "full", "yes"],
    ),
    (
        "What to migrate",
        [
            "old_table",
            "target_table",
            "target_framework",
            "target_key_type",
            "metadata_indexing",
            "metadata_wrap_key",
            "partition_id",
            "partition_field",
        ],
    ),
    ("How to connect", ["env_file", "keyspace"]),
    (
        "How the copy runs",
        [
            "concurrency",
            "batch_rows",
            "parallel_ranges",
            "page_size",
            "splits",
            "rate_limit",
            "max_errors",
            "workers",
            "scheduler",
        ],
    ),
    ("Output", ["report_file", "quiet", "version", "help"]),
]

# What each action is, and the flags it would ignore or contradict: refused before connecting.
ACTIONS = {
    "--status": (
        "only reads the job's state",
        ["--cleanup", "--verify", "--replay", "--dry-run", "--restart", "--full", "--delete-extra"],
    ),
    "--cleanup": (
        "only removes the job's state",
        ["--verify", "--replay", "--dry-run", "--restart", "--full", "--delete-extra"],
    ),
    "--verify": ("compares the tables and copies nothing", ["--replay", "--restart", "--full"]),
    "--replay": ("copies the rows of its file, not the source's", ["--restart", "--full"]),
    "--dry-run": ("writes nothing, the job's state included", ["--restart", "--full"]),
}


def check_combination(given: set[str]) -> None:
    for action, (what, excluded) in ACTIONS.items():
        clash = next((flag for flag in excluded if flag in given), None)
        if action in given and clash:
            raise UsageError(f"{action} and {clash} do not go together: {action} {what}")
    if "--delete-extra" in given and "--verify" not in given:
        raise UsageError("--delete-extra goes with --verify: it deletes the extra rows a verification finds")
    if {"--verify", "--dry-run"} <= given and "--delete-extra" not in given:
        raise UsageError(
            "--verify and --dry-run do not go together: --verify compares the tables and writes nothing"
            " (--verify --delete-extra --dry-run counts the rows it would delete)"
        )


@click.command(
    cls=Command,
    groups=GROUPS,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 110},
)
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
    help="Discard the saved state of this target (also one left by a different job) and start over (asks first).",
)
@click.option(
    "--full", is_flag=True, help="Copy every row again, not only those written since the last completed pass."
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False),
    help="Also write the closing summary (or --status) as JSON to this file.",
)
@click.option(
    "--delete-extra",
    is_flag=True,
    help="With --verify: delete target rows the source no longer has, if the migration wrote them (never rows the application wrote after the cutover; asks first).",
)
@click.option(
    "--replay",
    "replay_file",
    type=click.Path(dir_okay=False),
    help="Migrate the rows of a rejects file (fix them in the file first) instead of scanning the source.",
)
@click.option(
    "--status",
    is_flag=True,
    help="Show the job's passes, ranges done/running/left, rows, rate, time left and the last run's outcome, from its state tables (safe while a run goes on).",
)
@click.option(
    "--cleanup",
    "cleanup_state",
    is_flag=True,
    help="Remove the finished job's state (the state tables too when no other job uses them; asks first).",
)
@click.option(
    "--yes", "-y", is_flag=True, help="Answer yes to the question before --restart, --delete-extra, --cleanup."
)
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read the settings from this file instead of ./.env (environment variables still win).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no progress lines; only the summary and errors.")
@click.version_option(__version__, "--version", prog_name="migrate.py", message="%(prog)s %(version)s")
@setting_options(FLAGGED)
def main(
    do_verify: bool,
    delete_extra: bool,
    replay_file: str | None,
    status: bool,
    cleanup_state: bool,
    dry_run: bool,
    restart: bool,
    full: bool,
    yes: bool,
    env_file: str | None,
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
    actions = {"--verify": do_verify, "--delete-extra": delete_extra, "--replay": bool(replay_file), "--status": status}
    actions |= {"--cleanup": cleanup_state, "--dry-run": dry_run, "--restart": restart, "--full": full}
    given = {flag for flag, on in actions.items() if on}

    def body(console: Console) -> int:
        check_combination(given)
        if replay_file:
            check_rejects_file(replay_file)
        settings = load_settings(dotenv_path=env_file or ".env")
        console.secrets = settings.secrets()
        settings = settings.override(**flags)
        job = settings.job()
        options = settings.run_options(
            dry_run=dry_run, restart=restart, full=full, quiet=quiet, delete_extra=delete_extra
        )
        runs_somewhere = not (status or cleanup_state)  # the copy, --verify and --replay write a run folder
        check_output_paths(settings.runs_dir if runs_somewhere else None, report_file)
        target = f"{job.target_ks}.{job.target_table}"
        if restart:
            confirm(f"--restart discards the saved progress of {target}", yes)
        if delete_extra:
            confirm(f"--delete-extra deletes the rows of {target} that the source no longer has", yes)
        folder = None
        if status:
            state = job_status(job)
            text, data, code = state.lines(), state.as_dict(), EXIT_OK
        elif cleanup_state:
            confirm(f"--cleanup removes the migration state of {target}", yes)
            text = cleanup(job)
            data, code = {"target": target, "cleanup": text}, EXIT_OK
        elif do_verify:
            result = verify(job, options, console.info)
            text, data, folder = result.lines(), result.as_dict(), result.run_folder
            code = EXIT_OK if result.clean else EXIT_REJECTS
        else:
            if replay_file:
                summary = replay(job, options, replay_file, console.info)
            else:
                summary = migrate(job, options, console.info)
            text, data, folder = summary.lines(), summary.as_dict(), summary.run_folder
            code = EXIT_OK if not summary.pass_rows_rejected else EXIT_REJECTS
        console.out(text)
        if folder:  # the summary closes the run's log as it closes its output
            append_log(folder, console.scrub(text))
        if report_file:
            write_json(report_file, data)
        return code

    run(body, Console(quiet=quiet))


if __name__ == "__main__":
    main()
