"""The command line is strict and kind: each mistake is one line and its exit code, before any connection.

Every case runs migrate.py as a user does (a subprocess, settings in its environment). The
settings point at a port where no database answers: a refusal must come before connecting,
or the run would end with "cannot reach" (exit 3) instead.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cassio_migration import __version__
from cassio_migration.errors import EXIT_USAGE
from tests.helpers import ROOT, astra_bundle, one_error_line, run_script, script_env

NOWHERE = 1  # no database answers on port 1


def migrate(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    """migrate.py's exit code and its one error line."""
    result = run_script("migrate.py", script_env("ks", tmp_path, port=NOWHERE, **env), tmp_path, *args, timeout=60)
    assert result.out == "", result.out
    return result.code, one_error_line(result.err)


@pytest.fixture
def rejects(tmp_path: Path) -> Path:
    """A rejects file as a run writes it (one record)."""
    path = tmp_path / "rejects.jsonl"
    path.write_text(
        '{"key": "k1", "reason": "metadata_not_object", "detail": "a list",'
        ' "row": {"document_id": "k1", "writetime": 1, "ttl": null, "read_at": 1}}\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--verify", "--replay", "REJECTS"],
            "error: --verify and --replay do not go together: --verify compares the tables and copies nothing",
        ),
        (
            ["--verify", "--restart"],
            "error: --verify and --restart do not go together: --verify compares the tables and copies nothing",
        ),
        (
            ["--verify", "--full"],
            "error: --verify and --full do not go together: --verify compares the tables and copies nothing",
        ),
        (
            ["--verify", "--dry-run"],
            "error: --verify and --dry-run do not go together: --verify compares the tables and writes nothing"
            " (--verify --delete-extra --dry-run counts the rows it would delete)",
        ),
        (
            ["--replay", "REJECTS", "--restart"],
            "error: --replay and --restart do not go together: --replay copies the rows of its file, not the source's",
        ),
        (
            ["--replay", "REJECTS", "--full"],
            "error: --replay and --full do not go together: --replay copies the rows of its file, not the source's",
        ),
        (
            ["--dry-run", "--restart"],
            "error: --dry-run and --restart do not go together: --dry-run writes nothing, the job's state included",
        ),
        (
            ["--status", "--verify"],
            "error: --status and --verify do not go together: --status only reads the job's state",
        ),
        (
            ["--cleanup", "--restart"],
            "error: --cleanup and --restart do not go together: --cleanup only removes the job's state",
        ),
        (
            ["--delete-extra"],
            "error: --delete-extra goes with --verify: it deletes the extra rows a verification finds",
        ),
    ],
)
def test_contradictory_or_ignored_flags_are_refused(tmp_path: Path, rejects: Path, args: list[str], line: str) -> None:
    args = [str(rejects) if a == "REJECTS" else a for a in args]
    assert migrate(tmp_path, *args) == (EXIT_USAGE, line)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--restart"], "error: --restart discards the saved progress of ks.migrated: add --yes to confirm"),
        (
            ["--verify", "--delete-extra"],
            "error: --delete-extra deletes the rows of ks.migrated that the source no longer has: add --yes to confirm",
        ),
        (["--cleanup"], "error: --cleanup removes the migration state of ks.migrated: add --yes to confirm"),
    ],
)
def test_destructive_actions_without_yes_and_without_a_terminal_are_refused(
    tmp_path: Path, args: list[str], line: str
) -> None:
    code, error = migrate(tmp_path, *args)
    assert (code, error) == (EXIT_USAGE, f"{line} (there is no terminal to ask)")


@pytest.mark.parametrize(("answer", "code"), [("n", EXIT_USAGE), ("y", 3)])
def test_destructive_action_asks_on_a_terminal(tmp_path: Path, answer: str, code: int) -> None:
    """On a terminal --restart asks; no: nothing happens (exit 2); yes: it goes on (to connect, and finds no database)."""
    main, child = pty.openpty()
    env = script_env("ks", tmp_path, port=NOWHERE)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "migrate.py"), "--restart"],
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    os.close(child)
    os.write(main, f"{answer}\n".encode())
    _, err = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == code, err
    assert err.startswith("--restart discards the saved progress of ks.migrated. Go on? [y/N]: ")
    if answer == "n":
        # the answer and its newline were typed on the terminal, not written to stderr
        assert err.endswith("Go on? [y/N]: error: not confirmed: nothing was changed\n")


def test_target_table_equal_to_old_table_is_refused_without_suggesting_a_drop(tmp_path: Path) -> None:
    code, line = migrate(tmp_path, "--target-table", "Legacy")
    assert (code, line) == (
        EXIT_USAGE,
        "error: TARGET_TABLE: 'legacy' is OLD_TABLE, the legacy table itself: name a new table for the cassio 0.1.x"
        " layout (the legacy table is only read)",
    )
    assert "drop" not in line.lower()
    # In another keyspace the same name is another table: that one goes on (and finds no database here).
    assert migrate(tmp_path, "--target-table", "legacy", TARGET_KEYSPACE="other")[0] == 3


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "error: --replay {path}: no such file"),
        (
            b'{"key": "k1", "row": {"document": "caf\xe9"}}\n',
            "error: --replay {path}: not UTF-8 text; replay a rejects.jsonl of a run folder (JSON lines in UTF-8)",
        ),
        (
            b"document_id,document\nk1,hello\n",
            "error: --replay {path}, line 1: not a rejects record (not JSON); replay a rejects.jsonl of a run folder",
        ),
        (
            b'{"key": "k1", "reason": "r", "row": {"document": "x"}}\n',
            "error: --replay {path}, line 1: not a rejects record (its row has no writetime, ttl, read_at);"
            " replay a rejects.jsonl of a run folder",
        ),
        (b"\n\n", "error: --replay {path}: the file is empty: there is nothing to replay"),
    ],
    ids=["missing", "not-utf8", "csv", "not-a-record", "empty"],
)
def test_replay_file_is_checked_before_connecting(tmp_path: Path, content: bytes | None, line: str) -> None:
    path = tmp_path / "fixed.jsonl"
    if content is not None:
        path.write_bytes(content)
    assert migrate(tmp_path, "--replay", str(path)) == (EXIT_USAGE, line.format(path=path))


def test_a_late_byte_that_is_not_utf8_is_found_before_connecting(tmp_path: Path, rejects: Path) -> None:
    with rejects.open("ab") as f:
        f.write(b"\n" * 10 + b'{"key": "k\xff"}\n')
    code, line = migrate(tmp_path, "--replay", str(rejects))
    assert (code, line) == (
        EXIT_USAGE,
        f"error: --replay {rejects}: not UTF-8 text; replay a rejects.jsonl of a run folder (JSON lines in UTF-8)",
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"CASSANDRA_CONTACT_POINTS": "no-such-host.invalid"},
            "error: CASSANDRA_CONTACT_POINTS: no address found for no-such-host.invalid: check the host names",
        ),
        (
            {"CASSANDRA_CONTACT_POINTS": "10.0.0.5:9042"},
            "error: CASSANDRA_CONTACT_POINTS: '10.0.0.5:9042' has a port: give host names only, and the port in"
            " CASSANDRA_PORT",
        ),
        (
            {"MIGRATION_MAX_ERRORS": "150%"},
            "error: MIGRATION_MAX_ERRORS: '150%': a percentage goes from 0% to 100% (e.g. 0.5%)",
        ),
        (
            {"CASSANDRA_KEYSPACE": "demo", "ASTRA_DB_KEYSPACE": "my_ks"},
            "error: CASSANDRA_KEYSPACE: 'demo' but ASTRA_DB_KEYSPACE is 'my_ks': set one of the two (or the same name)",
        ),
        (
            {"ASTRA_DB_ID": "01234567-89ab-cdef-0123-456789abcdef"},
            "error: ASTRA_DB_ID: set without ASTRA_DB_APPLICATION_TOKEN, so it would be ignored: set the token too"
            " (or leave this empty for a Cassandra cluster)",
        ),
    ],
    ids=["unresolvable", "host-port", "max-errors", "keyspaces", "astra-id-no-token"],
)
def test_settings_a_user_can_get_wrong_are_one_line(tmp_path: Path, env: dict[str, str], line: str) -> None:
    assert migrate(tmp_path, **env) == (EXIT_USAGE, line)


def test_astra_bundle_without_token_is_one_line(tmp_path: Path) -> None:
    bundle = astra_bundle(tmp_path / "secure-connect-db.zip")
    code, line = migrate(tmp_path, ASTRA_DB_SECURE_BUNDLE_PATH=str(bundle))
    assert (code, line) == (
        EXIT_USAGE,
        "error: ASTRA_DB_SECURE_BUNDLE_PATH: set without ASTRA_DB_APPLICATION_TOKEN, so it would be ignored: set"
        " the token too (or leave this empty for a Cassandra cluster)",
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--max-errors", "150%"], "error: --max-errors: '150%': a percentage goes from 0% to 100% (e.g. 0.5%)"),
        (["--bogus"], "error: No such option '--bogus'. (see --help)"),
        (["--replay"], "error: Option '--replay' requires an argument. (see --help)"),
        (["extra"], "error: Got unexpected extra argument (extra) (see --help)"),
        (
            ["--env-file", "missing.env"],
            "error: Invalid value for '--env-file': File 'missing.env' does not exist. (see --help)",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], line: str) -> None:
    code, error = migrate(tmp_path, *args)
    assert code == EXIT_USAGE
    assert error == line


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"MIGRATION_RUNS_DIR": "/proc/no-runs-here"},
            "error: MIGRATION_RUNS_DIR: cannot make the folder '/proc/no-runs-here'",
        ),
        (
            {"CASSANDRA_TLS_CA_FILE": "NOT_PEM"},
            "error: CASSANDRA_TLS_CA_FILE: 'NOT_PEM' holds no CA certificate in PEM form",
        ),
    ],
)
def test_files_and_folders_a_run_needs_are_checked_before_connecting(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello", encoding="ascii")
    code, error = migrate(tmp_path, **{k: v.replace("NOT_PEM", str(not_pem)) for k, v in env.items()})
    assert code == EXIT_USAGE and error.startswith(line.replace("NOT_PEM", str(not_pem))), error


def test_report_file_in_a_missing_folder_is_refused_before_connecting(tmp_path: Path) -> None:
    code, error = migrate(tmp_path, "--report", "/nonexistent/dir/r.json")
    assert (code, error) == (
        EXIT_USAGE,
        "error: --report /nonexistent/dir/r.json: no folder '/nonexistent/dir' to write it in",
    )


def test_version(tmp_path: Path) -> None:
    result = run_script("migrate.py", script_env("ks", tmp_path), tmp_path, "--version", timeout=60)
    assert (result.code, result.out, result.err) == (0, f"migrate.py {__version__}\n", "")


def test_help_is_grouped_with_defaults(tmp_path: Path) -> None:
    result = run_script("migrate.py", script_env("ks", tmp_path), tmp_path, "--help", timeout=60)
    assert result.code == 0
    headings = [line for line in result.out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert headings == [
        "What to do (a copy, unless one of these):",
        "What to migrate:",
        "How to connect:",
        "How the copy runs:",
        "Output:",
    ]
    text = " ".join(result.out.split())
    assert "[MIGRATION_CONCURRENCY; default: 128]" in text and "[TARGET_FRAMEWORK; default: cassio]" in text
    for flag in ("--old-table NAME", "--target-table NAME", "--keyspace NAME", "--env-file FILE", "--status"):
        assert flag in text


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("OLD_TABLE=docs\nTARGET_TABLE=docs\nMIGRATION_CONCURRENCY=zero\n", encoding="utf-8")
    code, line = migrate(
        tmp_path, "--env-file", str(env_file), OLD_TABLE="", TARGET_TABLE="", MIGRATION_CONCURRENCY="8"
    )
    assert (code, line) == (
        EXIT_USAGE,
        "error: TARGET_TABLE: 'docs' is OLD_TABLE, the legacy table itself: name a new table for the cassio 0.1.x"
        " layout (the legacy table is only read)",
    )


def test_tables_and_keyspace_can_be_given_as_flags(tmp_path: Path) -> None:
    same = migrate(tmp_path, "--old-table", "Docs", "--target-table", "docs")
    assert same == (
        EXIT_USAGE,
        "error: TARGET_TABLE: 'docs' is OLD_TABLE, the legacy table itself: name a new table for the cassio 0.1.x"
        " layout (the legacy table is only read)",
    )
    keyspace = migrate(tmp_path, "--keyspace", "Other_Ks", "--target-table", "docs_v1", "--restart")
    assert keyspace == (
        EXIT_USAGE,
        "error: --restart discards the saved progress of other_ks.docs_v1: add --yes to confirm (there is no terminal"
        " to ask)",
    )
