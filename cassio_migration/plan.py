"""Token ranges: split the ring, and prove the split covers it with no gap or overlap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, Session

from .cql import qualified, quote
from .errors import SchemaError
from .retry import RetryPolicy

# Murmur3Partitioner: tokens lie in (MIN, MAX]; a range (start, end] excludes its start.
MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1

ROWS_PER_RANGE = 20_000  # small enough for cheap retries, large enough to amortise a query
DEFAULT_RANGES = 64  # when the table has no size estimates yet
ESTIMATE_TIMEOUT_S = 10.0
# Without size estimates (none recorded yet, or a database that keeps none, as Astra DB may): the
# rows of SAMPLE_SLICES slices of 1/SAMPLE_SHARE of the ring each, spread over it, at most
# SAMPLE_ROWS a slice (a denser slice is measured by the tokens its first rows span).
SAMPLE_SLICES = 16
SAMPLE_SHARE = 128
SAMPLE_ROWS = 1_000


@dataclass(frozen=True, order=True)
class TokenRange:
    start: int  # exclusive
    end: int  # inclusive


class PlanError(Exception):
    pass


def check_coverage(ranges: Sequence[TokenRange]) -> None:
    """Raise PlanError unless the ranges, sorted, tile (MIN, MAX] exactly."""
    if not ranges:
        raise PlanError("the plan has no ranges")
    ordered = sorted(ranges)
    if ordered[0].start != MIN_TOKEN:
        raise PlanError(f"gap before the first range: it starts at {ordered[0].start}")
    if ordered[-1].end != MAX_TOKEN:
        raise PlanError(f"gap after the last range: it ends at {ordered[-1].end}")
    for r in ordered:
        if r.start >= r.end:
            raise PlanError(f"empty or reversed range ({r.start}, {r.end}]")
    for a, b in pairwise(ordered):
        if a.end < b.start:
            raise PlanError(f"gap between {a.end} and {b.start}")
        if a.end > b.start:
            raise PlanError(f"overlap between ({a.start}, {a.end}] and ({b.start}, {b.end}]")


def ring_ranges(ring_tokens: Sequence[int]) -> list[TokenRange]:
    """The ranges the nodes' tokens cut the ring into (the wrap-around range split in two)."""
    bounds = sorted({t for t in ring_tokens if MIN_TOKEN < t < MAX_TOKEN})
    edges = [MIN_TOKEN, *bounds, MAX_TOKEN]
    return [TokenRange(a, b) for a, b in pairwise(edges)]


def apportion(widths: Sequence[int], count: int) -> list[int]:
    """Parts for each width: `count` in all, proportional to the widths (largest remainders get the
    parts rounding leaves over), but at least 1 and at most the width each."""
    fixed: dict[int, int] = {}
    while True:
        free = [i for i in range(len(widths)) if i not in fixed]
        budget = max(0, count - sum(fixed.values()))
        total = sum(widths[i] for i in free)
        shares = {i: divmod(budget * widths[i], total) for i in free} if total else {}
        bounded = {i: min(max(q, 1), widths[i]) for i, (q, _) in shares.items() if not 1 <= q <= widths[i]}
        if not bounded:
            break
        fixed.update(bounded)  # then share what is left among the others
    parts = [fixed.get(i, shares[i][0] if i in shares else 1) for i in range(len(widths))]
    left = budget - sum(shares[i][0] for i in free)
    for i in sorted(free, key=lambda i: shares[i][1], reverse=True)[: max(0, left)]:
        if parts[i] < widths[i]:
            parts[i] += 1
    return parts


def split(ranges: Sequence[TokenRange], count: int) -> list[TokenRange]:
    """`count` ranges (at least one per ring range, at most one per token): each ring range cut in
    parts proportional to its width."""
    out: list[TokenRange] = []
    widths = [r.end - r.start for r in ranges]
    for r, width, n in zip(ranges, widths, apportion(widths, count)):
        edges = [r.start + (width * i) // n for i in range(n)] + [r.end]
        out.extend(TokenRange(a, b) for a, b in pairwise(edges))
    return out


def make_plan(ring_tokens: Sequence[int], count: int) -> list[TokenRange]:
    ranges = split(ring_ranges(ring_tokens), count)
    check_coverage(ranges)
    return ranges


MURMUR3 = "org.apache.cassandra.dht.Murmur3Partitioner"


def require_murmur3(session: Session, which: str) -> None:
    """Refuse a cluster whose partitioner is not Murmur3 (the token ranges here are Murmur3's).

    The driver read it from `system.local` when it connected; None only without that read.
    """
    partitioner = session.cluster.metadata.partitioner
    if partitioner is not None and partitioner != MURMUR3:
        raise SchemaError(
            f"the {which} cluster uses {partitioner.rsplit('.', 1)[-1]}: this tool plans token ranges for"
            " Murmur3Partitioner only (Cassandra's default since 1.2, and Astra DB's), so it would not read"
            " the whole table; migrate with another tool (e.g. dsbulk unload and load)"
        )


def ring_tokens(session: Session) -> list[int]:
    token_map = session.cluster.metadata.token_map
    return [t.value for t in token_map.ring] if token_map else []


def estimated_rows(session: Session, keyspace: str, table: str) -> int:
    """The table's partition count: each node's size estimates, summed over the cluster's nodes.

    A node estimates only the ranges it is the primary owner of (from its flushed data), so
    one node's figure is about 1/N of the table on N nodes. A node that is down or does not
    answer adds nothing: the plan is then a little coarser. 0 when no node has estimates yet.
    """
    query = "SELECT partitions_count FROM system.size_estimates WHERE keyspace_name = %s AND table_name = %s"
    found = 0
    for host in session.cluster.metadata.all_hosts():
        if not host.is_up:
            continue
        try:
            rows = session.execute(query, (keyspace, table), host=host, timeout=ESTIMATE_TIMEOUT_S)
        except (DriverException, NoHostAvailable, OSError):  # e.g. the node went down meanwhile
            continue
        found += sum(r.partitions_count for r in rows)
    return found


def sampled_rows(session: Session, keyspace: str, table: str, partition_key: Sequence[str], policy: RetryPolicy) -> int:
    """The table's rows, from a sample of small token slices (at most 16,000 rows read); at least 1."""
    ring = MAX_TOKEN - MIN_TOKEN
    width, step = ring // SAMPLE_SHARE, ring // SAMPLE_SLICES
    token = f"token({', '.join(quote(c) for c in partition_key)})"
    query = f"SELECT {token} FROM {qualified(keyspace, table)} WHERE {token} > %s AND {token} <= %s LIMIT {SAMPLE_ROWS}"

    def tokens(start: int) -> list[int]:
        return [r[0] for r in session.execute(query, (start, start + width))]

    rows = spanned = 0
    for start in range(MIN_TOKEN, MAX_TOKEN - step + 1, step):
        found = policy.call("sampling the table's size", lambda: tokens(start))  # noqa: B023 (called at once)
        rows += len(found)
        spanned += found[-1] - start if len(found) == SAMPLE_ROWS else width
    return max(1, rows * ring // spanned)


def range_count(estimated: int, requested: int, parallelism: int, rows_per_range: int = ROWS_PER_RANGE) -> int:
    """Requested count, else about `rows_per_range` rows a range, and enough ranges for parallelism and cheap retries."""
    if requested:
        return requested
    if not estimated:
        return max(DEFAULT_RANGES, 4 * parallelism)
    return max(4 * parallelism, min(100_000, -(-estimated // rows_per_range)))
