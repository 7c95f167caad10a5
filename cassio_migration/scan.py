"""The range scan shared by copy, verify and the benchmark: the SELECT, each row's newest
write time and its TTL, and paging with retries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from cassandra.cluster import Session
from cassandra.policies import HostDistance
from cassandra.pool import Host
from cassandra.query import PreparedStatement

from .cql import qualified
from .legacy import LegacyTable
from .plan import TokenRange
from .retry import RetryPolicy

H = TypeVar("H")

MIN_PAGE = 10  # a page halved on each timed-out try stops shrinking here


def token_range_condition(partition_key: Sequence[str]) -> str:
    token = f"token({', '.join(partition_key)})"
    return f"{token} > ? AND {token} <= ?"


def _source_query(source: LegacyTable, columns: Sequence[str], where: str, token: str = "") -> str:
    """SELECT `columns`, then the write time and the TTL of each value column[, the token] ... WHERE `where`."""
    values = source.layout.values
    return (
        f"SELECT {', '.join(columns)}, "
        + ", ".join(f"WRITETIME({c})" for c in values)
        + ", "
        + ", ".join(f"TTL({c})" for c in values)
        + f"{token} FROM {qualified(source.keyspace, source.table)} WHERE {where}"
    )


def source_select(source: LegacyTable, *, with_token: bool = False) -> str:
    """The range scan: the key and value columns, then the write time and the TTL of each value column
    (and, `with_token`, the row's token last).

    A row comes back as (*columns, *writetimes, *ttls[, token]): see `newest_write`.
    """
    layout = source.layout
    token = f", token({', '.join(layout.partition_key)})" if with_token else ""
    return _source_query(source, layout.columns, token_range_condition(layout.partition_key), token)


def source_keys_select(source: LegacyTable) -> str:
    """The range scan of a re-run: the key columns, their write times and TTLs, no values (no vectors)."""
    layout = source.layout
    return _source_query(source, layout.key, token_range_condition(layout.partition_key))


def source_row_select(source: LegacyTable) -> str:
    """One source row by its primary key, as `source_select` returns rows."""
    layout = source.layout
    return _source_query(source, layout.columns, " AND ".join(f"{c} = ?" for c in layout.key))


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


def replicas_in_order(replicas: Sequence[H], start: int, is_up: Callable[[H], bool]) -> list[H]:
    """The order to try a range's replicas in: those up first, from a place the range's start picks
    (so that ranges spread over their replicas), then those down (they may be back)."""
    ordered = sorted(replicas, key=str)  # the driver hands a set: make the order stable
    if not ordered:
        return []
    k = start % len(ordered)
    rotated = ordered[k:] + ordered[:k]
    return [h for h in rotated if is_up(h)] + [h for h in rotated if not is_up(h)]


class Router:
    """Sends each range scan to a replica of its range, as dsbulk does: the coordinator then reads
    its own data instead of asking other nodes over the network.

    The driver's token map knows the replicas; only nodes of the local data center are asked.
    Off (`enabled=False`), or without a token map, the load balancing policy picks the node.
    """

    def __init__(self, session: Session, keyspace: str, enabled: bool = True) -> None:
        self._session = session
        self._keyspace = keyspace
        self._enabled = enabled

    def replicas(self, r: TokenRange) -> list[Host]:
        token_map = self._session.cluster.metadata.token_map
        if not self._enabled or token_map is None:
            return []
        # A planned range lies within one range of the ring: its end token's replicas hold all of it.
        replicas = token_map.get_replicas(self._keyspace, token_map.token_class(r.end))
        distance = self._session.cluster.profile_manager.distance
        local = [h for h in replicas if distance(h) == HostDistance.LOCAL]
        return replicas_in_order(local or list(replicas), r.start, lambda h: bool(h.is_up))


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
    hosts: Sequence[Host] = (),
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows page by page; a page that fails is tried again, halved, without restarting the range.

    `hosts`: the nodes to send the pages to, in order; a failed try moves on to the next one.
    """
    paging_state = None
    size = page_size
    current = 0  # which of `hosts` the pages go to

    def fetch() -> Any:
        bound = statement.bind(params)
        bound.fetch_size = size
        host = hosts[current % len(hosts)] if hosts else None
        return session.execute(bound, paging_state=paging_state, host=host)

    def retried() -> None:
        nonlocal size, current
        size = max(MIN_PAGE, size // 2)
        current += 1
        if on_retry is not None:
            on_retry()

    while not stop.is_set():
        result = policy.call(what, fetch, stop=stop, on_retry=retried)
        yield result.current_rows
        paging_state = result.paging_state
        if paging_state is None:
            return
