"""Checks that need no database, made before connecting: a mistake costs no connection and changes nothing."""

from __future__ import annotations

import json
import os

from .errors import UsageError

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
