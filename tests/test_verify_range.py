"""A RangeVerifier over tables held in memory: the verdict of each kind of row, and what --delete-extra
and --dry-run do to extras (the scans and the CQL are exercised on the real node in test_verify/test_adversary)."""

from __future__ import annotations

import threading
import uuid
from array import array
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from cassio.table.cql import MockDBSession

from cassio_migration.digest import Digest, Records, row_hash
from cassio_migration.job import Clusters, Job, RunOptions
from cassio_migration.legacy import LegacyTable
from cassio_migration.plan import TokenRange
from cassio_migration.target import TargetSpec
from cassio_migration.verify import RangeVerifier, VerifyCounts

SOURCE = LegacyTable("ks", "legacy", "uuid", 3)
TARGET = TargetSpec("ks", "t", "uuid", 3)
RANGE = TokenRange(0, 100)
VECTOR = [0.6, 0.0, 0.8]


class Session(MockDBSession):
    """Prepares anything; records what it executes; no token map (scans go to any node)."""

    cluster = SimpleNamespace(metadata=SimpleNamespace(token_map=None))

    def prepare(self, statement: str) -> Any:  # type: ignore[override]
        return SimpleNamespace(query_string=statement, column_metadata=[], result_metadata=None)


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=i + 1) for i in range(n)]


A, B, C, D, E, X, Y = ids(7)


def source_row(key: uuid.UUID, doc: str, ts: int, token: int) -> tuple[Any, ...]:
    """As the source scan returns it: columns, three write times, three TTLs, the token."""
    return (key, VECTOR, doc, '{"k": "v"}', ts, ts, ts, None, None, None, token)


def verifier(options: RunOptions, copied: list[int]) -> tuple[RangeVerifier, Session]:
    target = Session()
    records = Records({RANGE.start: 1}, lambda number, start: Digest.of(array("Q", copied)))
    v = RangeVerifier(Session(), target, Job(Clusters(), "ks", "legacy", "t"), options, SOURCE, TARGET, records)
    return v, target


def target_row(v: RangeVerifier, key: uuid.UUID, doc: str, ts: int, token: int) -> tuple[Any, ...]:
    """As the target scan returns it: the columns cassio writes, the write times of the timed ones, the token."""
    values = v.transformer.values(key, VECTOR, doc, '{"k": "v"}')
    assert isinstance(values, tuple)
    return (*values, *[ts] * len(v.transformer.timed), token)


def run(options: RunOptions) -> tuple[VerifyCounts, list[Any]]:
    # A matches; B was never copied; C was copied, then deleted in the target; D differs at the same write
    # time; E was rewritten by the application later; X is an extra the migration wrote; Y the application's.
    copied = [row_hash(str(k), 100) for k in (A, C, D, E, X)]
    v, target = verifier(options, copied)
    source = [
        source_row(A, "a", 100, 1),
        source_row(B, "b", 100, 2),
        source_row(C, "c", 100, 3),
        source_row(D, "d", 100, 4),
        source_row(E, "e", 100, 5),
    ]
    targets = [
        target_row(v, A, "a", 100, 1),
        target_row(v, D, "changed", 100, 4),
        target_row(v, E, "app", 200, 5),
        target_row(v, X, "x", 100, 6),
        target_row(v, Y, "y", 150, 7),
    ]
    pages = {id(v.source): [source[:2], source[2:]], id(v.target): [targets[:3], targets[3:]]}
    v._pages = lambda session, statement, r, stop: iter(pages[id(session)])  # type: ignore[method-assign]
    progress: list[int] = []
    out = v.verify(RANGE, threading.Event(), progress.append)
    assert out is not None and sum(progress) == 5
    return out, target.statements


def test_each_kind_of_row_gets_its_verdict_and_the_example_keys() -> None:
    out, executed = run(RunOptions())
    assert out.source_rows == 5 and not out.clean
    assert {c: n for c, n in out.counts.items() if n} == {
        "matching": 1,
        "missing": 1,
        "deleted_in_target": 1,
        "different": 1,
        "target_newer": 1,
        "extra": 2,
    }
    assert out.examples["missing"] == [str(B)] and out.examples["different"] == [str(D)]
    assert out.examples["deleted_in_target"] == [str(C)] and out.examples["extra"] == [str(X), str(Y)]
    assert executed == []  # without --delete-extra nothing is deleted


def test_delete_extra_deletes_only_the_extra_the_migration_wrote_at_its_write_time() -> None:
    out, executed = run(RunOptions(delete_extra=True))
    assert (out.counts["extra_deleted"], out.counts["extra"]) == (1, 1)
    assert out.examples["extra_deleted"] == [str(X)] and out.examples["extra"] == [str(Y)]
    ((statement, params),) = executed
    assert statement.query_string == 'DELETE FROM "ks"."t" USING TIMESTAMP ? WHERE row_id = ?'
    assert params == (100, X)


def test_dry_run_never_deletes() -> None:
    out, executed = run(RunOptions(delete_extra=True, dry_run=True))
    assert out.counts["extra_deleted"] == 1 and executed == []


def test_a_stopped_verification_gives_no_verdict() -> None:
    v, _ = verifier(RunOptions(), [])
    stop = threading.Event()
    stop.set()
    v._pages = lambda session, statement, r, stop: iter([])  # type: ignore[method-assign]
    assert v.verify(RANGE, stop) is None


@pytest.mark.parametrize("delete_extra", [False, True])
def test_an_extra_without_a_write_time_is_never_deleted(delete_extra: bool) -> None:
    v, target = verifier(replace(RunOptions(), delete_extra=delete_extra), [row_hash(str(X), 100)])
    row = (*target_row(v, X, "x", 100, 6)[: len(v.transformer.columns)], *[None] * len(v.transformer.timed), 6)
    out = VerifyCounts()
    v._extra(row, out, v.records.of_range(RANGE.start))
    assert out.counts["extra"] == 1 and target.statements == []
