"""verify.py's pure parts: the verdict of a row, and the token-ordered merge of two scans."""

from __future__ import annotations

import pytest

from cassio_migration.verify import CATEGORIES, VerifyCounts, by_token, classify, merged

ROW = {"row_id": "a", "body_blob": "text", "metadata": {"k": "v"}}
OTHER = {**ROW, "body_blob": "changed"}


@pytest.mark.parametrize(
    ("want", "got", "source_ts", "target_ts", "copied", "verdict"),
    [
        (ROW, ROW, 100, 100, False, "matching"),
        (ROW, ROW, 100, 500, True, "matching"),  # rewritten with the same values later: still matching
        (ROW, None, 100, None, False, "missing"),  # never copied (a late row, or no pass yet): it should be there
        (ROW, None, 100, None, True, "deleted_in_target"),  # this version was copied, and is gone since
        (ROW, OTHER, 100, 100, False, "different"),
        (ROW, OTHER, 100, 90, True, "different"),  # an older target row: the copy lost it
        (ROW, OTHER, 100, 100, True, "different"),  # the same write time, other values: not the application's
        (ROW, OTHER, 100, 101, False, "target_newer"),  # the application wrote it after the source row
        (None, None, 100, None, False, "rejected"),
        (None, ROW, 100, 100, True, "rejected"),  # a replayed fix: not compared
        (ROW, ROW, None, 100, False, "rejected"),  # every value NULL: no write time
        (ROW, None, None, None, True, "rejected"),
    ],
)
def test_classify(want, got, source_ts, target_ts, copied, verdict) -> None:  # type: ignore[no-untyped-def]
    assert classify(want, got, source_ts, target_ts, copied) == verdict


def test_a_clean_verdict_needs_no_missing_and_no_different_row() -> None:
    for category in CATEGORIES:
        counts = VerifyCounts()
        counts.add(category, "k")
        assert counts.clean is (category not in ("missing", "different")), category


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


def test_counts_keep_at_most_five_examples_and_none_of_matching_rows() -> None:
    counts = VerifyCounts()
    for i in range(7):
        counts.add("missing", i)
        counts.add("matching", i)
    assert counts.counts["missing"] == 7 and counts.counts["matching"] == 7
    assert counts.examples["missing"] == ["0", "1", "2", "3", "4"] and counts.examples["matching"] == []


def test_by_token_reads_the_token_from_the_last_column() -> None:
    # Rows as the scans return them: (key, a value, token); rows with the same value but other tokens.
    pages = [[("a", "v", 1), ("b", "v", 2)], [("c", "w", 2)]]
    assert list(by_token(pages)) == [(1, [("a", "v", 1)]), (2, [("b", "v", 2), ("c", "w", 2)])]


def test_merge_ends_when_both_scans_end_on_the_same_token() -> None:
    source = by_token([[("s1", 1), ("s2", 2)]])
    target = by_token([[("t2", 2)]])
    assert list(merged(source, target)) == [([("s1", 1)], []), ([("s2", 2)], [("t2", 2)])]
    assert list(merged(by_token([[("s", 1)]]), by_token([[("t", 1)]]))) == [([("s", 1)], [("t", 1)])]
