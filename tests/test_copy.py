"""copy.py's bookkeeping without a node: a range's tally, and the record it leaves."""

from __future__ import annotations

from array import array

from cassio_migration.copy import Tally
from cassio_migration.digest import Digest
from cassio_migration.state import Counts


def test_tally_counts_in_the_state_order() -> None:
    tally = Tally(read=10, written=6, rejected=3, skipped=1, nbytes=4096)
    assert tally.counts() == Counts(read=10, written=6, rejected=3, skipped=1, bytes=4096)


def test_the_record_holds_what_was_written_or_skipped_and_what_was_known() -> None:
    tally = Tally()
    tally.copied.extend([30, 10, 30])
    assert tally.digest(None).hashes.tolist() == [10, 30]
    assert tally.digest(Digest.of(array("Q", [20, 10]))).hashes.tolist() == [10, 20, 30]


def test_rows_the_database_refused_are_left_out_of_the_record() -> None:
    # Rejected, not copied: a re-run must try them again.
    tally = Tally()
    tally.copied.extend([10, 20, 30])
    tally.refused.add(20)
    assert tally.digest(None).hashes.tolist() == [10, 30]
    assert tally.digest(Digest.of(array("Q", [40]))).hashes.tolist() == [10, 30, 40]


def test_each_tally_has_its_own_collections() -> None:
    a, b = Tally(), Tally()
    a.copied.append(1)
    a.refused.add(1)
    assert len(b.copied) == 0 and not b.refused and a.lock is not b.lock


def test_the_record_holds_hashes_past_2_to_the_63() -> None:
    tally = Tally()
    tally.copied.extend([2**64 - 1, 5])
    tally.refused.add(5)
    assert tally.digest(None).hashes.tolist() == [2**64 - 1]
