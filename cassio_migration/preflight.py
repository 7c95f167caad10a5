"""Checks that need no database, made before connecting: a mistake costs no connection and changes nothing."""

from __future__ import annotations

import json
import os

from .errors import SettingsError, UsageError

CHECKED_LINES = 5  # the first records of a replay file, enough to tell a rejects file from another one
RECORD_FIELDS = ("key", "reason", "row")
ROW_FIELDS = ("writetime", "ttl", "read_at")


def check_rejects_file(path: str) -> None:
    """The file `--replay` reads: there, UTF-8 text, and its first lines rejects records."""
    what = f"--replay {path}"
    if not os.path.isfile(path):
        raise UsageError(f"{what}: no such file")
    checked = 0
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):  # to the end: a byte that is not UTF-8 may come late
                if line.strip() and checked < CHECKED_LINES:
                    problem = _record_problem(line)
                    if problem:
                        raise UsageError(
                            f"{what}, line {number}: not a rejects record ({problem}); replay a rejects.jsonl"
                            " of a run folder"
                        )
                    checked += 1
    except UnicodeDecodeError:
        raise UsageError(
            f"{what}: not UTF-8 text; replay a rejects.jsonl of a run folder (JSON lines in UTF-8)"
        ) from None
    if not checked:
        raise UsageError(f"{what}: the file is empty: there is nothing to replay")


def _record_problem(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(record, dict) or any(k not in record for k in RECORD_FIELDS):
        return f"a record is a JSON object with {', '.join(RECORD_FIELDS)}"
    row = record["row"]
    missing = [k for k in ROW_FIELDS if not isinstance(row, dict) or k not in row]
    return f"its row has no {', '.join(missing)}" if missing else None


def check_output_paths(runs_dir: str | None, report_file: str | None) -> None:
    """The run folder's parent (MIGRATION_RUNS_DIR) can be made and written, the --report file's folder exists."""
    if runs_dir is not None:
        try:
            os.makedirs(runs_dir, exist_ok=True)
        except OSError as exc:
            raise SettingsError("MIGRATION_RUNS_DIR", f"cannot make the folder {runs_dir!r} ({exc.strerror})") from None
        if not os.access(runs_dir, os.W_OK | os.X_OK):
            raise SettingsError("MIGRATION_RUNS_DIR", f"cannot write in {runs_dir!r}")
    if report_file is not None:
        folder = os.path.dirname(os.path.abspath(report_file))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UsageError(f"--report {report_file}: no folder {folder!r} to write it in")
