"""A RangeCopier over a source held in memory and a write window that records: every row read ends
written (its hash recorded), skipped as known copied, or rejected with a record; the counts balance.

The scans, the lookups and the writes themselves are exercised on the real node (test_migrate, test_adversary).
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from array import array
from typing import Any, ClassVar

import pytest

from cassio_migration import copy as copy_module
from cassio_migration.copy import REFUSED, RangeCopier
from cassio_migration.digest import Digest, row_hash
from cassio_migration.errors import BudgetSpent
from cassio_migration.inflight import Pace, RateLimiter
from cassio_migration.job import Clusters, Job, MaxErrors, RunOptions
from cassio_migration.plan import TokenRange
from cassio_migration.rejects import ErrorBudget, RejectSink
from cassio_migration.state import Counts
from tests.test_verify_range import SOURCE, TARGET, VECTOR, Session, ids

RANGE = TokenRange(0, 100)
A, B, C, D, E = ids(5)


def row(key: uuid.UUID, ts: int | None, metadata: str = "{}", ttl: int | None = None) -> tuple[Any, ...]:
    """As the source scan returns it: columns, three write times, three TTLs (8 bytes of values)."""
    return (key, VECTOR, "doc", metadata, ts, ts, ts, ttl, ttl, ttl)


def key_row(key: uuid.UUID, ts: int) -> tuple[Any, ...]:
    """As a re-run's key scan returns it: the key, the values' write times and TTLs (no values)."""
    return (key, ts, ts, ts, None, None, None)


class Window:
    """Stands for the WriteWindow: keeps what was submitted; refuses the rows of `refuse`."""

    refuse: ClassVar[set[uuid.UUID]] = set()
    submitted: ClassVar[list[tuple[Any, Any]]] = []

    def __init__(self, session: Any, pace: Any, policy: Any, rows: int, nbytes: int, on_refused: Any) -> None:
        self.on_refused, self.retries, self.drained = on_refused, 2, False
        Window.submitted = []

    def submit(self, statement: Any, values: tuple[Any, ...], origin: Any) -> None:
        Window.submitted.append((statement, values))
        if origin[1][0] in Window.refuse:
            self.on_refused(origin, "Invalid: key too long")

    def drain(self) -> None:
        self.drained = True


@pytest.fixture
def rejects() -> io.StringIO:
    return io.StringIO()


def copier(rejects: io.StringIO, options: RunOptions, monkeypatch: pytest.MonkeyPatch, **pages: Any) -> RangeCopier:
    """`pages`: what each scan returns (`full`, `keys`); `rows`: the source rows looked up by key."""
    monkeypatch.setattr(copy_module, "WriteWindow", Window)
    Window.refuse, Window.submitted = set(), []
    c = RangeCopier(
        Session(),
        Session(),
        Job(Clusters(), "ks", "legacy", "t"),
        options,
        SOURCE,
        TARGET,
        RejectSink(rejects, SOURCE.layout.columns),
        RateLimiter(0),
        ErrorBudget(),
        Pace(8, slow_s=10),
    )
    scans = {id(c._select): pages.get("full", []), id(c._select_keys): pages.get("keys", [])}
    monkeypatch.setattr(copy_module, "scan_pages", lambda session, statement, *a, **k: iter(scans[id(statement)]))
    by_key = {r[0]: r for r in pages.get("rows", [])}

    def look_up(session: Any, statement: Any, keys: list[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
        assert statement is c._select_row
        return [(True, [by_key[k[0]]] if k[0] in by_key else []) for k in keys]

    monkeypatch.setattr(copy_module, "execute_concurrent_with_args", look_up)
    return c


def reasons(rejects: io.StringIO) -> dict[str, str]:
    return {r["key"]: r["reason"] for r in map(json.loads, rejects.getvalue().splitlines())}


def test_a_first_pass_writes_each_row_with_its_write_time_and_ttl_and_rejects_the_others(
    rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = [[row(A, 100, ttl=50), row(B, None)], [row(C, 300, metadata="[1]"), row(D, 400)]]
    c = copier(rejects, RunOptions(), monkeypatch, full=full)
    progress: list[int] = []
    out = c.copy(RANGE, None, threading.Event(), progress.append)
    assert out is not None
    result, record = out
    assert result.counts == Counts(read=4, written=2, rejected=2, skipped=0, bytes=2 * 8) and result.counts.balanced
    assert (result.start, result.end, result.write_retries, progress) == (0, 100, 2, [2, 2])
    assert reasons(rejects) == {str(B): "no_values", str(C): "metadata_not_object"}
    written = {values[-3]: values[-2:] for _, values in Window.submitted}  # row_id, then USING TIMESTAMP ? AND TTL ?
    assert written == {A: (100, 50), D: (400, 0)}
    assert record.hashes.tolist() == sorted([row_hash(str(A), 100), row_hash(str(D), 400)])


def test_a_rerun_skips_the_versions_known_copied_and_reads_the_others_whole(
    rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = Digest.of(array("Q", [row_hash(str(A), 100), row_hash(str(B), 100), row_hash(str(E), 1)]))
    # Key scan: A unchanged, B updated since (newer write time), C new, D deleted before its lookup.
    keys = [[key_row(A, 100), key_row(B, 200)], [key_row(C, 300), key_row(D, 400)]]
    c = copier(rejects, RunOptions(), monkeypatch, keys=keys, rows=[row(B, 200), row(C, 300)])
    out = c.copy(RANGE, known, threading.Event())
    assert out is not None
    result, record = out
    assert result.counts == Counts(read=4, written=2, rejected=0, skipped=2, bytes=2 * 8) and result.counts.balanced
    assert sorted(values[-3] for _, values in Window.submitted) == sorted([B, C])
    # The record keeps what was known (E, and A's version found again) and adds the new versions.
    expected = {row_hash(str(k), ts) for k, ts in [(A, 100), (B, 100), (E, 1), (B, 200), (C, 300)]}
    assert set(record.hashes.tolist()) == expected


def test_full_reads_everything_again(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    known = Digest.of(array("Q", [row_hash(str(A), 100)]))
    c = copier(rejects, RunOptions(full=True), monkeypatch, full=[[row(A, 100)]])
    out = c.copy(RANGE, known, threading.Event())
    assert out is not None and out[0].counts == Counts(read=1, written=1, bytes=8)


def test_a_row_the_database_refuses_is_rejected_with_its_message_and_left_out_of_the_record(
    rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = copier(rejects, RunOptions(), monkeypatch, full=[[row(A, 100), row(B, 100)]])
    Window.refuse = {B}
    out = c.copy(RANGE, None, threading.Event())
    assert out is not None
    result, record = out
    assert result.counts == Counts(read=2, written=1, rejected=1, bytes=16) and result.counts.balanced
    assert reasons(rejects) == {str(B): REFUSED}
    assert "the database refused the write: Invalid: key too long" in rejects.getvalue()
    assert record.hashes.tolist() == [row_hash(str(A), 100)]  # a re-run tries B again


def test_the_refused_rows_count_against_the_error_budget(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    c = copier(rejects, RunOptions(), monkeypatch, full=[[row(A, 100), row(B, 100)]])
    c.budget = ErrorBudget(MaxErrors(rows=0))
    Window.refuse = {A}
    with pytest.raises(BudgetSpent, match="1 rows rejected"):
        c.copy(RANGE, None, threading.Event())


def test_a_dry_run_writes_nothing_and_counts_what_it_would(
    rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = copier(rejects, RunOptions(dry_run=True), monkeypatch, full=[[row(A, 100)]])
    out = c.copy(RANGE, None, threading.Event())
    assert out is not None and out[0].counts == Counts(read=1, written=1, bytes=8)
    assert Window.submitted == [] and c._insert is None


def test_a_stopped_range_gives_no_result(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    c = copier(rejects, RunOptions(), monkeypatch, full=[[row(A, 100)], [row(B, 100)]])
    stop = threading.Event()
    stop.set()
    assert c.copy(RANGE, None, stop) is None
    assert len(Window.submitted) == 1  # the page in hand is finished, then the range stops


def test_a_replay_processes_whole_rows(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    c = copier(rejects, RunOptions(), monkeypatch)
    counts, retries = c.process([[row(A, 100), row(B, None)]], threading.Event())
    assert counts == Counts(read=2, written=1, rejected=1, bytes=8) and retries == 2
