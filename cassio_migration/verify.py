"""Compare every source row with its target row as cassio 0.1.x reads it.

Both tables are scanned range by range. Where a target row has the same partition key
value as its source row (a vector table keeping its key type, a chat history), a range of
the target holds exactly the targets of the same range of the source. Elsewhere (UUID keys
turned into TEXT, a clustered target, an LLM cache, whose keys change form) the target row
of each source row is looked up by key, and extras by looking up their source row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from .connect import prepare_raw
from .copy import CopyOptions, newest_write, row_key, scan_pages, source_select
from .cql import qualified
from .plan import TokenRange
from .transform import Reject, transformer_for

CATEGORIES = (
    "matching",
    "missing",
    "different",
    "target_newer",
    "deleted_in_target",
    "extra",
    "extra_deleted",
    "rejected",
)
EXAMPLES = 5


@dataclass
class VerifyCounts:
    source_rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})

    def add(self, category: str, key: Any) -> None:
        self.counts[category] += 1
        if category != "matching" and len(self.examples[category]) < EXAMPLES:
            self.examples[category].append(str(key))

    def merge(self, other: VerifyCounts) -> None:
        self.source_rows += other.source_rows
        for c in CATEGORIES:
            self.counts[c] += other.counts[c]
            room = EXAMPLES - len(self.examples[c])
            self.examples[c].extend(other.examples[c][:room])

    @property
    def clean(self) -> bool:
        return self.counts["missing"] == 0 and self.counts["different"] == 0


def _where_key(columns: tuple[str, ...]) -> str:
    return " AND ".join(f"{c} = ?" for c in columns)


def _where_range(partition_key: tuple[str, ...]) -> str:
    token = f"token({', '.join(partition_key)})"
    return f"{token} > ? AND {token} <= ?"


class RangeVerifier:
    """Compares one token range; with `delete_extra`, deletes extra rows the migration wrote.

    `copied_before_us`: source rows written before this were copied by a completed pass
    (None if no pass completed). A target row that such a source row lacks was deleted
    after the migration (by the application, or expired); an extra target row written
    before it was written by the migration, not by the application after the cutover.
    """

    def __init__(
        self,
        source_session: Session,
        target_session: Session,
        options: CopyOptions,
        copied_before_us: int | None = None,
        delete_extra: bool = False,
    ) -> None:
        self.options = options
        self.copied_before_us = copied_before_us
        self.delete_extra = delete_extra
        self.source = source_session
        self.target = target_session
        self.transformer = transformer_for(
            options.target, target_session, key_to_text=options.key_to_text, wrap_key=options.wrap_key
        )
        tr = self.transformer
        layout = options.source.layout
        self._width, self._nvalues = len(layout.columns), len(layout.values)
        self._key_at = [tr.columns.index(c) for c in tr.key]
        target = qualified(options.target.keyspace, options.target.table)
        written = ", ".join(f"WRITETIME({c})" for c in tr.timed)
        select = f"SELECT {', '.join(tr.columns)}, {written} FROM {target} WHERE "
        self.source_range = prepare_raw(source_session, source_select(options.source))
        self.target_range = prepare_raw(target_session, select + _where_range(tr.partition_key))
        self.target_by_key = prepare_raw(target_session, select + _where_key(tr.key))
        self.delete = prepare_raw(target_session, f"DELETE FROM {target} USING TIMESTAMP ? WHERE {_where_key(tr.key)}")
        self.source_by_key = prepare_raw(
            source_session,
            f"SELECT {layout.key[0]} FROM {qualified(options.source.keyspace, options.source.table)}"
            f" WHERE {_where_key(layout.key)}",
        )

    def _target_key(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self._key_at)

    def _scan(self, session: Session, statement: Any, r: TokenRange, stop: threading.Event) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for page in scan_pages(
            session, statement, (r.start, r.end), self.options.page_size, self.options.retry_seconds, stop
        ):
            rows.extend(page)
        return rows

    def verify(
        self, r: TokenRange, stop: threading.Event, progress: Callable[[int], None] | None = None
    ) -> VerifyCounts:
        out = VerifyCounts()
        source_rows = self._scan(self.source, self.source_range, r, stop)
        expected = [self.transformer.values(*row[: self._width]) for row in source_rows]
        if self.transformer.same_order:
            targets = {self._target_key(row): row for row in self._scan(self.target, self.target_range, r, stop)}
        else:
            keys = [self._target_key(values) for values in expected if not isinstance(values, Reject)]
            found = execute_concurrent_with_args(self.target, self.target_by_key, keys, concurrency=64)
            targets = {self._target_key(row): row for ok, rs in found if ok for row in rs}
        key_width = len(self.options.source.layout.key)
        for row, values in zip(source_rows, expected):
            out.source_rows += 1
            target_row = None if isinstance(values, Reject) else targets.pop(self._target_key(values), None)
            out.add(self._classify(row, values, target_row), row_key(row, key_width))
        extras = targets.values() if self.transformer.same_order else self._extras_by_lookup(r, stop)
        for row in extras:
            out.add(self._extra(row), self._target_key(row)[-1])
        if progress:
            progress(len(source_rows))
        return out

    def _classify(
        self, source_row: tuple[Any, ...], expected: tuple[Any, ...] | Reject, target_row: tuple[Any, ...] | None
    ) -> str:
        source_ts, _ = newest_write(source_row, self._width, self._nvalues)
        if isinstance(expected, Reject) or source_ts is None:
            return "rejected"  # not compared: the rules keep it out, or a replay put the user's fix there
        if target_row is None:
            copied = self.copied_before_us is not None and source_ts < self.copied_before_us
            return "deleted_in_target" if copied else "missing"
        columns = self.transformer.columns
        want = self.transformer.as_read(dict(zip(columns, expected)))
        got = self.transformer.as_read(dict(zip(columns, target_row[: len(columns)])))
        if want == got:
            return "matching"
        return self._newer_or(target_row, source_ts, "different")

    def _written_at(self, target_row: tuple[Any, ...]) -> int | None:
        return max((t for t in target_row[len(self.transformer.columns) :] if t is not None), default=None)

    def _newer_or(self, target_row: tuple[Any, ...], source_ts: int | None, otherwise: str) -> str:
        """A target row written after the source row is the application's: not an error."""
        target_ts = self._written_at(target_row)
        if target_ts is not None and (source_ts is None or target_ts > source_ts):
            return "target_newer"
        return otherwise

    def _extra(self, target_row: tuple[Any, ...]) -> str:
        """An extra row is deleted (if asked) only when the migration wrote it, never the application."""
        written = self._written_at(target_row)
        copied_before = self.copied_before_us
        if not self.delete_extra or written is None or copied_before is None or written >= copied_before:
            return "extra"
        # At the row's own write time: a newer write by the application would still win.
        self.target.execute(self.delete, (written, *self._target_key(target_row)))
        return "extra_deleted"

    def _extras_by_lookup(self, r: TokenRange, stop: threading.Event) -> list[tuple[Any, ...]]:
        """Target rows of this target token range whose source row does not exist."""
        extras, candidates = [], []
        for row in self._scan(self.target, self.target_range, r, stop):
            source_key = self.transformer.source_key(self._target_key(row))
            if source_key is None:
                extras.append(row)  # cannot come from the source
            else:
                candidates.append((source_key, row))
        keys = [k for k, _ in candidates]
        found = execute_concurrent_with_args(self.source, self.source_by_key, keys, concurrency=64)
        for (_, row), (ok, rs) in zip(candidates, found):
            if ok and not list(rs):
                extras.append(row)
        return extras
