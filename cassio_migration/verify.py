"""Compare every source row with its target row as cassio 0.1.x reads it, in bounded memory.

Both tables are read range by range, a page at a time. Where a target row has the same
partition key value as its source row (a vector table keeping its key type, a chat
history), both scans come in token order, and they are compared as a merge: the rows of
one token on either side, at a time. Elsewhere (UUID keys turned into TEXT, a clustered
target, an LLM cache, whose keys change form) the target rows of a page of source rows
are looked up by key, and the extras by looking up, a page at a time, the source rows of
the target's own range. Memory is bounded by the pages in flight, not by a range's size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.metadata import Murmur3Token

from .connect import prepare_raw
from .cql import qualified
from .digest import Digest, Records, row_hash
from .job import Job, RunOptions
from .legacy import LegacyTable
from .plan import TokenRange
from .retry import RetryPolicy, refuses_row
from .scan import newest_write, row_key, scan_pages, source_row_select, source_select, token_range_condition
from .target import TargetSpec
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
LOOKUPS_IN_FLIGHT = 64

Row = tuple[Any, ...]


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


def classify(
    want: dict[str, Any] | None,
    got: dict[str, Any] | None,
    source_ts: int | None,
    target_ts: int | None,
    copied: bool,
) -> str:
    """One source row's verdict.

    `want`: the target row the source row should give, as cassio reads it (None: the rules
    reject it); `got`: the target row found, as cassio reads it (None: there is none);
    `copied`: the migration's record holds this version of the source row (it was written).
    """
    if want is None or source_ts is None:
        return "rejected"  # not compared: the rules keep it out, or a replay put the user's fix there
    if got is None:
        return "deleted_in_target" if copied else "missing"  # a copied row gone since: the application's doing
    if want == got:
        return "matching"
    if target_ts is not None and target_ts > source_ts:
        return "target_newer"  # written after the source row: the application's, not an error
    return "different"


def by_token(pages: Iterable[list[Row]]) -> Iterator[tuple[int, list[Row]]]:
    """Consecutive rows of one token (the last column), as (token, rows)."""
    group: list[Row] = []
    for page in pages:
        for row in page:
            if group and row[-1] != group[0][-1]:
                yield group[0][-1], group
                group = []
            group.append(row)
    if group:
        yield group[0][-1], group


def merged(
    source: Iterator[tuple[int, list[Row]]], target: Iterator[tuple[int, list[Row]]]
) -> Iterator[tuple[list[Row], list[Row]]]:
    """(source rows, target rows) of each token found in either scan, in token order."""
    s, t = next(source, None), next(target, None)
    while s is not None or t is not None:
        if t is None or (s is not None and s[0] < t[0]):
            assert s is not None
            yield s[1], []
            s = next(source, None)
        elif s is None or t[0] < s[0]:
            yield [], t[1]
            t = next(target, None)
        else:
            yield s[1], t[1]
            s, t = next(source, None), next(target, None)


class RangeVerifier:
    """Compares one token range; with --delete-extra, deletes extra rows the migration wrote.

    `records`: what the migration copied, range by range (digest.py; None: nothing recorded). A
    target row missing for a version of a source row the record holds was deleted after the
    migration (by the application, or expired); an extra target row is the migration's only
    if the record of its source key's range holds that key with its write time: never a row
    the application wrote.
    """

    def __init__(
        self,
        source_session: Session,
        target_session: Session,
        job: Job,
        options: RunOptions,
        source: LegacyTable,
        target: TargetSpec,
        records: Records | None = None,
    ) -> None:
        self.options = options
        self.policy = RetryPolicy(options.retry_seconds)
        self.records = records or Records({}, lambda number, start: Digest())
        self.delete_extra = options.delete_extra
        self.dry_run = options.dry_run
        self.source = source_session
        self.target = target_session
        self.transformer = tr = transformer_for(target, target_session, job)
        layout = source.layout
        self._key_width = len(layout.key)
        self._width, self._nvalues = len(layout.columns), len(layout.values)
        self._key_at = [tr.columns.index(c) for c in tr.key]
        target_name = qualified(target.keyspace, target.table)
        written = ", ".join(f"WRITETIME({c})" for c in tr.timed)
        token = f"token({', '.join(tr.partition_key)})"
        # Target rows: (*columns, *writetimes, token).
        select = f"SELECT {', '.join(tr.columns)}, {written}, {token} FROM {target_name} WHERE "
        where_key = " AND ".join(f"{c} = ?" for c in tr.key)
        self.source_range = prepare_raw(source_session, source_select(source, with_token=True), self.policy)
        self.target_range = prepare_raw(target_session, select + token_range_condition(tr.partition_key), self.policy)
        self.target_by_key = prepare_raw(target_session, select + where_key, self.policy)
        self.delete = prepare_raw(
            target_session, f"DELETE FROM {target_name} USING TIMESTAMP ? WHERE {where_key}", self.policy
        )
        # Is there a source row for a target row? Where the target key depends on the row's values (a
        # partition from a metadata field), the whole row, to tell whether it still belongs there.
        self._moves = tr.key_from_values
        self.source_by_key = prepare_raw(
            source_session,
            source_row_select(source)
            if self._moves
            else f"SELECT {layout.key[0]} FROM {qualified(source.keyspace, source.table)}"
            f" WHERE {' AND '.join(f'{c} = ?' for c in layout.key)}",
            self.policy,
        )

    def _pages(self, session: Session, statement: Any, r: TokenRange, stop: threading.Event) -> Iterator[list[Row]]:
        what = "reading the source" if session is self.source else "reading the target"
        return scan_pages(session, statement, (r.start, r.end), self.options.page_size, self.policy, stop, what=what)

    def _target_key(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self._key_at)

    def verify(
        self, r: TokenRange, stop: threading.Event, progress: Callable[[int], None] | None = None
    ) -> VerifyCounts | None:
        """One range's verdicts; None if `stop` was set before it finished."""
        out = VerifyCounts()
        copied = self.records.of_range(r.start)
        if self.transformer.same_order:
            self._merge(r, stop, progress, out, copied)
        else:
            self._look_up(r, stop, progress, out, copied)
        return None if stop.is_set() else out

    def _merge(
        self,
        r: TokenRange,
        stop: threading.Event,
        progress: Callable[[int], None] | None,
        out: VerifyCounts,
        copied: Digest,
    ) -> None:
        """Both scans in token order, compared a token at a time."""
        source = by_token(self._pages(self.source, self.source_range, r, stop))
        target = by_token(self._pages(self.target, self.target_range, r, stop))
        for source_rows, target_rows in merged(source, target):
            found = {self._target_key(t): t for t in target_rows}
            for row in source_rows:
                expected = self.transformer.values(*row[: self._width])
                if isinstance(expected, Reject):
                    # Its target row, if any (a fix replayed from the rejects file), is this source row's,
                    # not an extra: the key lookup of `_look_up` finds the source row for it too.
                    key = tuple(row[: self._key_width])
                    for k in [k for k in found if self.transformer.source_key(k) == key]:
                        del found[k]
                    got = None
                else:
                    got = found.pop(self._target_key(expected), None)
                self._judge(row, expected, got, out, copied)
            for extra in found.values():
                self._extra(extra, out, copied)
            if progress and source_rows:
                progress(len(source_rows))

    def _look_up(
        self,
        r: TokenRange,
        stop: threading.Event,
        progress: Callable[[int], None] | None,
        out: VerifyCounts,
        copied: Digest,
    ) -> None:
        """Each page of source rows: their target rows by key. Then the target's range: extras by their source key."""
        for page in self._pages(self.source, self.source_range, r, stop):
            expected = [self.transformer.values(*row[: self._width]) for row in page]
            keys = [self._target_key(e) for e in expected if not isinstance(e, Reject)]
            found = {
                self._target_key(t): t for rows in self._by_key(self.target, self.target_by_key, keys) for t in rows
            }
            for row, e in zip(page, expected):
                self._judge(row, e, None if isinstance(e, Reject) else found.get(self._target_key(e)), out, copied)
            if progress:
                progress(len(page))
        for page in self._pages(self.target, self.target_range, r, stop):
            candidates: list[tuple[tuple[Any, ...], Row]] = []
            for row in page:
                source_key = self.transformer.source_key(self._target_key(row))
                if source_key is None:
                    self._extra(row, out, None)  # cannot come from the source
                else:
                    candidates.append((source_key, row))
            found_in_source = self._by_key(self.source, self.source_by_key, [k for k, _ in candidates])
            for (_, row), rows in zip(candidates, found_in_source):
                if not rows or (self._moves and not self._still_here(row, rows[0])):
                    self._extra(row, out, None)

    def _by_key(self, session: Session, statement: Any, keys: list[tuple[Any, ...]]) -> list[list[Row]]:
        """The rows of each key, looked up concurrently (tried again as a batch if one fails).

        A key the database refuses (an empty or too long partition key) has no row there."""

        def look_up() -> list[list[Row]]:
            results = execute_concurrent_with_args(
                session, statement, keys, concurrency=LOOKUPS_IN_FLIGHT, raise_on_first_error=False
            )
            found = []
            for ok, rows in results:
                if not ok and not refuses_row(rows):
                    raise rows
                found.append(list(rows) if ok else [])
            return found

        what = "looking up rows in the source" if session is self.source else "looking up rows in the target"
        return self.policy.call(what, look_up)

    def _still_here(self, target_row: Row, source_row: Row) -> bool:
        """Whether the source row still gives this target row's key (its partition field may have changed)."""
        expected = self.transformer.values(*source_row[: self._width])
        return not isinstance(expected, Reject) and self._target_key(expected) == self._target_key(target_row)

    def _judge(self, row: Row, expected: Row | Reject, got: Row | None, out: VerifyCounts, copied: Digest) -> None:
        out.source_rows += 1
        source_ts, _ = newest_write(row, self._width, self._nvalues)
        key = row_key(row, self._key_width)
        columns = self.transformer.columns
        want = None if isinstance(expected, Reject) else self.transformer.as_read(dict(zip(columns, expected)))
        read = None if got is None else self.transformer.as_read(dict(zip(columns, got[: len(columns)])))
        was_copied = source_ts is not None and row_hash(key, source_ts) in copied
        out.add(classify(want, read, source_ts, self._written_at(got), was_copied), key)

    def _written_at(self, target_row: Row | None) -> int | None:
        if target_row is None:
            return None
        times = target_row[len(self.transformer.columns) : -1]  # the writetimes, before the token
        return max((t for t in times if t is not None), default=None)

    def _extra(self, target_row: Row, out: VerifyCounts, copied: Digest | None) -> None:
        """An extra row is deleted (if asked) only when the migration wrote that very version, never the application.

        `copied`: the record of the range its source row would be in (None: look it up by that row's token).
        """
        written = self._written_at(target_row)
        key = self._target_key(target_row)
        source_key = self.transformer.source_key(key)
        ours = False
        if written is not None and source_key is not None:
            if copied is None:
                routing_key = self.source_by_key.bind(source_key).routing_key
                copied = self.records.at(Murmur3Token.from_key(routing_key).value)
            ours = row_hash(row_key(source_key, self._key_width), written) in copied
        if not (self.delete_extra and ours):
            out.add("extra", key[-1])
            return
        if not self.dry_run:
            # At the row's own write time: a newer write by the application would still win.
            self.policy.call("deleting an extra row", lambda: self.target.execute(self.delete, (written, *key)))
        out.add("extra_deleted", key[-1])
