"""A RangeVerifier over tables held in memory: the verdict of each kind of row, and what --delete-extra
and --dry-run do to extras (the scans and the CQL are exercised on the real node in test_verify/test_adversary)."""

from __future__ import annotations

import json
import threading
import uuid
from array import array
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from cassandra import InvalidRequest, OperationTimedOut
from cassio.table.cql import MockDBSession

from cassio_migration import verify as verify_module
from cassio_migration.digest import Digest, Records, row_hash
from cassio_migration.errors import FatalError
from cassio_migration.job import Clusters, Job, RunOptions
from cassio_migration.legacy import LegacyTable
from cassio_migration.plan import MAX_TOKEN, MIN_TOKEN, TokenRange
from cassio_migration.scan import source_row_select, source_select
from cassio_migration.target import TargetSpec
from cassio_migration.verify import RangeVerifier, VerifyCounts

SOURCE = LegacyTable("ks", "legacy", "uuid", 3)
TARGET = TargetSpec("ks", "t", "uuid", 3)
RANGE = TokenRange(MIN_TOKEN, MAX_TOKEN)
VECTOR = [0.6, 0.0, 0.8]


class Session(MockDBSession):
    """Prepares anything; records what it executes; no token map (scans go to any node)."""

    cluster = SimpleNamespace(metadata=SimpleNamespace(token_map=None))

    def prepare(self, statement: str) -> Any:  # type: ignore[override]
        # A UUID partition key's routing key is its 16 bytes.
        bind = lambda values: SimpleNamespace(routing_key=values[0].bytes)  # noqa: E731
        return SimpleNamespace(query_string=statement, column_metadata=[], result_metadata=None, bind=bind)


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=i + 1) for i in range(n)]


A, B, C, D, E, F, X, Y, Z = ids(9)


def source_row(key: uuid.UUID, doc: str, ts: int, token: int) -> tuple[Any, ...]:
    """As the source scan returns it: columns, three write times, three TTLs, the token."""
    return (key, VECTOR, doc, '{"k": "v"}', ts, ts, ts, None, None, None, token)


def verifier(
    options: RunOptions, copied: list[int], job: Job | None = None, target: TargetSpec = TARGET
) -> tuple[RangeVerifier, Session]:
    source_session, target_session = Session(), Session()
    records = Records({MIN_TOKEN: 1}, lambda number, start: Digest.of(array("Q", copied)))
    job = job or Job(Clusters(), "ks", "legacy", "t")
    v = RangeVerifier(source_session, target_session, job, options, SOURCE, target, records)
    assert (v.source, v.target, v.policy.seconds) == (source_session, target_session, options.retry_seconds)
    return v, target_session


def target_row(
    v: RangeVerifier, key: Any, doc: str, ts: int, token: int, metadata: str = '{"k": "v"}'
) -> tuple[Any, ...]:
    """As the target scan returns it: the columns cassio writes, the write times of the timed ones, the token."""
    values = v.transformer.values(key if isinstance(key, uuid.UUID) else uuid.UUID(key), VECTOR, doc, metadata)
    assert isinstance(values, tuple)
    return (*values, *[ts] * len(v.transformer.timed), token)


def scans(monkeypatch: pytest.MonkeyPatch, v: RangeVerifier, source: list[list[Any]], target: list[list[Any]]) -> None:
    """The two range scans give these pages."""

    def scan_pages(session: Any, statement: Any, bounds: Any, page_size: int, policy: Any, stop: Any, what: str) -> Any:
        assert bounds == (RANGE.start, RANGE.end) and page_size == 77 and policy is v.policy
        assert isinstance(stop, threading.Event)
        if session is v.source:
            assert statement is v.source_range and what == "reading the source"
            return iter(source)
        assert session is v.target and statement is v.target_range and what == "reading the target"
        return iter(target)

    monkeypatch.setattr(verify_module, "scan_pages", scan_pages)


def run(monkeypatch: pytest.MonkeyPatch, options: RunOptions) -> tuple[VerifyCounts, list[Any], list[int]]:
    # A matches; B was never copied; C was copied, then deleted in the target; D differs at the same write
    # time; E was rewritten by the application later (its newest write time is the last); F is rejected by
    # the rules; X is an extra the migration wrote; Y the application's.
    copied = [row_hash(str(k), 100) for k in (A, C, D, E, X)]
    v, target = verifier(replace(options, page_size=77), copied)
    source = [
        source_row(A, "a", 100, 1),
        source_row(B, "b", 100, 2),
        source_row(C, "c", 100, 3),
        source_row(D, "d", 100, 4),
        source_row(E, "e", 100, 5),
        (*source_row(F, "f", 100, 5)[:3], "[1]", *source_row(F, "f", 100, 5)[4:]),
    ]
    newer = target_row(v, E, "app", 100, 5)
    newer = (*newer[:-2], 200, newer[-1])
    targets = [
        target_row(v, A, "a", 100, 1),
        target_row(v, D, "changed", 100, 4),
        newer,
        target_row(v, X, "x", 100, 6),
        target_row(v, Y, "y", 150, 7),
    ]
    scans(monkeypatch, v, [source[:2], source[2:]], [targets[:3], targets[3:]])
    progress: list[int] = []
    out = v.verify(RANGE, threading.Event(), progress.append)
    assert out is not None and progress == [1, 1, 1, 1, 2]  # a token with target rows only is no progress
    return out, target.statements, progress


def test_the_scans_ask_for_the_range_with_tokens_and_write_times() -> None:
    v, _ = verifier(RunOptions(), [])
    timed = ", ".join(f"WRITETIME({c})" for c in v.transformer.timed)
    assert v.source_range.query_string == source_select(SOURCE, with_token=True)
    assert v.target_range.query_string == (
        f'SELECT body_blob, vector, attributes_blob, metadata_s, row_id, {timed}, token(row_id) FROM "ks"."t"'
        " WHERE token(row_id) > ? AND token(row_id) <= ?"
    )
    assert v.target_by_key.query_string.endswith('FROM "ks"."t" WHERE row_id = ?')
    assert v.source_by_key.query_string == 'SELECT document_id FROM "ks"."legacy" WHERE document_id = ?'
    clustered, _ = verifier(RunOptions(), [], target=TargetSpec("ks", "t", "uuid", 3, partition_id="p"))
    assert clustered.target_by_key.query_string.endswith('FROM "ks"."t" WHERE partition_id = ? AND row_id = ?')
    assert "token(partition_id) FROM" in clustered.target_range.query_string


def test_each_kind_of_row_gets_its_verdict_and_the_example_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    out, executed, _ = run(monkeypatch, RunOptions())
    assert out.source_rows == 6 and not out.clean
    assert {c: n for c, n in out.counts.items() if n} == {
        "matching": 1,
        "missing": 1,
        "deleted_in_target": 1,
        "different": 1,
        "target_newer": 1,
        "rejected": 1,
        "extra": 2,
    }
    assert out.examples["missing"] == [str(B)] and out.examples["different"] == [str(D)]
    assert out.examples["deleted_in_target"] == [str(C)] and out.examples["extra"] == [str(X), str(Y)]
    assert executed == []  # without --delete-extra nothing is deleted


def test_delete_extra_deletes_only_the_extra_the_migration_wrote_at_its_write_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, executed, _ = run(monkeypatch, RunOptions(delete_extra=True))
    assert (out.counts["extra_deleted"], out.counts["extra"]) == (1, 1)
    assert out.examples["extra_deleted"] == [str(X)] and out.examples["extra"] == [str(Y)]
    ((statement, params),) = executed
    assert statement.query_string == 'DELETE FROM "ks"."t" USING TIMESTAMP ? WHERE row_id = ?'
    assert params == (100, X)


def test_dry_run_never_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    out, executed, _ = run(monkeypatch, RunOptions(delete_extra=True, dry_run=True))
    assert out.counts["extra_deleted"] == 1 and executed == []


def test_without_a_record_a_missing_row_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    v = RangeVerifier(
        Session(), Session(), Job(Clusters(), "ks", "legacy", "t"), RunOptions(page_size=77), SOURCE, TARGET
    )
    scans(monkeypatch, v, [[source_row(A, "a", 100, 1)]], [])
    out = v.verify(RANGE, threading.Event())
    assert out is not None and out.counts["missing"] == 1


def test_a_stopped_verification_gives_no_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    v, _ = verifier(RunOptions(page_size=77), [])
    stop = threading.Event()
    stop.set()
    scans(monkeypatch, v, [], [])
    assert v.verify(RANGE, stop) is None


@pytest.mark.parametrize("delete_extra", [False, True])
def test_an_extra_without_a_write_time_is_never_deleted(delete_extra: bool) -> None:
    v, target = verifier(replace(RunOptions(), delete_extra=delete_extra), [row_hash(str(X), 100)])
    row = (*target_row(v, X, "x", 100, 6)[: len(v.transformer.columns)], *[None] * len(v.transformer.timed), 6)
    out = VerifyCounts()
    v._extra(row, out, v.records.of_range(RANGE.start))
    assert out.counts["extra"] == 1 and target.statements == []


def test_text_keys_are_compared_by_looking_rows_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target whose keys are the source's UUIDs as text: its rows are found by key, extras by their source key."""
    job = Job(Clusters(), "ks", "legacy", "t", target_key_type="text")
    copied = [row_hash(str(k), 100) for k in (A, X)]
    v, target = verifier(RunOptions(page_size=77, delete_extra=True), copied, job, TargetSpec("ks", "t", "text", 3))
    assert v.transformer.same_order is False
    in_target = {
        str(A): target_row(v, A, "a", 100, 1),
        str(D): target_row(v, D, "changed", 100, 4),
        str(X): target_row(v, X, "x", 100, 6),
        str(Y): target_row(v, Y, "y", 150, 7),
        "not-a-uuid": (*target_row(v, Z, "z", 100, 8)[:4], "not-a-uuid", *target_row(v, Z, "z", 100, 8)[5:]),
    }
    in_source = {A, B, D}
    rejected = (*source_row(F, "f", 100, 5)[:3], "[1]", *source_row(F, "f", 100, 5)[4:])
    source = [[source_row(A, "a", 100, 1), source_row(B, "b", 100, 2)], [source_row(D, "d", 100, 4), rejected]]
    scans(monkeypatch, v, source, [list(in_target.values())])
    asked: list[tuple[str, list[Any]]] = []

    def look_up(session: Any, statement: Any, keys: list[Any], concurrency: int, raise_on_first_error: bool) -> Any:
        assert concurrency == 64 and raise_on_first_error is False
        if session is v.target:
            assert statement is v.target_by_key
            asked.append(("target", keys))
            return [(True, [in_target[k[0]]] if k[0] in in_target else []) for k in keys]
        assert session is v.source and statement is v.source_by_key
        asked.append(("source", keys))
        return [(True, [(k[0],)] if k[0] in in_source else []) for k in keys]

    monkeypatch.setattr(verify_module, "execute_concurrent_with_args", look_up)
    progress: list[int] = []
    out = v.verify(RANGE, threading.Event(), progress.append)
    assert out is not None and progress == [2, 2]
    assert asked[:2] == [("target", [(str(A),), (str(B),)]), ("target", [(str(D),)])]
    assert asked[2:] == [("source", [(A,), (D,), (X,), (Y,)])]
    assert {c: n for c, n in out.counts.items() if n} == {
        "matching": 1,
        "missing": 1,
        "different": 1,
        "rejected": 1,
        "extra": 2,
        "extra_deleted": 1,
    }
    assert out.examples["extra"] == ["not-a-uuid", str(Y)] and out.examples["extra_deleted"] == [str(X)]
    ((_, params),) = target.statements
    assert params == (100, str(X))  # found by its token in the record of its source range


def test_a_key_the_database_refuses_has_no_row_and_other_errors_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    v, _ = verifier(RunOptions(retry_seconds=0), [])

    def look_up(session: Any, statement: Any, keys: list[Any], **kwargs: Any) -> Any:
        return [(False, InvalidRequest("Key length of 70000 is longer than maximum of 65535")), (True, [("r",)])]

    monkeypatch.setattr(verify_module, "execute_concurrent_with_args", look_up)
    assert v._by_key(v.source, v.source_by_key, [("a",), ("b",)]) == [[], [("r",)]]

    def broken(session: Any, statement: Any, keys: list[Any], **kwargs: Any) -> Any:
        return [(False, InvalidRequest("unconfigured table t"))]

    monkeypatch.setattr(verify_module, "execute_concurrent_with_args", broken)
    with pytest.raises(InvalidRequest, match="unconfigured table"):  # not the row's: the run stops
        v._by_key(v.target, v.target_by_key, [("a",)])


def test_a_lookup_that_keeps_failing_names_what_it_was_looking_up(monkeypatch: pytest.MonkeyPatch) -> None:
    v, _ = verifier(RunOptions(retry_seconds=0), [])

    def timed_out(session: Any, statement: Any, keys: list[Any], **kwargs: Any) -> Any:
        return [(False, OperationTimedOut("slow"))]

    monkeypatch.setattr(verify_module, "execute_concurrent_with_args", timed_out)
    with pytest.raises(FatalError, match=r"^looking up rows in the source still failed"):
        v._by_key(v.source, v.source_by_key, [("a",)])
    with pytest.raises(FatalError, match=r"^looking up rows in the target still failed"):
        v._by_key(v.target, v.target_by_key, [("a",)])


def test_a_row_whose_partition_field_changed_is_extra_in_its_old_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the partition from a metadata field, a target row is the source row's only while the field still says so."""
    target = TargetSpec("ks", "t", "uuid", 3, partition_field="tenant")
    v, _ = verifier(RunOptions(page_size=77), [], target=target)
    assert v.source_by_key.query_string == source_row_select(SOURCE)

    def source(key: uuid.UUID, tenant: str) -> tuple[Any, ...]:
        return (key, VECTOR, "doc", json.dumps({"tenant": tenant}), 100, 100, 100, None, None, None)

    def in_target(key: uuid.UUID, tenant: str) -> tuple[Any, ...]:
        return target_row(v, key, "doc", 100, 1, metadata=json.dumps({"tenant": tenant}))

    # A stays in acme; B moved from acme to beta (both its rows are in the target); C is gone from the source.
    now = {A: source(A, "acme"), B: source(B, "beta")}
    scans(
        monkeypatch,
        v,
        [list(now.values())],
        [[in_target(A, "acme"), in_target(B, "acme"), in_target(B, "beta"), in_target(C, "x")]],
    )

    def look_up(session: Any, statement: Any, keys: list[Any], **kwargs: Any) -> Any:
        if session is v.target:
            return [(True, [in_target(k[1], k[0])]) for k in keys]  # (partition, row_id): both there
        return [(True, [now[k[0]]] if k[0] in now else []) for k in keys]

    monkeypatch.setattr(verify_module, "execute_concurrent_with_args", look_up)
    out = v.verify(RANGE, threading.Event())
    assert out is not None and out.counts["matching"] == 2
    assert out.counts["extra"] == 2 and out.examples["extra"] == [str(B), str(C)]
