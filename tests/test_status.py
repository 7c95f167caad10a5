"""Following a run on the real node: progress lines off a terminal, run.log, `--status` during and after
a migration (from another process), and `--cleanup` after it."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

from cassandra.cluster import Session

from cassio_migration.errors import EXIT_OK, EXIT_USAGE
from tests.helpers import Result, one_error_line, read_report, start_migration, wait_for_ranges

PROGRESS = re.compile(
    r"^progress: ranges \d+/\d+, rows [\d,]+(/~[\d,]+ \(\d+%\))?, [\d,]+ rows/s, ETA (\d+ (s|min|h)|unknown)"
)
PASSWORD = "pw-Secr3t-followme"


def state_tables(session: Session, keyspace: str) -> set[str]:
    rows = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    return {r.table_name for r in rows if r.table_name.startswith("cassio_migration_")}


def test_progress_lines_and_run_log_when_output_is_a_file(bundle: Callable[..., Result], tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "3000", "--quiet").code == 0
    # Credentials the node does not ask for: they must reach neither the output nor run.log.
    secrets = {"CASSANDRA_USERNAME": "someone", "CASSANDRA_PASSWORD": PASSWORD, "MIGRATION_PROGRESS_SECONDS": "1"}
    result = bundle("migrate.py", "--splits", "16", "--rate-limit", "600", **secrets)
    assert result.code == EXIT_OK, result.out + result.err
    lines = [line for line in result.out.splitlines() if line.startswith("progress:")]
    assert len(lines) >= 2, result.out
    assert all(PROGRESS.match(line) for line in lines), lines
    with_eta = [line for line in lines if re.search(r"ETA \d", line)]
    assert with_eta, lines
    print("\n".join(with_eta))  # quoted in the report: a line a CI log shows
    [log] = (tmp_path / "runs").glob("*-migrate-migrated/run.log")
    text = log.read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("source ") and re.search(r"pass 1: \d+ ranges", text)
    assert [line for line in text.splitlines() if line.startswith("progress:")] == lines
    assert "rows written                         3,000" in text  # the closing summary too
    assert PASSWORD not in text + result.out + result.err


def test_quiet_run_keeps_its_progress_in_run_log(bundle: Callable[..., Result], tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "1000", "--quiet").code == 0
    result = bundle("migrate.py", "--quiet", "--splits", "16", "--rate-limit", "300", MIGRATION_PROGRESS_SECONDS="1")
    assert result.code == EXIT_OK and "progress:" not in result.out
    [log] = (tmp_path / "runs").glob("*-migrate-migrated/run.log")
    assert [line for line in log.read_text().splitlines() if PROGRESS.match(line)]


def test_status_during_and_after_a_migration(
    bundle: Callable[..., Result], session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "3000", "--quiet").code == 0
    migration = start_migration(keyspace, tmp_path, "--splits", "16", "--rate-limit", "250")
    try:
        wait_for_ranges(session, keyspace, migration, 2)
        during = bundle("migrate.py", "--status", "--report", str(tmp_path / "during.json"))
        cleanup = bundle("migrate.py", "--cleanup", "--yes")
    finally:
        out, err = migration.communicate(timeout=300)
    assert migration.returncode == EXIT_OK, out + err
    assert during.code == EXIT_OK, during.out + during.err
    data = read_report(tmp_path / "during.json")
    assert data["pass_status"] == "running" and data["pass_number"] == 1
    [current] = data["passes"]
    ranges = current["ranges"]  # 16 splits, and a cut at each of the ring's tokens they straddle
    assert ranges >= 16 and 2 <= current["ranges_done"] < ranges
    assert current["ranges_done"] + current["ranges_running"] + current["ranges_left"] == ranges
    assert 0 < current["rows_read"] < 3000 and data["rows_per_s"] > 0 and data["eta_s"] is not None
    running = f"pass 1 running now: process {migration.pid} on {socket.gethostname()} holds the job"
    assert data["outcome"].startswith(running)
    text = " ".join(during.out.split())
    assert f"target {keyspace}.migrated" in text and running in text
    assert re.search(rf"ranges \d+ done, \d+ running, \d+ left, of {ranges}", text)
    assert re.search(r"ETA \d+ (s|min)", text), during.out
    # --cleanup refuses while the pass is not finished, and changes nothing.
    assert (cleanup.code, one_error_line(cleanup.err)) == (
        EXIT_USAGE,
        f"error: pass 1 of {keyspace}.migrated is not finished (running now, or stopped before its end): let"
        " migrate.py finish it before --cleanup",
    )

    after = bundle("migrate.py", "--status", "--report", str(tmp_path / "after.json"))
    assert after.code == EXIT_OK, after.err
    data = read_report(tmp_path / "after.json")
    assert data["pass_status"] == "done" and data["eta_s"] is None
    assert data["passes"][0] | {"rows_per_s": 0} == {
        "number": 1,
        "ranges": ranges,
        "ranges_done": ranges,
        "ranges_running": 0,
        "ranges_left": 0,
        "rows_read": 3000,
        "rows_written": 3000,
        "rows_rejected": 0,
        "rows_skipped": 0,
        "rows_per_s": 0,
    }
    assert data["outcome"].startswith("pass 1 completed at ")
    assert "ETA done" in " ".join(after.out.split())
    json.dumps(data)


def test_cleanup_after_the_migration(
    bundle: Callable[..., Result], session: Session, keyspace: str, tmp_path: Path
) -> None:
    assert bundle("create.py", "--rows", "200", "--quiet").code == 0
    assert bundle("migrate.py", "--quiet").code == EXIT_OK
    assert bundle("migrate.py", "--quiet", TARGET_TABLE="other").code == EXIT_OK
    assert state_tables(session, keyspace) == {
        "cassio_migration_jobs",
        "cassio_migration_ranges",
        "cassio_migration_digests",
        "cassio_migration_leases",
    }

    first = bundle("migrate.py", "--cleanup", "--yes")
    assert (first.code, first.out.strip()) == (
        EXIT_OK,
        f"removed the migration state of {keyspace}.migrated (the state tables stay for: other)",
    )
    gone = bundle("migrate.py", "--status")
    assert (gone.code, one_error_line(gone.err)) == (
        EXIT_USAGE,
        f"error: no migration state for {keyspace}.migrated: migrate.py has not run for this target yet",
    )
    last = bundle("migrate.py", "--cleanup", "--yes", TARGET_TABLE="other")
    assert (last.code, last.out.strip()) == (
        EXIT_OK,
        f"removed the migration state of {keyspace}.other, and the state tables: no other job used them",
    )
    assert state_tables(session, keyspace) == set()
    again = bundle("migrate.py", "--cleanup", "--yes")
    assert (again.code, again.out.strip()) == (
        EXIT_OK,
        f"no migration state for {keyspace}.migrated: nothing to clean up",
    )
    # The tables themselves are untouched: the tool never drops the legacy or the new table.
    assert session.execute(f'SELECT count(*) FROM "{keyspace}".migrated').one()[0] == 200
    assert session.execute(f'SELECT count(*) FROM "{keyspace}".legacy').one()[0] == 200


def test_run_log_says_how_a_stopped_run_ended(bundle: Callable[..., Result], tmp_path: Path) -> None:
    assert bundle("create.py", "--rows", "200", "--dirty", "--quiet").code == 0
    result = bundle("migrate.py", "--quiet", "--max-errors", "0")
    assert result.code == 3, result.err
    [log] = (tmp_path / "runs").glob("*-migrate-migrated/run.log")
    last = log.read_text().splitlines()[-1]
    assert last.startswith("stopped: ") and "--max-errors" in one_error_line(result.err)
