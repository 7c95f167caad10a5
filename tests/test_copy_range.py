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
from cassio_migration.scan import source_keys_select, source_row_select, source_select
from cassio_migration.state import Counts, WorkerId
from tests.test_verify_range import SOURCE, TARGET, VECTOR, Session, ids

RANGE = TokenRange(0, 100)
A, B, C, D, E, F = ids(6)


def row(key: uuid.UUID, ts: int | None, metadata: str = "{}", ttl: int | None = None) -> tuple[Any, ...]:
    """As the source scan returns it: columns, three write times, three TTLs (8 bytes of values)."""
    return (key, VECTOR, "doc", metadata, ts, ts, ts, ttl, ttl, ttl)


def key_row(key: uuid.UUID, ts: int) -> tuple[Any, ...]:
    """As a re-run's key scan returns it: the key, the values' write times and TTLs (no values)."""
    return (key, ts, ts, ts, None, None, None)


class Window:
    """Stands for the WriteWindow: keeps how it was made and what was submitted; refuses the rows of `refuse`."""

    refuse: ClassVar[set[uuid.UUID]] = set()
    submitted: ClassVar[list[tuple[Any, Any]]] = []
    made: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, session: Any, pace: Any, policy: Any, rows: int, nbytes: int, on_refused: Any) -> None:
        Window.made.append((session, pace, policy, rows, nbytes))
        self.on_refused, self.retries = on_refused, 2

    def submit(self, statement: Any, values: tuple[Any, ...], origin: Any) -> None:
        Window.submitted.append((statement, values))
        if origin[1][0] in Window.refuse:
            self.on_refused(origin, "Invalid: key too long " + "x" * 600)

    def drain(self) -> None:
        pass


class Rate:
    """A rate limit that counts the permits taken."""

    limited = True

    def __init__(self) -> None:
        self.taken = 0

    def acquire(self) -> None:
        self.taken += 1


class Budget(ErrorBudget):
    """The error budget, keeping what it was told."""

    def __init__(self, limit: MaxErrors = MaxErrors()) -> None:
        super().__init__(limit)
        self.told: list[tuple[int, int]] = []

    def add(self, read: int, rejected: int) -> None:
        self.told.append((read, rejected))
        super().add(read, rejected)


@pytest.fixture
def rejects() -> io.StringIO:
    return io.StringIO()


def copier(
    rejects: io.StringIO, options: RunOptions, monkeypatch: pytest.MonkeyPatch, job: Job | None = None, **pages: Any
) -> RangeCopier:
    """`pages`: what each scan returns (`full`, `keys`); `rows`: the source rows looked up by key."""
    monkeypatch.setattr(copy_module, "WriteWindow", Window)
    Window.refuse, Window.submitted, Window.made = set(), [], []
    source_session, target_session = Session(), Session()
    c = RangeCopier(
        source_session,
        target_session,
        job or Job(Clusters(), "ks", "legacy", "t"),
        options,
        SOURCE,
        TARGET,
        RejectSink(rejects, SOURCE.layout.columns),
        RateLimiter(0),
        Budget(),
        Pace(8, slow_s=10),
    )
    assert (c._source_session, c._target_session) == (source_session, target_session)
    assert c.policy.seconds == options.retry_seconds
    scans = {source_select(SOURCE): pages.get("full", []), source_keys_select(SOURCE): pages.get("keys", [])}

    def scan_pages(session: Any, statement: Any, bounds: Any, page_size: int, policy: Any, stop: Any, **k: Any) -> Any:
        assert session is c._source_session and bounds == (RANGE.start, RANGE.end) and page_size == options.page_size
        assert policy is c.policy and isinstance(stop, threading.Event) and k["hosts"] == []
        k["on_retry"]()  # two page reads were tried again
        k["on_retry"]()
        return iter(scans[statement.query_string])

    monkeypatch.setattr(copy_module, "scan_pages", scan_pages)
    by_key = {r[0]: r for r in pages.get("rows", [])}

    def look_up(session: Any, statement: Any, keys: list[tuple[Any, ...]], concurrency: int) -> list[Any]:
        assert session is c._source_session and concurrency == 64
        assert statement is c._select_row and statement.query_string == source_row_select(SOURCE)
        return [(True, [by_key[k[0]]] if k[0] in by_key else []) for k in keys]

    monkeypatch.setattr(copy_module, "execute_concurrent_with_args", look_up)
    return c


def records(rejects: io.StringIO) -> dict[str, Any]:
    return {r["key"]: r for r in map(json.loads, rejects.getvalue().splitlines())}


INSERT = (
    'INSERT INTO "ks"."t" (body_blob, vector, attributes_blob, metadata_s, row_id) VALUES (?, ?, ?, ?, ?)'
    " USING TIMESTAMP ? AND TTL ?"
)


def test_a_first_pass_writes_each_row_with_its_write_time_and_ttl_and_rejects_the_others(
    rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = [
        [row(B, None), row(A, 100, ttl=50), row(F, None)],
        [row(C, 300, metadata="[1]", ttl=70), row(E, 350, "7"), row(D, 400)],
    ]
    c = copier(rejects, RunOptions(batch_rows=3, batch_kib=2), monkeypatch, full=full)
    progress: list[int] = []
    out = c.copy(RANGE, None, threading.Event(), progress.append)
    assert out is not None
    result, record = out
    assert result.counts == Counts(read=6, written=2, rejected=4, skipped=0, bytes=2 * 8) and result.counts.balanced
    assert (result.start, result.end, result.read_retries, result.write_retries) == (0, 100, 2, 2)
    assert progress == [3, 3] and c.budget.told == [(3, 2), (3, 2)]  # type: ignore[attr-defined]
    assert 0 <= result.duration_s < 10 and result.worker == WorkerId.current() and result.pace == c.pace.report()
    found = records(rejects)
    assert {k: r["reason"] for k, r in found.items()} == {
        str(B): "no_values",
        str(F): "no_values",
        str(C): "metadata_not_object",
        str(E): "metadata_not_object",
    }
    assert found[str(B)]["detail"] == "every value column is NULL" and found[str(B)]["row"]["ttl"] == 0
    assert found[str(C)]["detail"] == "metadata_blob is a JSON list, not an object"
    assert (found[str(C)]["row"]["writetime"], found[str(C)]["row"]["ttl"]) == (300, 70)
    assert all(statement is c._insert for statement, _ in Window.submitted) and c._insert.query_string == INSERT
    written = {values[-3]: values[-2:] for _, values in Window.submitted}  # row_id, then USING TIMESTAMP ? AND TTL ?
    assert written == {A: (100, 50), D: (400, 0)}
    assert record.hashes.tolist() == sorted([row_hash(str(A), 100), row_hash(str(D), 400)])
    assert Window.made == [(c._target_session, c.pace, c.policy, 3, 2048)]


def test_the_jobs_rules_apply(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job(Clusters(), "ks", "legacy", "t", metadata_wrap_key="legacy")
    c = copier(rejects, RunOptions(), monkeypatch, job=job, full=[[row(C, 300, metadata="[1]")]])
    out = c.copy(RANGE, None, threading.Event())
    assert out is not None and out[0].counts == Counts(read=1, written=1, bytes=9)


def test_a_rerun_skips_the_versions_known_copied_and_reads_the_others_whole(
    rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = Digest.of(array("Q", [row_hash(str(A), 100), row_hash(str(B), 100), row_hash(str(E), 1)]))
    # Key scan: A unchanged, B updated since (newer write time), C new, D deleted before its lookup.
    keys = [[key_row(A, 100), key_row(B, 200)], [key_row(C, 300), key_row(D, 400)]]
    # A is still in the source: read again, it would be written again.
    c = copier(rejects, RunOptions(), monkeypatch, keys=keys, rows=[row(A, 100), row(B, 200), row(C, 300)])
    progress: list[int] = []
    out = c.copy(RANGE, known, threading.Event(), progress.append)
    assert out is not None
    result, record = out
    assert result.counts == Counts(read=4, written=2, rejected=0, skipped=2, bytes=2 * 8) and result.counts.balanced
    assert sorted(values[-3] for _, values in Window.submitted) == sorted([B, C]) and progress == [2, 2]
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
    full = [[row(A, 100), row(B, 150, ttl=30), row(C, 200, metadata="[1]"), row(D, 250)]]
    c = copier(rejects, RunOptions(), monkeypatch, full=full)
    Window.refuse = {B}
    out = c.copy(RANGE, None, threading.Event())
    assert out is not None
    result, record = out
    assert result.counts == Counts(read=4, written=2, rejected=2, bytes=3 * 8) and result.counts.balanced
    refused = records(rejects)[str(B)]
    assert refused["reason"] == REFUSED and (refused["row"]["writetime"], refused["row"]["ttl"]) == (150, 30)
    assert refused["detail"].startswith("the database refused the write: Invalid: key too long xxx")
    assert len(refused["detail"]) == 500
    assert record.hashes.tolist() == sorted([row_hash(str(A), 100), row_hash(str(D), 250)])  # a re-run tries B again
    assert c.budget.told == [(4, 1), (0, 1)]  # type: ignore[attr-defined]


def test_the_refused_rows_count_against_the_error_budget(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    c = copier(rejects, RunOptions(), monkeypatch, full=[[row(A, 100), row(B, 100)]])
    c.budget = ErrorBudget(MaxErrors(rows=0))
    Window.refuse = {A}
    with pytest.raises(BudgetSpent, match="1 rows rejected"):
        c.copy(RANGE, None, threading.Event())


def test_a_rate_limit_takes_a_permit_per_row_written(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    c = copier(rejects, RunOptions(), monkeypatch)
    c._rate = rate = Rate()  # type: ignore[assignment]
    c.process([[row(A, 100), row(B, None), row(C, 100)]], threading.Event())
    assert rate.taken == 2


def test_a_dry_run_writes_nothing_and_counts_what_it_would(
    rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = copier(rejects, RunOptions(dry_run=True), monkeypatch, full=[[row(A, 100)]])
    out = c.copy(RANGE, None, threading.Event())
    assert out is not None and out[0].counts == Counts(read=1, written=1, bytes=8)
    assert out[0].write_retries == 0 and Window.made == [] and c._insert is None


def test_a_stopped_range_gives_no_result(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    c = copier(rejects, RunOptions(), monkeypatch, full=[[row(A, 100)], [row(B, 100)]])
    stop = threading.Event()
    stop.set()
    assert c.copy(RANGE, None, stop) is None
    assert len(Window.submitted) == 1  # the page in hand is finished, then the range stops


def test_a_replay_processes_whole_rows(rejects: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    c = copier(rejects, RunOptions(), monkeypatch)
    progress: list[int] = []
    stop = threading.Event()
    stop.set()  # a stopped replay still says what it did with the page in hand
    Window.refuse = {C}
    counts, retries = c.process([[row(A, 100), row(B, None), row(C, 100)], [row(D, 100)]], stop, progress.append)
    assert counts == Counts(read=3, written=1, rejected=2, bytes=16) and retries == 2 and progress == [3]
