"""verify.py's pure parts: the verdict of a row, and the token-ordered merge of two scans."""

from __future__ import annotations

import pytest

from cassio_migration.verify import VerifyCounts, by_token, classify, merged, migration_wrote

ROW = {"row_id": "a", "body_blob": "text", "metadata": {"k": "v"}}
OTHER = {**ROW, "body_blob": "changed"}


@pytest.mark.parametrize(
    ("want", "got", "source_ts", "target_ts", "copied_before", "verdict"),
    [
        (ROW, ROW, 100, 100, None, "matching"),
        (ROW, ROW, 100, 500, 50, "matching"),  # rewritten with the same values later: still matching
        (ROW, None, 100, None, None, "missing"),  # no completed pass: it should be there
        (ROW, None, 100, None, 50, "missing"),  # written after the last completed pass began: not copied yet
        (ROW, None, 100, None, 200, "deleted_in_target"),  # copied by a completed pass, gone since
        (ROW, OTHER, 100, 100, None, "different"),
        (ROW, OTHER, 100, 90, None, "different"),  # an older target row: the copy lost it
        (ROW, OTHER, 100, 101, None, "target_newer"),  # the application wrote it after the source row
        (None, None, 100, None, None, "rejected"),
        (None, ROW, 100, 100, None, "rejected"),  # a replayed fix: not compared
        (ROW, ROW, None, 100, None, "rejected"),  # every value NULL: no write time
    ],
)
def test_classify(want, got, source_ts, target_ts, copied_before, verdict) -> None:  # type: ignore[no-untyped-def]
    assert classify(want, got, source_ts, target_ts, copied_before) == verdict


@pytest.mark.parametrize(
    ("written", "copied_before", "wrote"),
    [(100, 200, True), (200, 200, False), (300, 200, False), (None, 200, False), (100, None, False)],
)
def test_only_rows_written_before_the_last_completed_pass_are_the_migrations(written, copied_before, wrote) -> None:  # type: ignore[no-untyped-def]
    assert migration_wrote(written, copied_before) is wrote


def rows(*tokens: int) -> list[tuple[str, int]]:
    return [(f"r{i}", t) for i, t in enumerate(tokens)]


def test_by_token_groups_consecutive_rows_across_pages() -> None:
    pages = [[("a", 1), ("b", 2)], [("c", 2), ("d", 3)], [], [("e", 3)]]
    assert list(by_token(pages)) == [(1, [("a", 1)]), (2, [("b", 2), ("c", 2)]), (3, [("d", 3), ("e", 3)])]
    assert list(by_token([])) == []


def test_merge_pairs_tokens_and_keeps_the_unmatched_of_either_side() -> None:
    source = by_token([[("s1", 1), ("s2", 3), ("s3", 5)], [("s4", 5), ("s5", 9)]])
    target = by_token([[("t0", 0), ("t1", 1)], [("t3", 5), ("t4", 7)]])
    assert list(merged(source, target)) == [
        ([], [("t0", 0)]),
        ([("s1", 1)], [("t1", 1)]),
        ([("s2", 3)], []),
        ([("s3", 5), ("s4", 5)], [("t3", 5)]),
        ([], [("t4", 7)]),
        ([("s5", 9)], []),
    ]


def test_merge_of_empty_scans() -> None:
    assert list(merged(iter([]), iter([]))) == []
    assert list(merged(by_token([[("s", 1)]]), iter([]))) == [([("s", 1)], [])]


def test_counts_merge_keeps_a_few_examples() -> None:
    a, b = VerifyCounts(), VerifyCounts()
    for i in range(4):
        a.add("missing", f"a{i}")
        b.add("missing", f"b{i}")
    a.add("matching", "x")
    a.source_rows, b.source_rows = 5, 4
    a.merge(b)
    assert (a.source_rows, a.counts["missing"], a.counts["matching"]) == (9, 8, 1)
    assert a.examples["missing"] == ["a0", "a1", "a2", "a3", "b0"] and a.examples["matching"] == []
    assert not a.clean and VerifyCounts().clean
