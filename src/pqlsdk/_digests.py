"""A compact set of 64-bit hashes: which ``messageId``s have been seen, at 8 bytes an id.

De-duplication by ``messageId`` has to remember every id of a history (the
memory store's log, a file scored by ``pqlsdk score``), and a Python ``set`` of
the ids costs about 100 bytes each. This holds their 64-bit hashes instead: one
sorted ``array`` (8 bytes a hash, not tracked by the garbage collector) and a
small set of recent ones that joins the array when it grows past a sixteenth of
it, so adding stays amortised O(log n) and a look-up is a set probe and a bisect.
The hashes are split in 256 shards, so that a merge sorts a 256th of them: the
memory it needs for the moment stays small however many ids there are.

A hash stands for its id: two ids that collide in 64 bits look like one. The
memory store checks a known hash against its log before it drops a message; a
history, which keeps no log, accepts the odds (about one in 1.8 million for ten
million ids).
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Callable, Iterable
from typing import Final

__all__ = ["Digests", "digest"]

_SHARDS: Final = 256
"""Hashes are kept in this many shards, by their low byte: each merge sorts one shard."""
_RECENT: Final = 16
"""Hashes a shard holds in its set before they join its sorted array (at least)."""

digest: Callable[[str], int] = hash
"""An id's 64-bit hash (salted per process: a ``Digests`` never leaves it)."""


class Digests:
    """The hashes of the ids seen so far."""

    def __init__(self) -> None:
        self._sorted = [array("q") for _ in range(_SHARDS)]
        self._recent: list[set[int]] = [set() for _ in range(_SHARDS)]

    def __contains__(self, hashed: int) -> bool:
        shard = hashed & (_SHARDS - 1)
        if hashed in self._recent[shard]:
            return True
        held = self._sorted[shard]
        index = bisect.bisect_left(held, hashed)
        return index < len(held) and held[index] == hashed

    def add(self, hashed: int) -> None:
        """Add a hash that is not in the set yet."""
        shard = hashed & (_SHARDS - 1)
        recent = self._recent[shard]
        recent.add(hashed)
        held = self._sorted[shard]
        if len(recent) > max(_RECENT, len(held) >> 4):
            # Only this shard is sorted again: a merge never holds more than a
            # 256th of the hashes as Python ints.
            self._sorted[shard] = array("q", sorted(itertools.chain(held, recent)))
            recent.clear()

    def discard(self, gone: Iterable[int]) -> None:
        """Forget the hashes in ``gone`` (ids pruned from a log)."""
        by_shard: dict[int, set[int]] = {}
        for hashed in gone:
            by_shard.setdefault(hashed & (_SHARDS - 1), set()).add(hashed)
        for shard, drop in by_shard.items():
            self._recent[shard].difference_update(drop)
            held = self._sorted[shard]
            if drop.intersection(held):
                self._sorted[shard] = array("q", (d for d in held if d not in drop))
