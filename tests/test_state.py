"""state.py's pure parts: counts, worker identity, the job-context comparison."""

from __future__ import annotations

from cassio_migration.state import Counts, RangeResult, WorkerId, context_differences, total


def test_counts_add_up_and_balance() -> None:
    a, b = Counts(10, 7, 2, 1, 100), Counts(5, 5, 0, 0, 50)
    assert a + b == Counts(15, 12, 2, 1, 150)
    assert (a + b).balanced and not Counts(3, 1, 1, 0).balanced
    assert total([RangeResult(0, 1, a), RangeResult(1, 2, b)]) == a + b
    assert total([]) == Counts()


def test_worker_id_round_trips_through_its_text() -> None:
    worker = WorkerId("host-1", 4242, "range_0")
    assert str(worker) == "host-1:4242:range_0" and worker.process == "host-1:4242"
    assert WorkerId.parse(str(worker)) == worker
    assert WorkerId.parse(None) == WorkerId() and WorkerId.parse("h:x:t").pid == 0
    me = WorkerId.current()
    assert me.pid > 0 and me.host and me.thread == "MainThread"


def test_context_differences_name_each_changed_key() -> None:
    stored = {"source": "ks.a", "target": "ks.b", "metadata_indexing": "all", "gone": 1}
    context = {"source": "ks.a", "target": "ks.b", "metadata_indexing": "allow:x", "new": True}
    assert context_differences(stored, context) == [
        "gone: 1 -> None",
        "metadata_indexing: 'all' -> 'allow:x'",
        "new: None -> True",
    ]
    assert context_differences(stored, dict(stored)) == []


def test_a_worker_thread_name_may_hold_colons() -> None:
    assert WorkerId.parse("host:12:pool:range_3") == WorkerId("host", 12, "pool:range_3")
