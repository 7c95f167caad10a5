"""The range scan shared by copy, verify and the benchmark: the SELECT, each row's newest
write time and its TTL, and paging with retries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from .cql import qualified
from .legacy import LegacyTable
from .retry import RetryPolicy

MIN_PAGE = 10  # a page halved on each timed-out try stops shrinking here


def token_range_condition(partition_key: Sequence[str]) -> str:
    token = f"token({', '.join(partition_key)})"
    return f"{token} > ? AND {token} <= ?"


def source_select(source: LegacyTable, *, with_token: bool = False) -> str:
    """The range scan: the key and value columns, then the write time and the TTL of each value column
    (and, `with_token`, the row's token last).

    A row comes back as (*columns, *writetimes, *ttls[, token]): see `newest_write`.
    """
    layout = source.layout
    token = f", token({', '.join(layout.partition_key)})" if with_token else ""
    return (
        f"SELECT {', '.join(layout.columns)}, "
        + ", ".join(f"WRITETIME({c})" for c in layout.values)
        + ", "
        + ", ".join(f"TTL({c})" for c in layout.values)
        + f"{token} FROM {qualified(source.keyspace, source.table)}"
        f" WHERE {token_range_condition(layout.partition_key)}"
    )


def newest_write(row: Sequence[Any], width: int, values: int) -> tuple[int | None, int]:
    """The row's write time (the newest of its values) and the remaining TTL of that write.

    `width` columns, of which `values` value columns, then their write times, then their TTLs.
    cassio wrote all columns in one INSERT, so they agree; for rows other code wrote
    piecewise, the newest write decides.
    """
    best: int | None = None
    ttl = 0
    for wt, t in zip(row[width : width + values], row[width + values : width + 2 * values]):
        if wt is not None and (best is None or wt > best):
            best, ttl = wt, t or 0
    return best, ttl


def row_key(row: Sequence[Any], key_width: int) -> str:
    """A source row's key, for reports and rejects files."""
    return str(row[0]) if key_width == 1 else json.dumps([str(k) for k in row[:key_width]], ensure_ascii=False)


def scan_pages(
    session: Session,
    statement: PreparedStatement,
    params: tuple[Any, ...],
    page_size: int,
    policy: RetryPolicy,
    stop: threading.Event,
    *,
    what: str = "reading the source",
    on_retry: Callable[[], None] | None = None,
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows page by page; a page that fails is tried again, halved, without restarting the range."""
    paging_state = None
    size = page_size

    def fetch() -> Any:
        bound = statement.bind(params)
        bound.fetch_size = size
        return session.execute(bound, paging_state=paging_state)

    def retried() -> None:
        nonlocal size
        size = max(MIN_PAGE, size // 2)
        if on_retry is not None:
            on_retry()

    while not stop.is_set():
        result = policy.call(what, fetch, stop=stop, on_retry=retried)
        yield result.current_rows
        paging_state = result.paging_state
        if paging_state is None:
            return
