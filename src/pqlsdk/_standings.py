"""A short-lived memo of users' standings (score, tier, gate) for decisions.

``decide()`` runs on page views, far more often than a user's state changes, and
a moment's ``when`` may read the user's tier, which costs a full scoring. The
memo keeps each user's standing per model for ``TTL`` (a second of the client's
clock) and forgets a user's the moment this client applies one of their messages
or a group message of their account, so a client always decides on its own
latest writes. What the memo may miss, for at most ``ttl``: time passing (a
recency multiplier stepping down), other processes' writes to a shared store,
and a teammate's first activity changing ``team_size()``.

Tier crossings never use the memo: they are computed fresh for every message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Final

__all__ = ["TTL", "Standings"]

TTL: Final = 1_000_000
"""Microseconds (of the client's clock) a memoised standing is used for."""

Standing = tuple[float, str, bool]


class Standings:
    """Standings by user and model, each reused for ``ttl`` µs unless forgotten.

    A plain dictionary: a lookup costs a fraction of a microsecond, which is the
    point; when it reaches ``maxsize`` users it starts afresh (a memo, not a store).
    """

    def __init__(self, *, ttl: int = TTL, maxsize: int = 100_000) -> None:
        self._ttl = ttl
        self._maxsize = maxsize
        self._memo: dict[tuple[str, str], tuple[int, Standing]] = {}
        self._lock = threading.RLock()  # re-entrant: a signal handler may decide mid-forget
        self._generation = 0  # bumped by every forget: a result computed across one is not kept

    def get(self, model: str, user_id: str, now: int, compute: Callable[[], Standing]) -> Standing:
        """Return ``user_id``'s standing under ``model`` at ``now`` (µs), memoised or computed."""
        key = (user_id, model)
        found = self._memo.get(key)
        if found is not None and 0 <= now - found[0] <= self._ttl:
            return found[1]
        generation = self._generation
        standing = compute()
        with self._lock:
            if generation == self._generation:
                if len(self._memo) >= self._maxsize:
                    self._memo.clear()
                self._memo[key] = (now, standing)
        return standing

    def forget(self, user_ids: Iterable[str], models: Iterable[str]) -> None:
        """Drop what is memoised for ``user_ids`` (their state just changed)."""
        with self._lock:
            self._generation += 1
            for user_id in user_ids:
                for model in models:
                    self._memo.pop((user_id, model), None)
