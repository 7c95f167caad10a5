"""What the migration copied: for each range, an 8-byte hash of each source row's key and write time.

Write times alone can only guess what a pass copied: a row can turn up after a pass with an
older write time (a hint, a repair, a restore, an application's `USING TIMESTAMP`), and rows
the application writes after the cutover are newer than any pass. The record answers exactly:
- a re-run skips a source row only if that key with that write time was copied before;
- `--verify` tells a row copied, then deleted from the target, from a row never copied;
- `--delete-extra` deletes a target row only if the migration wrote that very version.

A range's record in a pass also holds the record of the pass before (a version the migration
once wrote stays known), less nothing: it only grows. Rows rejected are not in it, so a re-run
tries them again. Stored sorted, in chunks, beside the range's state row. A collision of two
64-bit hashes among a range's rows is about as likely as a cosmic-ray bit flip.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

CHUNK = 8192  # hashes a stored chunk holds: 64 KiB, well under any cell size limit

Hashes = npt.NDArray[np.uint64]


def row_hash(key: str, writetime: int) -> int:
    """The hash of a source row's version: its key (as the rejects file and reports print it) and write time."""
    return int.from_bytes(hashlib.blake2b(f"{key}\x00{writetime}".encode(), digest_size=8).digest(), "little")


class Digest:
    """A sorted set of row hashes."""

    def __init__(self, hashes: Hashes | None = None) -> None:
        self.hashes: Hashes = np.unique(hashes) if hashes is not None else np.empty(0, dtype=np.uint64)

    @classmethod
    def of(cls, collected: array[int]) -> Digest:
        """From hashes collected in an `array('Q')`, in any order, with repeats."""
        return cls(np.frombuffer(collected, dtype=np.uint64) if len(collected) else None)

    @classmethod
    def from_chunks(cls, chunks: Iterable[bytes]) -> Digest:
        parts = [np.frombuffer(c, dtype="<u8") for c in chunks]
        return cls(np.concatenate(parts).astype(np.uint64)) if parts else cls()

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, h: object) -> bool:
        if not isinstance(h, int) or not len(self.hashes):
            return False
        i = int(np.searchsorted(self.hashes, np.uint64(h)))
        return i < len(self.hashes) and int(self.hashes[i]) == h

    def contains(self, hashes: Sequence[int]) -> list[bool]:
        """Membership of many hashes at once (one search for a page of rows)."""
        if not len(self.hashes) or not hashes:
            return [False] * len(hashes)
        wanted = np.array(hashes, dtype=np.uint64)
        at = np.minimum(np.searchsorted(self.hashes, wanted), len(self.hashes) - 1)
        found: list[bool] = (self.hashes[at] == wanted).tolist()
        return found

    def union(self, other: Digest | None) -> Digest:
        if other is None or not len(other):
            return self
        return Digest(np.concatenate((self.hashes, other.hashes)))

    def chunks(self) -> Iterator[bytes]:
        """The stored form: little-endian 8-byte hashes, CHUNK to a chunk (none for an empty record)."""
        data = self.hashes.astype("<u8")
        for i in range(0, len(data), CHUNK):
            yield data[i : i + CHUNK].tobytes()


class Records:
    """The record of every range of a job (for verify), loaded a range at a time as asked.

    `stored`: range start -> the pass whose record of that range says what was copied there;
    `load(pass, start)`: that record. A range with no record gives an empty one.
    """

    def __init__(self, stored: dict[int, int], load: Callable[[int, int], Digest]) -> None:
        self._stored = stored
        self._starts = sorted(stored)
        self._load = load
        # A few at a time: the extras of one target range are the rows of a few source ranges.
        self.of_range = lru_cache(maxsize=8)(self._of_range)

    def _of_range(self, start: int) -> Digest:
        number = self._stored.get(start)
        return self._load(number, start) if number is not None else Digest()

    def at(self, token: int) -> Digest:
        """The record of the range holding `token` (ranges are (start, end]: the last start below it)."""
        i = bisect_left(self._starts, token) - 1
        return self.of_range(self._starts[i]) if i >= 0 else Digest()
