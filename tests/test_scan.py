"""scan.py with a fake session: the SELECT, each row's newest write, paging with retries."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cassandra import ReadTimeout

from cassio_migration.errors import FatalError
from cassio_migration.legacy import HISTORY, LegacyTable
from cassio_migration.retry import RetryPolicy
from cassio_migration.scan import newest_write, replicas_in_order, row_key, scan_pages, source_select


def test_the_select_reads_values_then_their_write_times_then_their_ttls() -> None:
    vector = LegacyTable("ks", "t", "uuid", 3)
    assert source_select(vector) == (
        "SELECT document_id, embedding_vector, document, metadata_blob, WRITETIME(embedding_vector),"
        " WRITETIME(document), WRITETIME(metadata_blob), TTL(embedding_vector), TTL(document), TTL(metadata_blob)"
        ' FROM "ks"."t" WHERE token(document_id) > ? AND token(document_id) <= ?'
    )
    history = LegacyTable("ks", "h", "text", 0, HISTORY)
    assert source_select(history, with_token=True).endswith(
        'TTL(blob), token(session_id) FROM "ks"."h" WHERE token(session_id) > ? AND token(session_id) <= ?'
    )


@pytest.mark.parametrize(
    ("times", "ttls", "expected"),
    [
        ((5, 5, 5), (60, 60, 60), (5, 60)),  # written by cassio: one INSERT
        ((5, 9, 7), (None, 30, 10), (9, 30)),  # written piecewise: the newest write and its TTL
        ((None, 4, None), (None, None, None), (4, 0)),  # NULL values have no write time; no TTL is 0
        ((None, None, None), (None, None, None), (None, 0)),  # every value NULL
    ],
)
def test_newest_write(times: tuple[Any, ...], ttls: tuple[Any, ...], expected: tuple[Any, int]) -> None:
    row = ("key", "v", "d", "m", *times, *ttls)
    assert newest_write(row, 4, 3) == expected


def test_row_key_is_the_key_or_a_json_list_of_its_parts() -> None:
    assert row_key(("k1", "v"), 1) == "k1"
    assert row_key(("llm/prompt", "['a', 'é']", "v"), 2) == "[\"llm/prompt\", \"['a', 'é']\"]"


class Result:
    def __init__(self, rows: list[int], paging_state: Any) -> None:
        self.current_rows, self.paging_state = rows, paging_state


class Bound:
    fetch_size = 0


class Statement:
    def bind(self, params: Any) -> Bound:
        return Bound()


class PagingSession:
    """Serves 0..count-1 in pages of fetch_size; times out the first try of the pages in `fail_at`."""

    def __init__(self, count: int, fail_at: set[int]) -> None:
        self.count, self.fail_at = count, set(fail_at)
        self.sizes: list[int] = []
        self.hosts: list[Any] = []

    def execute(self, bound: Bound, paging_state: Any = None, host: Any = None) -> Result:
        self.hosts.append(host)
        start = paging_state or 0
        if start in self.fail_at:
            self.fail_at.discard(start)
            raise ReadTimeout("timed out")
        self.sizes.append(bound.fetch_size)
        end = min(self.count, start + bound.fetch_size)
        return Result(list(range(start, end)), end if end < self.count else None)


def test_a_timed_out_page_is_tried_again_halved_and_no_row_is_lost_or_repeated() -> None:
    session = PagingSession(1000, fail_at={0, 400})
    retried: list[int] = []
    pages = scan_pages(
        session,  # type: ignore[arg-type]
        Statement(),  # type: ignore[arg-type]
        (0, 1),
        200,
        RetryPolicy(10, first_delay_s=0.001),
        threading.Event(),
        on_retry=lambda: retried.append(1),
    )
    rows = [r for page in pages for r in page]
    assert rows == list(range(1000)) and len(retried) == 2
    assert session.sizes[:2] == [100, 100] and session.sizes[-1] == 50  # halved at each timeout, never grown back


def test_a_page_that_keeps_failing_stops_naming_what_failed() -> None:
    class Down:
        def execute(self, bound: Bound, paging_state: Any = None, host: Any = None) -> Result:
            raise ReadTimeout("node down")

    pages = scan_pages(
        Down(),
        Statement(),
        (0, 1),
        200,
        RetryPolicy(0.05, first_delay_s=0.01),
        threading.Event(),
        what="reading the target",
    )  # type: ignore[arg-type]
    with pytest.raises(FatalError, match=r"^reading the target still failed after 0.05 s of retries"):
        list(pages)


def test_a_stopped_scan_yields_nothing_more() -> None:
    stop = threading.Event()
    stop.set()
    assert list(scan_pages(PagingSession(10, set()), Statement(), (0, 1), 5, RetryPolicy(), stop)) == []  # type: ignore[arg-type]


def test_replicas_up_come_first_from_a_place_the_range_picks() -> None:
    up = {"a": True, "b": False, "c": True}
    order = [replicas_in_order({"b", "c", "a"}, start, up.__getitem__) for start in range(3)]
    assert order == [["a", "c", "b"], ["c", "a", "b"], ["c", "a", "b"]]  # b is down: last, but still tried
    assert {o[0] for o in (replicas_in_order(["a", "b", "c"], s, lambda h: True) for s in range(3))} == {"a", "b", "c"}
    assert replicas_in_order([], 5, lambda h: True) == []


def test_a_failed_page_moves_on_to_the_next_replica_and_stays_there() -> None:
    session = PagingSession(30, fail_at={10})
    pages = scan_pages(
        session,  # type: ignore[arg-type]
        Statement(),  # type: ignore[arg-type]
        (0, 1),
        10,
        RetryPolicy(10, first_delay_s=0.001),
        threading.Event(),
        hosts=["n1", "n2"],  # type: ignore[list-item]
    )
    assert [r for page in pages for r in page] == list(range(30))
    assert session.hosts == ["n1", "n1", "n2", "n2"]  # page 2 timed out on n1: tried again, and on, on n2
