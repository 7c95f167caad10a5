"""Compare every source row with its target row as cassio 0.1.x reads it.

Both tables are scanned range by range. With the same key type on both sides the keys
fall in the same token order, so a range of the target holds exactly the targets of the
same range of the source. With UUID keys turned into TEXT they do not: the target row
of each source row is then looked up by key, and extras by looking up the source.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from .connect import prepare_raw
from .copy import CopyOptions, newest_write, scan_pages, source_select
from .cql import qualified
from .plan import TokenRange
from .target import cassio_table
from .transform import Reject, Transformer

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


TARGET_COLUMNS = ("row_id", "body_blob", "vector", "attributes_blob", "metadata_s")


def target_select(options: CopyOptions, where: str) -> str:
    return (
        f"SELECT {', '.join(TARGET_COLUMNS)}, WRITETIME(body_blob), WRITETIME(vector), WRITETIME(attributes_blob)"
        f" FROM {qualified(options.target.keyspace, options.target.table)} WHERE {where}"
    )


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
        self.transformer = Transformer(
            cassio_table(target_session, options.target, provision=False),
            key_to_text=options.key_to_text,
            wrap_key=options.wrap_key,
        )
        self.source_range = prepare_raw(source_session, source_select(options.source))
        self.target_range = prepare_raw(
            target_session, target_select(options, "token(row_id) > ? AND token(row_id) <= ?")
        )
        self.target_by_key = prepare_raw(target_session, target_select(options, "row_id = ?"))
        self.delete = prepare_raw(
            target_session,
            f"DELETE FROM {qualified(options.target.keyspace, options.target.table)} USING TIMESTAMP ? WHERE row_id = ?",
        )
        self.source_by_key = prepare_raw(
            source_session,
            f"SELECT document_id FROM {qualified(options.source.keyspace, options.source.table)} WHERE document_id = ?",
        )

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
        same_order = not self.options.key_to_text
        if same_order:
            targets = {row[0]: row for row in self._scan(self.target, self.target_range, r, stop)}
        else:
            keys = [(self.transformer.key(row[0]),) for row in source_rows]
            found = execute_concurrent_with_args(self.target, self.target_by_key, keys, concurrency=64)
            targets = {row[0]: row for ok, rs in found if ok for row in rs}
        for row in source_rows:
            out.source_rows += 1
            out.add(self._classify(row, targets.pop(self.transformer.key(row[0]), None)), row[0])
        extras = targets.values() if same_order else self._extras_by_lookup(r, stop)
        for row in extras:
            out.add(self._extra(row), row[0])
        if progress:
            progress(len(source_rows))
        return out

    def _classify(self, source_row: tuple[Any, ...], target_row: tuple[Any, ...] | None) -> str:
        source_ts, _ = newest_write(source_row[4:7], source_row[7:10])
        expected = self.transformer.values(source_row[0], source_row[1], source_row[2], source_row[3])
        if isinstance(expected, Reject) or source_ts is None:
            return "rejected"  # not compared: the rules keep it out, or a replay put the user's fix there
        if target_row is None:
            copied = self.copied_before_us is not None and source_ts < self.copied_before_us
            return "deleted_in_target" if copied else "missing"
        want = self.transformer.as_read(dict(zip(self.transformer.columns, expected)))
        got = self.transformer.as_read(dict(zip(TARGET_COLUMNS, target_row[: len(TARGET_COLUMNS)])))
        if want == got:
            return "matching"
        return self._newer_or(target_row, source_ts, "different")

    @staticmethod
    def _written_at(target_row: tuple[Any, ...]) -> int | None:
        return max((t for t in target_row[len(TARGET_COLUMNS) :] if t is not None), default=None)

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
        self.target.execute(self.delete, (written, target_row[0]))
        return "extra_deleted"

    def _extras_by_lookup(self, r: TokenRange, stop: threading.Event) -> list[tuple[Any, ...]]:
        """Target rows of this target token range whose key the source lacks."""
        extras, candidates = [], []
        for row in self._scan(self.target, self.target_range, r, stop):
            try:
                candidates.append(((uuid.UUID(row[0]),), row))
            except ValueError:
                extras.append(row)  # not a UUID: cannot come from the source
        keys = [k for k, _ in candidates]
        found = execute_concurrent_with_args(self.source, self.source_by_key, keys, concurrency=64)
        for (_, row), (ok, rs) in zip(candidates, found):
            if ok and not list(rs):
                extras.append(row)
        return extras
