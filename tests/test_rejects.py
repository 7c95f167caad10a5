"""rejects.py: the rejects record written and read back, workers' files merged, the error budget."""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pytest

from cassio_migration.errors import BudgetSpent, UsageError
from cassio_migration.job import MaxErrors
from cassio_migration.legacy import LegacyTable
from cassio_migration.rejects import ErrorBudget, RejectSink, merge_rejects, replay_rows

SOURCE = LegacyTable("ks", "legacy", "uuid", 3)
KEY = uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b")


def scan_row(ttl: int | None) -> tuple[object, ...]:
    """A row as the range scan returns it: columns, three write times, three TTLs."""
    return (KEY, b"\x00\x01vector", "doc é", "{broken", 1700, 1700, 1700, ttl, ttl, ttl)


def test_a_rejected_row_replays_as_the_scan_returned_it(tmp_path: Path) -> None:
    stream = io.StringIO()
    RejectSink(stream, SOURCE.layout.columns).write(
        str(KEY), "metadata_malformed_json", "not JSON", scan_row(None), 1700, 0
    )
    record = json.loads(stream.getvalue())
    assert (record["key"], record["reason"], record["detail"]) == (str(KEY), "metadata_malformed_json", "not JSON")
    assert record["row"]["document_id"] == str(KEY) and record["row"]["metadata_blob"] == "{broken"
    path = tmp_path / "rejects.jsonl"
    path.write_text(stream.getvalue())
    (row,) = list(replay_rows(str(path), SOURCE))
    # The key and value columns as read, the write time first, the TTL (none) after: newest_write reads it so.
    assert row == (KEY, b"\x00\x01vector", "doc é", "{broken", 1700, None, None, None, None, None)


def test_a_replayed_ttl_counts_down_from_the_read_and_expired_rows_are_dropped(tmp_path: Path) -> None:
    stream = io.StringIO()
    sink = RejectSink(stream, SOURCE.layout.columns)
    sink.write("a", "r", "d", scan_row(3600), 1700, 3600)
    sink.write("b", "r", "d", scan_row(5), 1700, 5)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    for line in lines:
        line["row"]["read_at"] = int(time.time()) - 100  # rejected 100 s ago
    path = tmp_path / "rejects.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replayed = list(replay_rows(str(path), SOURCE))
    assert len(replayed) == 1 and 3490 <= replayed[0][7] <= 3500  # b expired meanwhile


def test_a_line_that_is_not_a_record_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"row": {}}\n')
    with pytest.raises(UsageError, match=r"bad.jsonl, line 1: not a rejects record"):
        list(replay_rows(str(path), SOURCE))


def test_merge_rejects_keeps_each_row_once_and_drops_a_cut_line(tmp_path: Path) -> None:
    (tmp_path / "rejects.jsonl").write_text("")
    (tmp_path / "rejects-h-1.jsonl").write_text('{"key": "a", "n": 1}\n{"key": "b"}\n{"key": "c"')
    (tmp_path / "rejects-h-2.jsonl").write_text('{"key": "a", "n": 2}\n{"key": "d"}\n')
    assert merge_rejects(str(tmp_path)) == ["rejects-h-1.jsonl", "rejects-h-2.jsonl"]
    merged = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [r["key"] for r in merged] == ["a", "b", "d"] and merged[0]["n"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejects.jsonl"]


def test_budget_of_rows_stops_past_the_count() -> None:
    budget = ErrorBudget(MaxErrors(rows=5))
    budget.add(100, 3)
    budget.add(100, 2)  # 5: still allowed
    with pytest.raises(BudgetSpent, match="6 rows rejected, more than the 5 allowed"):
        budget.add(100, 1)


def test_budget_share_waits_for_enough_rows_then_judges_the_share() -> None:
    budget = ErrorBudget(MaxErrors(share=0.01))
    budget.add(500, 50)  # 10%, but only 500 rows read: too early to judge
    with pytest.raises(BudgetSpent, match=r"60 of 1000 rows rejected, more than the 1.00% allowed"):
        budget.add(500, 10)
    ErrorBudget(MaxErrors(share=0.01)).add(2000, 20)  # exactly 1%: allowed


def test_budget_check_total_judges_a_whole_pass() -> None:
    budget = ErrorBudget(MaxErrors(rows=10))
    budget.check_total(50, 10)
    with pytest.raises(BudgetSpent, match="in this pass"):
        budget.check_total(50, 11)
    with pytest.raises(BudgetSpent):
        ErrorBudget(MaxErrors(share=0.5)).check_total(10, 6)  # a pass's share counts even under 1,000 rows
    ErrorBudget().check_total(10, 10)  # no limit


def write_records(path: Path, *records: tuple[str, tuple[object, ...], int]) -> None:
    """Records as the sink writes them: (key, scan row, TTL)."""
    stream = io.StringIO()
    sink = RejectSink(stream, SOURCE.layout.columns)
    for key, row, ttl in records:
        sink.write(key, "r", "d", row, 1700, ttl)
    path.write_text(stream.getvalue(), encoding="utf-8")


def test_a_record_is_readable_text_keeping_nulls_and_numbers() -> None:
    stream = io.StringIO()
    RejectSink(stream, SOURCE.layout.columns).write("k", "r", "d", (KEY, None, "doc é", 7), 1700, 0)
    line = stream.getvalue()
    assert "doc é" in line  # not \u00e9: the file is for people to read and fix
    row = json.loads(line)["row"]
    assert row["embedding_vector"] is None and row["metadata_blob"] == 7 and row["document_id"] == str(KEY)
    assert abs(row["read_at"] - time.time()) < 60
    RejectSink(None, SOURCE.layout.columns).write("k", "r", "d", (KEY,), 1700, 0)  # no stream: nothing to do


def test_a_replayed_ttl_counts_down_from_the_time_the_row_was_read(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    write_records(path, ("a", scan_row(3600), 3600))
    (row,) = list(replay_rows(str(path), SOURCE))
    assert 3590 <= row[7] <= 3600 and row[8:] == (None, None)


def test_replay_skips_blank_lines_and_expired_rows_and_reads_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rejects.jsonl"
    write_records(path, ("gone", scan_row(100), 100), ("last second", scan_row(101), 101), ("kept", scan_row(None), 0))
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in records:
        record["row"]["read_at"] = 1_000_000
    path.write_text("\n\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")  # blank lines between
    monkeypatch.setattr(time, "time", lambda: 1_000_100.5)  # 100 s after the read
    replayed = list(replay_rows(str(path), SOURCE))
    # A TTL of 0 left would write the row with no TTL at all: it has expired, as in the source.
    assert [r[7] for r in replayed] == [1, None]


def test_a_vector_set_to_null_in_the_file_replays_as_null(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    write_records(path, ("a", scan_row(None), 0))
    record = json.loads(path.read_text(encoding="utf-8"))
    record["row"]["embedding_vector_b64"] = None  # the user's fix: no vector
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    (row,) = list(replay_rows(str(path), SOURCE))
    assert row[:4] == (KEY, None, "doc é", "{broken")


def test_merge_rejects_reads_on_past_a_line_that_is_not_a_record(tmp_path: Path) -> None:
    (tmp_path / "rejects-h-1.jsonl").write_text('{"no key": 1}\nnot json\n{"key": "a"}\n')
    assert merge_rejects(str(tmp_path)) == ["rejects-h-1.jsonl"]
    assert (tmp_path / "rejects.jsonl").read_text() == '{"key": "a"}\n'
    assert merge_rejects(str(tmp_path)) == []
