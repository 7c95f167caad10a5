"""Rejected rows: the rejects record (write, merge, replay) and the error budget.

A record is one JSON line: the row's key, the reason, a detail, and the raw row with each
source column by name (bytes as `<name>_b64`, UUIDs as text), its write time, its TTL
and when it was read (the TTL counts down from there). `--replay` reads such a file back
as a range scan returns rows, so a fixed row goes through the same transform and write.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from .errors import BudgetSpent, UsageError
from .job import MaxErrors
from .legacy import LegacyTable

RUN_FILE = "rejects.jsonl"


def worker_file(host: str, pid: int | str) -> str:
    """The rejects file of one worker process, merged into RUN_FILE at the end of the run."""
    return f"rejects-{host}-{pid}.jsonl"


class RejectSink:
    """Writes rejects records to a stream, a line at a time, from any thread."""

    def __init__(self, stream: TextIO | None, columns: Sequence[str]) -> None:
        self._stream = stream
        self._columns = tuple(columns)
        self._lock = threading.Lock()

    def write(self, key: str, reason: str, detail: str, row: Sequence[Any], writetime: int | None, ttl: int) -> None:
        if self._stream is None:
            return
        encoded: dict[str, Any] = {}
        for name, value in zip(self._columns, row):
            if isinstance(value, bytes):
                encoded[f"{name}_b64"] = base64.b64encode(value).decode()
            else:
                encoded[name] = str(value) if isinstance(value, uuid.UUID) else value
        record = {
            "key": key,
            "reason": reason,
            "detail": detail,
            "row": {**encoded, "writetime": writetime, "ttl": ttl, "read_at": int(time.time())},
        }
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")


def replay_rows(path: str, source: LegacyTable) -> Iterator[tuple[Any, ...]]:
    """The rows of a rejects file, as a range scan returns them (edit the file to fix them first)."""
    layout = source.layout
    uuids = source.uuid_columns
    blanks = (None,) * (len(layout.values) - 1)
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)["row"]
                columns: list[Any] = []
                for name in layout.columns:
                    if f"{name}_b64" in row:
                        encoded = row[f"{name}_b64"]
                        columns.append(base64.b64decode(encoded) if encoded is not None else None)
                    elif name in uuids:
                        columns.append(uuid.UUID(row[name]))
                    else:
                        columns.append(row[name])
                ttl = int(row["ttl"] or 0)
                if ttl:
                    ttl -= int(time.time()) - int(row["read_at"])
                    if ttl <= 0:
                        continue  # expired since it was rejected, as it has in the source
                writetime = row["writetime"]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"{path}, line {number}: not a rejects record ({exc})") from None
            yield (*columns, writetime, *blanks, ttl or None, *blanks)


def merge_rejects(run_folder: str) -> list[str]:
    """Append the workers' rejects files to the run's RUN_FILE (each row once) and remove them.

    Returns the names of the worker files merged. A line a killed worker left unfinished
    is dropped: its range was copied again elsewhere, and rejected its rows again.
    """
    parts = sorted(glob.glob(os.path.join(glob.escape(run_folder), worker_file("*", "*"))))
    if not parts:
        return []
    seen: set[str] = set()
    with open(os.path.join(run_folder, RUN_FILE), "a", encoding="utf-8") as out:
        for part in parts:
            with open(part, encoding="utf-8") as f:
                for line in f:
                    if not line.endswith("\n"):
                        continue
                    try:
                        key = str(json.loads(line)["key"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if key not in seen:
                        seen.add(key)
                        out.write(line)
            os.remove(part)
    return [os.path.basename(p) for p in parts]


class ErrorBudget:
    """Stops the run once more rows were rejected than `MaxErrors` allows.

    `add` keeps a live tally of one process, page by page, so that a run stops early;
    `check_total` judges a pass on its totals from the state (earlier runs included).
    """

    MIN_ROWS_FOR_SHARE = 1000  # a share of the first few rows says little

    def __init__(self, limit: MaxErrors = MaxErrors()) -> None:
        self.limit = limit
        self._read = 0
        self._rejected = 0
        self._lock = threading.Lock()

    def add(self, read: int, rejected: int) -> None:
        with self._lock:
            self._read += read
            self._rejected += rejected
            read, rejected = self._read, self._rejected
        if self.limit.rows is not None and rejected > self.limit.rows:
            raise BudgetSpent(f"{rejected} rows rejected, more than the {self.limit.rows} allowed")
        if read >= self.MIN_ROWS_FOR_SHARE:
            self._check_share(read, rejected)

    def check_total(self, read: int, rejected: int) -> None:
        if self.limit.rows is not None and rejected > self.limit.rows:
            raise BudgetSpent(f"{rejected} rows rejected in this pass, more than the {self.limit.rows} allowed")
        self._check_share(read, rejected)

    def _check_share(self, read: int, rejected: int) -> None:
        if self.limit.share is not None and rejected > self.limit.share * read:
            raise BudgetSpent(f"{rejected} of {read} rows rejected, more than the {self.limit.share:.2%} allowed")
