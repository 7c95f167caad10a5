"""cassio_migration/plan.py: the split tiles the Murmur3 ring (MIN, MAX] exactly."""

from __future__ import annotations

import bisect
import itertools
import random
from types import SimpleNamespace

import pytest
from cassandra import OperationTimedOut

from cassio_migration.errors import SchemaError
from cassio_migration.plan import (
    DEFAULT_RANGES,
    MAX_TOKEN,
    MIN_TOKEN,
    MURMUR3,
    ROWS_PER_RANGE,
    PlanError,
    TokenRange,
    apportion,
    check_coverage,
    estimated_rows,
    make_plan,
    range_count,
    require_murmur3,
    ring_ranges,
    ring_tokens,
    split,
)


def random_tokens(count: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    return [rnd.randint(MIN_TOKEN + 1, MAX_TOKEN - 1) for _ in range(count)]


RING_TOKEN_SETS = {
    "empty": [],
    "one": [0],
    "one_negative": [-(2**40)],
    "sixteen_random": random_tokens(16, 1),
    "256_random": random_tokens(256, 2),
    "extremes": [MIN_TOKEN, MAX_TOKEN, MIN_TOKEN + 1, MAX_TOKEN - 1, 0, 1],
    "duplicates": [5, 5, 5, -7, -7],
    "evenly_spaced": [MIN_TOKEN + i * (2**64 // 8) for i in range(8)],
}


def assert_tiles_ring(ranges: list[TokenRange]) -> None:
    """An independent check of exact coverage: sorted, contiguous, non-empty, (MIN, MAX]."""
    ordered = sorted(ranges)
    assert ordered[0].start == MIN_TOKEN
    assert ordered[-1].end == MAX_TOKEN
    for r in ordered:
        assert type(r.start) is int and type(r.end) is int
        assert r.start < r.end
    for a, b in itertools.pairwise(ordered):
        assert a.end == b.start
    assert sum(r.end - r.start for r in ordered) == MAX_TOKEN - MIN_TOKEN


def owner(ranges: list[TokenRange], token: int) -> list[TokenRange]:
    """Every range whose (start, end] holds the token."""
    return [r for r in ranges if r.start < token <= r.end]


@pytest.mark.parametrize("name", sorted(RING_TOKEN_SETS))
@pytest.mark.parametrize("count", [1, 7, 64, 1000])
def test_make_plan_covers_the_ring(name, count):
    tokens = RING_TOKEN_SETS[name]
    plan = make_plan(tokens, count)
    assert_tiles_ring(plan)
    check_coverage(plan)  # does not raise
    # The count is the one requested, unless the ring has more ranges than that.
    ring = ring_ranges(tokens)
    assert len(plan) == max(count, len(ring))


def test_make_plan_count_is_exact_on_an_empty_ring():
    for count in (1, 2, 100, 4096):
        assert len(make_plan([], count)) == count


@pytest.mark.parametrize("name", sorted(RING_TOKEN_SETS))
def test_make_plan_keeps_ring_boundaries(name):
    tokens = RING_TOKEN_SETS[name]
    plan = make_plan(tokens, 50)
    ends = {r.end for r in plan}
    for t in tokens:
        if MIN_TOKEN < t < MAX_TOKEN:
            assert t in ends, f"ring token {t} is not a range boundary"


def test_every_token_has_exactly_one_range():
    tokens = RING_TOKEN_SETS["sixteen_random"]
    plan = sorted(make_plan(tokens, 200))
    probes = [MIN_TOKEN + 1, MAX_TOKEN, MAX_TOKEN - 1, 0, -1, 1, *tokens, *random_tokens(500, 3)]
    probes += [r.start for r in plan[1:]] + [r.start + 1 for r in plan] + [r.end for r in plan]
    starts = [r.start for r in plan]
    for t in probes:
        found = owner(plan, t)
        assert len(found) == 1, t
        # The same answer a bisect over the sorted starts gives (how a reader would look it up).
        assert plan[bisect.bisect_left(starts, t) - 1] == found[0]
    assert owner(plan, MIN_TOKEN) == []  # MIN is not a Murmur3 token: no range holds it


def test_extreme_ring_tokens_make_tiny_ranges():
    plan = sorted(make_plan([MIN_TOKEN, MIN_TOKEN + 1, MAX_TOKEN - 1, MAX_TOKEN], 10))
    assert plan[0] == TokenRange(MIN_TOKEN, MIN_TOKEN + 1)
    assert plan[-1] == TokenRange(MAX_TOKEN - 1, MAX_TOKEN)
    assert_tiles_ring(plan)


def test_ring_ranges_split_wraparound_in_two():
    assert ring_ranges([]) == [TokenRange(MIN_TOKEN, MAX_TOKEN)]
    assert ring_ranges([10, -10]) == [
        TokenRange(MIN_TOKEN, -10),
        TokenRange(-10, 10),
        TokenRange(10, MAX_TOKEN),
    ]
    assert ring_ranges([MIN_TOKEN, MAX_TOKEN]) == [TokenRange(MIN_TOKEN, MAX_TOKEN)]


# --- split ------------------------------------------------------------------------------------------


def test_split_keeps_boundaries_integral_and_exact():
    whole = [TokenRange(MIN_TOKEN, MAX_TOKEN)]
    for count in (1, 2, 3, 7, 1000, 99_991):
        parts = split(whole, count)
        assert len(parts) == count
        assert all(type(r.start) is int and type(r.end) is int for r in parts)
        assert_tiles_ring(parts)
        widths = [r.end - r.start for r in parts]
        assert max(widths) - min(widths) <= 1  # even parts, no float rounding drift


def test_split_is_proportional_to_width():
    ranges = [TokenRange(MIN_TOKEN, 0), TokenRange(0, 2**61), TokenRange(2**61, MAX_TOKEN)]
    parts = split(ranges, 32)
    inside = [sum(1 for p in parts if r.start <= p.start and p.end <= r.end) for r in ranges]
    assert inside == [16, 4, 12]
    assert_tiles_ring(parts)


def test_split_never_makes_empty_ranges_of_narrow_ranges():
    ranges = [
        TokenRange(MIN_TOKEN, MIN_TOKEN + 1),
        TokenRange(MIN_TOKEN + 1, MIN_TOKEN + 3),
        TokenRange(MIN_TOKEN + 3, MAX_TOKEN),
    ]
    parts = split(ranges, 10**6)
    assert all(r.start < r.end for r in parts)
    assert TokenRange(MIN_TOKEN, MIN_TOKEN + 1) in parts
    assert_tiles_ring(parts)


def test_split_small_range_many_parts():
    parts = split([TokenRange(0, 5)], 100)
    assert parts == [TokenRange(i, i + 1) for i in range(5)]


def test_split_zero_count_keeps_one_part_per_range():
    ranges = ring_ranges([1, 2, 3])
    assert split(ranges, 0) == ranges


# --- check_coverage --------------------------------------------------------------------------------


def test_check_coverage_accepts_unsorted_tiling():
    plan = make_plan(random_tokens(8, 4), 40)
    shuffled = list(plan)
    random.Random(5).shuffle(shuffled)
    check_coverage(shuffled)


def test_check_coverage_accepts_single_whole_range():
    check_coverage([TokenRange(MIN_TOKEN, MAX_TOKEN)])


def test_check_coverage_rejects_no_ranges():
    with pytest.raises(PlanError, match=r"^the plan has no ranges$"):
        check_coverage([])


def test_check_coverage_rejects_a_gap():
    with pytest.raises(PlanError, match="gap"):
        check_coverage([TokenRange(MIN_TOKEN, -10), TokenRange(-9, MAX_TOKEN)])


def test_check_coverage_rejects_a_one_token_gap_in_a_real_plan():
    plan = sorted(make_plan(random_tokens(4, 6), 20))
    broken = [*plan[:5], TokenRange(plan[5].start + 1, plan[5].end), *plan[6:]]
    with pytest.raises(PlanError, match="gap"):
        check_coverage(broken)


def test_check_coverage_rejects_a_missing_middle_range():
    plan = sorted(make_plan([], 10))
    with pytest.raises(PlanError, match="gap"):
        check_coverage(plan[:4] + plan[5:])


def test_check_coverage_rejects_an_overlap():
    with pytest.raises(PlanError, match="overlap"):
        check_coverage([TokenRange(MIN_TOKEN, 10), TokenRange(9, MAX_TOKEN)])


def test_check_coverage_rejects_a_duplicated_range():
    plan = sorted(make_plan([], 10))
    with pytest.raises(PlanError, match="overlap"):
        check_coverage([*plan, plan[3]])


def test_check_coverage_rejects_an_empty_range():
    with pytest.raises(PlanError, match="empty"):
        check_coverage([TokenRange(MIN_TOKEN, 0), TokenRange(0, 0), TokenRange(0, MAX_TOKEN)])


def test_check_coverage_rejects_a_reversed_range():
    with pytest.raises(PlanError):
        check_coverage([TokenRange(MIN_TOKEN, 10), TokenRange(10, 5), TokenRange(5, MAX_TOKEN)])


def test_check_coverage_rejects_a_missing_first_range():
    plan = sorted(make_plan([], 10))
    with pytest.raises(PlanError, match="first"):
        check_coverage(plan[1:])


def test_check_coverage_rejects_a_missing_last_range():
    plan = sorted(make_plan([], 10))
    with pytest.raises(PlanError, match="last"):
        check_coverage(plan[:-1])


def test_check_coverage_rejects_a_range_past_the_ring():
    with pytest.raises(PlanError):
        check_coverage([TokenRange(MIN_TOKEN - 1, MAX_TOKEN)])
    with pytest.raises(PlanError):
        check_coverage([TokenRange(MIN_TOKEN, MAX_TOKEN + 1)])


# --- range_count --------------------------------------------------------------------------------------


def test_range_count_requested_wins():
    assert range_count(estimated=10**9, requested=10, parallelism=64) == 10
    assert range_count(estimated=0, requested=3, parallelism=4) == 3


def test_range_count_without_estimate():
    assert range_count(estimated=0, requested=0, parallelism=4) == DEFAULT_RANGES
    assert range_count(estimated=0, requested=0, parallelism=1) == DEFAULT_RANGES
    assert range_count(estimated=0, requested=0, parallelism=32) == 128


def test_range_count_from_estimate():
    assert ROWS_PER_RANGE == 20_000
    assert range_count(estimated=500 * ROWS_PER_RANGE, requested=0, parallelism=4) == 500
    assert range_count(estimated=100 * ROWS_PER_RANGE + 1, requested=0, parallelism=1) == 101  # rounded up
    assert range_count(estimated=1, requested=0, parallelism=4) == 16  # at least 4 per parallel range
    assert range_count(estimated=10 * ROWS_PER_RANGE, requested=0, parallelism=8) == 32
    assert range_count(estimated=10**12, requested=0, parallelism=4) == 100_000  # capped


def test_range_count_result_makes_a_valid_plan():
    count = range_count(estimated=3_000_000, requested=0, parallelism=4)
    plan = make_plan(random_tokens(16, 7), count)
    assert_tiles_ring(plan)
    assert abs(len(plan) - count) < 17


@pytest.mark.parametrize(
    ("widths", "count", "parts"),
    [
        ([10, 10, 10], 4, [2, 1, 1]),  # the left-over part goes to one range
        ([1, 1, 1000], 10, [1, 1, 8]),  # tiny ranges keep one part; the others share the rest
        ([5, 2**40], 100, [1, 99]),
        ([2, 3], 100, [2, 3]),  # never more parts than tokens
        ([2, 3], 6, [2, 3]),  # ... also when a share is exactly the width and a part is left over
        ([7, 7], 0, [1, 1]),
    ],
)
def test_apportion(widths: list[int], count: int, parts: list[int]) -> None:
    assert apportion(widths, count) == parts


class Host:
    def __init__(self, up: bool, counts: list[int] | Exception) -> None:
        self.is_up, self.counts = up, counts


class Session:
    """Answers each node's size estimates (what plan.py asks a session, nothing more)."""

    def __init__(self, hosts: list[Host], partitioner: str | None = MURMUR3, tokens: list[int] | None = None) -> None:
        ring = SimpleNamespace(ring=[SimpleNamespace(value=t) for t in tokens]) if tokens is not None else None
        metadata = SimpleNamespace(partitioner=partitioner, token_map=ring, all_hosts=lambda: hosts)
        self.cluster = SimpleNamespace(metadata=metadata)
        self.asked: list[tuple[str, tuple[str, str], Host, float]] = []

    def execute(self, query: str, params: tuple[str, str], host: Host, timeout: float) -> list[SimpleNamespace]:
        self.asked.append((query, params, host, timeout))
        if isinstance(host.counts, Exception):
            raise host.counts
        return [SimpleNamespace(partitions_count=n) for n in host.counts]


def test_estimated_rows_sum_the_nodes_that_answer() -> None:
    up, down, failing = Host(True, [100, 20]), Host(False, [1000]), Host(True, OperationTimedOut("slow"))
    session = Session([up, down, failing, Host(True, [3])])
    assert estimated_rows(session, "ks", "t") == 123  # type: ignore[arg-type]
    assert [host for _, _, host, _ in session.asked] == [up, failing, session.cluster.metadata.all_hosts()[3]]
    query, params, _, timeout = session.asked[0]
    assert "system.size_estimates" in query and params == ("ks", "t") and timeout == 10.0
    assert estimated_rows(Session([]), "ks", "t") == 0  # type: ignore[arg-type]


def test_a_partitioner_other_than_murmur3_is_refused_by_name() -> None:
    require_murmur3(Session([]), "source")  # type: ignore[arg-type]
    require_murmur3(Session([], partitioner=None), "source")  # type: ignore[arg-type]  # not read: not refused
    with pytest.raises(SchemaError, match=r"^the target cluster uses RandomPartitioner: this tool plans token ranges"):
        require_murmur3(Session([], partitioner="org.apache.cassandra.dht.RandomPartitioner"), "target")  # type: ignore[arg-type]


def test_ring_tokens_are_the_token_maps() -> None:
    assert ring_tokens(Session([], tokens=[5, -3])) == [5, -3]  # type: ignore[arg-type]
    assert ring_tokens(Session([])) == []  # type: ignore[arg-type]  # no token map (not read yet)
