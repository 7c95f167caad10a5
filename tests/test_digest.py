"""digest.py: the record of what a pass copied (row hashes, their stored form, the lookup by token)."""

from __future__ import annotations

from array import array

import numpy as np

from cassio_migration.digest import Digest, Records, row_hash


def test_row_hash_is_stable_across_releases() -> None:
    # Records stored by an earlier run are compared with hashes computed now: the function may never change.
    assert row_hash("k", 1700) == 826884926737594679
    assert row_hash("6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b", 1700000000000000) == 11944103743992061649


def test_row_hash_tells_key_and_write_time_apart() -> None:
    assert row_hash("k", 1700) != row_hash("k", 1701)
    assert row_hash("k", 1700) != row_hash("k2", 1700)
    # The separator keeps ("k1", 700) and ("k", 1700) apart although they concatenate alike.
    assert row_hash("k1", 700) != row_hash("k", 1700)
    assert 0 <= row_hash("k", 1700) < 2**64


def test_a_digest_is_a_sorted_set() -> None:
    d = Digest.of(array("Q", [5, 3, 5, 2**64 - 1, 3]))
    assert d.hashes.tolist() == [3, 5, 2**64 - 1] and d.hashes.dtype == np.uint64
    assert len(d) == 3
    assert len(Digest()) == 0 and len(Digest.of(array("Q"))) == 0


def test_membership_one_at_a_time() -> None:
    d = Digest.of(array("Q", [10, 20, 30]))
    assert 10 in d and 20 in d and 30 in d
    assert 5 not in d and 15 not in d
    assert 31 not in d  # past the last hash: no index error, not found
    assert "10" not in d and None not in d  # only ints are hashes
    assert 10 not in Digest()


def test_membership_of_a_page() -> None:
    d = Digest.of(array("Q", [10, 20, 30]))
    assert d.contains([10, 15, 30, 31, 2**64 - 1, 0]) == [True, False, True, False, False, False]
    assert d.contains([]) == []
    assert Digest().contains([10, 20]) == [False, False]


def test_union_holds_both_and_ignores_nothing() -> None:
    a, b = Digest.of(array("Q", [1, 3])), Digest.of(array("Q", [2, 3]))
    assert a.union(b).hashes.tolist() == [1, 2, 3]
    assert a.union(None) is a and a.union(Digest()) is a
    assert Digest().union(b).hashes.tolist() == [2, 3]
    # An empty record is of 64-bit unsigned hashes too: joined with big ones, they stay exact.
    big = Digest.of(array("Q", [2**64 - 1, 2**64 - 2]))
    assert Digest().hashes.dtype == np.uint64 and Digest().union(big).contains([2**64 - 2, 2**64 - 3]) == [True, False]


def test_chunks_are_64_kib_of_little_endian_hashes_and_load_back() -> None:
    hashes = array("Q", range(1, 8192 + 3))  # one full chunk and a part
    d = Digest.of(hashes)
    chunks = list(d.chunks())
    assert [len(c) for c in chunks] == [65536, 16]
    assert chunks[0][:8] == (1).to_bytes(8, "little") and chunks[1][-8:] == (8194).to_bytes(8, "little")
    assert Digest.from_chunks(chunks).hashes.tolist() == list(hashes)
    assert list(Digest().chunks()) == [] and len(Digest.from_chunks([])) == 0
    big = Digest.of(array("Q", [2**64 - 1]))
    assert Digest.from_chunks(big.chunks()).hashes.tolist() == [2**64 - 1]


def test_records_find_the_range_holding_a_token() -> None:
    loaded: list[tuple[int, int]] = []

    def load(number: int, start: int) -> Digest:
        loaded.append((number, start))
        return Digest.of(array("Q", [start + 1000]))

    # Ranges (-100, 0] recorded by pass 3, (0, ...] by pass 7.
    records = Records({-100: 3, 0: 7}, load)
    assert 1000 in records.at(1) and 1000 in records.at(10**6)  # just past a start: that range
    assert 900 in records.at(0) and 900 in records.at(-99)  # a range's end is inclusive
    assert len(records.at(-100)) == 0 and len(records.at(-500)) == 0  # before the first range: no record
    assert len(records.of_range(100)) == 0  # a range with no record stored gives an empty one
    assert sorted(set(loaded)) == [(3, -100), (7, 0)]
    records.at(50)
    assert loaded.count((7, 0)) == 1  # loaded once, then cached
