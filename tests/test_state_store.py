"""StateStore's decisions without a node: resume or start a pass, which record each range reads, what a
lost race does. A fake session answers the queries; the CQL itself is exercised on the real node
(test_resume, test_adversary)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from cassandra import InvalidRequest, OperationTimedOut

from cassio_migration import state as state_module
from cassio_migration.digest import Digest
from cassio_migration.errors import FatalError, UsageError
from cassio_migration.plan import MAX_TOKEN, MIN_TOKEN, PlanError, TokenRange
from cassio_migration.retry import RetryPolicy
from cassio_migration.state import Counts, Pass, RangeResult, StateStore, WorkerId

CONTEXT = {"source": "ks.old", "target": "ks.t"}
PLAN = [TokenRange(0, MAX_TOKEN), TokenRange(MIN_TOKEN, 0)]  # out of order: stored sorted
RANGES = sorted(PLAN)


class Result(list[Any]):
    def __init__(self, rows: list[Any] = [], applied: bool = True) -> None:  # noqa: B006
        super().__init__(rows)
        self.was_applied = applied

    def one(self) -> Any:
        return self[0] if self else None


class Session:
    """`answer(query, params)` gives each result; every statement is kept, with its parameters."""

    def __init__(self, answer: Callable[[str, Any], Result] = lambda q, p: Result()) -> None:
        self.answer = answer
        self.executed: list[tuple[str, Any]] = []

    def execute(self, query: str, params: Any = None) -> Result:
        self.executed.append((query, params))
        return self.answer(query, params)

    def prepare(self, query: str) -> Any:
        return SimpleNamespace(query_string=query)

    def statements(self, prefix: str) -> list[tuple[str, Any]]:
        return [(q, p) for q, p in self.executed if q.startswith(prefix)]


@pytest.fixture(autouse=True)
def concurrent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """execute_concurrent_with_args, recording (query, params); every write succeeds."""
    done: list[tuple[str, Any]] = []

    def run(session: Any, statement: Any, params: list[Any], **kwargs: Any) -> list[tuple[bool, Any]]:
        # A few writes in flight, and a failed one returned, not raised (it is tried again alone).
        assert isinstance(session, Session) and kwargs == {"concurrency": 8, "raise_on_first_error": False}
        done.extend((statement.query_string, p) for p in params)
        return [(True, None)] * len(params)

    monkeypatch.setattr(state_module, "execute_concurrent_with_args", run)
    return done


def job_row(number: int, status: str, known: int | None = None, context: dict[str, Any] = CONTEXT) -> Any:
    return SimpleNamespace(pass_number=number, pass_status=status, known_pass=known, context=json.dumps(context))


def range_rows(done: set[int] | frozenset[int] = frozenset()) -> list[Any]:
    return [
        SimpleNamespace(range_start=r.start, range_end=r.end, status="done" if r.start in done else "pending")
        for r in RANGES
    ]


def answers(row: Any, ranges: list[Any] | None = None, applied: bool = True) -> Callable[[str, Any], Result]:
    def answer(query: str, params: Any) -> Result:
        if query.startswith("SELECT * FROM"):
            return Result([row] if row is not None else [])
        if query.startswith("SELECT range_start, range_end, status"):
            return Result(ranges if ranges is not None else range_rows())
        if query.startswith("SELECT range_start FROM"):
            return Result([SimpleNamespace(range_start=5)])
        return Result([SimpleNamespace(pass_number=99)], applied=applied)

    return answer


def store(session: Session) -> StateStore:
    return StateStore(session, "ks", "ks.t", RetryPolicy(0.5, first_delay_s=0.001))  # type: ignore[arg-type]


def test_a_new_job_starts_pass_one_over_the_plan_sorted(concurrent: list[tuple[str, Any]]) -> None:
    session = Session(answers(None))
    p = store(session).begin(CONTEXT, PLAN, restart=False)
    assert p == Pass(1, False, RANGES, set(), None)
    ((query, params),) = session.statements("INSERT")
    assert query.startswith('INSERT INTO "ks"."cassio_migration_jobs" (') and query.endswith("IF NOT EXISTS")
    assert params[:3] == ("ks.t", json.dumps(CONTEXT, sort_keys=True), 1)
    assert abs(params[3] - time.time() * 1000) < 60_000  # the pass's start, in ms
    assert params[4:] == (2, None)  # two ranges, nothing known copied
    assert session.executed[0] == ('SELECT * FROM "ks"."cassio_migration_jobs" WHERE job = %s', ("ks.t",))
    assert [p for _, p in concurrent] == [("ks.t", 1, r.start, r.end) for r in RANGES]
    assert {q for q, _ in concurrent} == {
        'INSERT INTO "ks"."cassio_migration_ranges" (job, pass_number, range_start, range_end, status)'
        " VALUES (?, ?, ?, ?, 'pending')"
    }


def test_a_running_pass_is_resumed_with_its_done_ranges() -> None:
    session = Session(answers(job_row(4, "running", known=3), range_rows({MIN_TOKEN})))
    assert store(session).begin(CONTEXT, [], restart=False) == Pass(4, True, RANGES, {MIN_TOKEN}, 3)
    assert session.statements("SELECT range_start, range_end, status") == [
        (
            'SELECT range_start, range_end, status FROM "ks"."cassio_migration_ranges"'
            " WHERE job = %s AND pass_number = %s",
            ("ks.t", 4),
        )
    ]
    assert session.statements("INSERT") == session.statements("UPDATE") == []


def test_after_a_completed_pass_the_next_one_goes_over_its_ranges_knowing_what_it_copied(
    concurrent: list[tuple[str, Any]],
) -> None:
    session = Session(answers(job_row(4, "done", known=3)))
    p = store(session).begin(CONTEXT, [TokenRange(MIN_TOKEN, MAX_TOKEN)], restart=False)
    assert p == Pass(5, False, RANGES, set(), 4)  # the stored ranges, not the new plan
    assert [p for _, p in session.statements("SELECT range_start, range_end")] == [("ks.t", 4)]
    ((query, params),) = session.statements("UPDATE")
    assert query.endswith("IF pass_number = %s") and params[1] == 5 and params[3:] == (2, 4, "ks.t", 4)
    assert {p[1] for _, p in concurrent} == {5}
    assert session.statements("DELETE") == []  # the old pass's rows stay until this one is done


def test_a_restart_starts_over_and_forgets_every_earlier_pass(concurrent: list[tuple[str, Any]]) -> None:
    other = {**CONTEXT, "target": "ks.other"}
    session = Session(answers(job_row(2, "done", known=1, context=other)))
    p = store(session).begin(CONTEXT, PLAN, restart=True)
    assert p == Pass(3, False, RANGES, set(), None)
    deleted = [p for q, p in concurrent if q.startswith("DELETE")]
    # The records of passes 1 and 2, of the plan's ranges and of those the passes stored (start 5).
    assert sorted(deleted) == sorted(("ks.t", n, s) for n in (1, 2) for s in (MIN_TOKEN, 0, 5))
    assert session.statements("DELETE FROM") == [
        ('DELETE FROM "ks"."cassio_migration_ranges" WHERE job = %s AND pass_number = %s', ("ks.t", n)) for n in (1, 2)
    ]
    assert [p for _, p in session.statements("SELECT range_start FROM")] == [("ks.t", 1), ("ks.t", 2)]
    assert {q for q, _ in concurrent if q.startswith("DELETE")} == {
        'DELETE FROM "ks"."cassio_migration_digests" WHERE job = ? AND pass_number = ? AND range_start = ?'
    }


def test_a_pass_another_run_started_meanwhile_stops_this_run() -> None:
    with pytest.raises(FatalError, match="another run of this job started pass 1 meanwhile"):
        store(Session(answers(None, applied=False))).begin(CONTEXT, PLAN, restart=False)
    with pytest.raises(FatalError, match="another run of this job changed pass 5 meanwhile"):
        store(Session(answers(None, applied=False))).finish_pass(Pass(5, False, RANGES, set(), None))


def test_a_plan_with_a_gap_is_never_stored() -> None:
    session = Session(answers(None))
    with pytest.raises(PlanError):
        store(session).begin(CONTEXT, [TokenRange(MIN_TOKEN, 0)], restart=False)
    assert session.statements("INSERT") == []


def test_the_state_of_another_job_is_refused_unless_restarting() -> None:
    row = job_row(1, "done", context={"source": "ks.a", "target": "ks.b"})
    with pytest.raises(
        UsageError, match=r"belongs to a different job \(source: 'ks.a' -> 'ks.old', target: 'ks.b' -> 'ks.t'\)"
    ):
        store(Session(answers(row))).check_context(CONTEXT, restart=False)
    with pytest.raises(UsageError, match=r"run with --restart to discard it, or choose another TARGET_TABLE$"):
        store(Session(answers(row))).check_context(CONTEXT, restart=False)
    assert store(Session(answers(row))).check_context(CONTEXT, restart=True) is row
    same = job_row(1, "done")
    assert store(Session(answers(same))).check_context(CONTEXT, restart=False) is same


def test_finishing_a_pass_drops_the_record_its_ranges_now_hold(concurrent: list[tuple[str, Any]]) -> None:
    session = Session(answers(None))
    store(session).finish_pass(Pass(5, False, RANGES, set(), 4))
    ((query, params),) = session.statements("UPDATE")
    assert query.endswith("IF pass_number = %s AND pass_status = 'running'") and params[1:] == ("ks.t", 5)
    assert sorted(p for _, p in concurrent) == sorted(("ks.t", 4, s) for s in (MIN_TOKEN, 0, 5))
    assert session.statements("DELETE FROM") == []  # the range rows stay: reports read them
    concurrent.clear()
    store(Session(answers(None))).finish_pass(Pass(1, False, RANGES, set(), None))
    assert concurrent == []


@pytest.mark.parametrize(
    ("row", "done", "expected"),
    [
        (None, set(), None),  # no job
        (job_row(3, "running"), set(), None),  # no range ever completed
        (job_row(3, "running"), {0}, {0: 3}),
        (job_row(3, "running", known=2), {0}, {MIN_TOKEN: 2, 0: 3}),  # not done yet: the last completed pass's
        (job_row(3, "done", known=2), {MIN_TOKEN, 0}, {MIN_TOKEN: 3, 0: 3}),
    ],
)
def test_records_say_which_pass_holds_each_ranges_record(row: Any, done: set[int], expected: Any) -> None:
    session = Session(answers(row, range_rows(done)))
    found = store(session).records()
    assert found == ((RANGES, expected) if expected is not None else None)
    assert all(p == ("ks.t", 3) for _, p in session.statements("SELECT range_start"))


def test_records_of_a_keyspace_without_state_tables() -> None:
    def answer(query: str, params: Any) -> Result:
        raise InvalidRequest("unconfigured table cassio_migration_jobs")

    assert store(Session(answer)).records() is None


def test_results_read_the_done_ranges_with_their_counts() -> None:
    rows = [
        SimpleNamespace(
            range_start=0,
            range_end=9,
            status="done",
            rows_read=5,
            rows_written=3,
            rows_rejected=1,
            rows_skipped=1,
            bytes=70,
            duration_ms=1500,
            worker="h:12:t",
        ),
        SimpleNamespace(
            range_start=9,
            range_end=20,
            status="done",
            rows_read=None,
            rows_written=None,
            rows_rejected=None,
            rows_skipped=None,
            bytes=None,
            duration_ms=None,
            worker=None,
        ),
        SimpleNamespace(range_start=20, range_end=30, status="running"),
    ]
    session = Session(lambda q, p: Result(rows))
    results = store(session).results(2)
    assert session.executed[0][1] == ("ks.t", 2) and '"ks"."cassio_migration_ranges"' in session.executed[0][0]
    assert results == [
        RangeResult(0, 9, Counts(5, 3, 1, 1, 70), 1.5, WorkerId("h", 12, "t")),
        RangeResult(9, 20, Counts(), 0.0, WorkerId()),
    ]


def test_a_range_is_done_once_its_record_is_stored(concurrent: list[tuple[str, Any]]) -> None:
    session = Session()
    digest = Digest.from_chunks([(7).to_bytes(8, "little")])
    result = RangeResult(0, 9, Counts(5, 3, 1, 1, 70), 1.2345, WorkerId("h", 12, "t"))
    store(session).range_done(2, result, digest)
    (delete, update) = session.executed
    assert delete == (delete[0], ("ks.t", 2, 0)) and delete[0].startswith("DELETE FROM")
    assert (
        delete[0]
        == 'DELETE FROM "ks"."cassio_migration_digests" WHERE job = %s AND pass_number = %s AND range_start = %s'
    )
    insert = 'INSERT INTO "ks"."cassio_migration_digests" (job, pass_number, range_start, chunk, hashes) VALUES (?, ?, ?, ?, ?)'
    assert concurrent == [(insert, ("ks.t", 2, 0, 0, (7).to_bytes(8, "little")))]
    assert update[0].startswith('UPDATE "ks"."cassio_migration_ranges" SET status = \'done\', rows_read = %s,')
    assert update[0].endswith(" WHERE job = %s AND pass_number = %s AND range_start = %s")
    assert update[1][:5] == (5, 3, 1, 1, 70) and update[1][6:] == (1234, "h:12:t", "ks.t", 2, 0)
    assert abs(update[1][5] - time.time() * 1000) < 60_000


def test_a_digest_is_read_back_from_its_chunks() -> None:
    chunks = [SimpleNamespace(hashes=(h).to_bytes(8, "little")) for h in (9, 3)]
    session = Session(lambda q, p: Result(chunks))
    assert store(session).digest(2, 0).hashes.tolist() == [3, 9]
    assert session.executed[0] == (
        'SELECT hashes FROM "ks"."cassio_migration_digests" WHERE job = %s AND pass_number = %s AND range_start = %s',
        ("ks.t", 2, 0),
    )


def test_an_old_state_table_gets_the_column_it_lacks() -> None:
    session = Session(lambda q, p: Result([SimpleNamespace(column_name="job")] if "system_schema" in q else []))
    store(session).create_tables()
    assert [q for q, _ in session.statements("ALTER")] == [
        'ALTER TABLE "ks"."cassio_migration_jobs" ADD known_pass int'
    ]
    session = Session(lambda q, p: Result([SimpleNamespace(column_name="known_pass")] if "system_schema" in q else []))
    store(session).create_tables()
    assert session.statements("ALTER") == []


def test_writes_that_failed_are_tried_again_alone_and_a_refusal_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[list[Any]] = []

    def flaky(session: Any, statement: Any, params: list[Any], **kwargs: Any) -> list[tuple[bool, Any]]:
        tries.append(list(params))
        return [(len(tries) > 1 or p != 2, OperationTimedOut("slow")) for p in params]

    monkeypatch.setattr(state_module, "execute_concurrent_with_args", flaky)
    store(Session())._execute_many(SimpleNamespace(query_string="q"), [1, 2, 3], "storing the plan")  # type: ignore[list-item]
    assert tries == [[1, 2, 3], [2]]

    def refused(session: Any, statement: Any, params: list[Any], **kwargs: Any) -> list[tuple[bool, Any]]:
        return [(False, InvalidRequest("no"))]

    monkeypatch.setattr(state_module, "execute_concurrent_with_args", refused)
    with pytest.raises(FatalError, match=r"storing the plan failed: .*no; the state is saved"):
        store(Session())._execute_many(SimpleNamespace(query_string="q"), [1], "storing the plan")  # type: ignore[list-item]


def test_a_started_range_names_its_worker() -> None:
    session = Session()
    store(session).range_started(2, TokenRange(0, 9), WorkerId("h", 12, "t"))
    ((query, params),) = session.executed
    assert query.startswith(
        'UPDATE "ks"."cassio_migration_ranges" SET status = \'running\', started_at = %s, worker = %s'
    )
    assert abs(params[0] - time.time() * 1000) < 60_000 and params[1:] == ("h:12:t", "ks.t", 2, 0)
