"""A short-lived memo of per-user answers that ``decide()`` needs at request rate.

``decide()`` runs on page views, far more often than a user's state changes. Its
answer "nothing is due", which is what most calls find, is worth keeping for a
moment. (A user's standing is not kept: it is one compiled call per model, about
what keeping it would cost on every decision that is not memoised.) The memo
keeps an answer for ``TTL`` (one second of the client's clock) and forgets a user's
as soon as this client applies one of their messages, a group message of their
account, or an outcome they recorded, so a client always decides on its own
latest writes.

What the memo may miss, for at most ``TTL``: time passing (a recency multiplier
stepping down, a cap's window ending), other processes' writes to a shared
store, and a teammate's first activity changing ``team_size()``. Missing them
only delays a moment; it never shows one twice, because every showing is
claimed in an atomic store update. Tier crossings never use the memo.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

__all__ = ["TTL", "Memo"]

TTL: Final = 1_000_000
"""Microseconds (of the client's clock) a memoised answer is used for."""

_T = TypeVar("_T")


class Memo:
    """Answers by user and name, each reused for ``ttl`` µs unless the user is forgotten.

    A plain dictionary: a lookup costs a fraction of a microsecond, which is the
    point; when it reaches ``maxsize`` entries it starts afresh (a memo, not a store).
    Keeping an answer takes no lock (a lock is a good share of a cold ``decide()``):
    only ``forget`` does, and it bumps the generation before it drops anything.
    """

    def __init__(self, *, ttl: int = TTL, maxsize: int = 100_000) -> None:
        self._ttl = ttl
        self._maxsize = maxsize
        self._memo: dict[str, dict[str, tuple[int, object]]] = {}
        self._lock = threading.RLock()  # forget() only; re-entrant: a signal handler may forget
        # mid-forget (a record() or a track() applied while the host's thread forgets)
        self._generation = 0  # bumped by every forget: an answer computed across one is void

    def get(
        self,
        name: str,
        user_id: str,
        now: int,
        compute: Callable[..., _T],
        *args: Any,
        keep: Callable[[_T], bool] | None = None,
    ) -> _T:
        """Return ``user_id``'s answer ``name`` at ``now`` (µs), memoised or ``compute(*args)``.

        A computed answer is kept unless ``keep`` says otherwise (``decide()``
        keeps "nothing due", never a moment it just showed). The arguments are
        passed through rather than bound in a partial: no object made per call.
        """
        answers = self._memo.get(user_id)
        found = None if answers is None else answers.get(name)
        if found is not None and 0 <= now - found[0] <= self._ttl:
            return found[1]  # type: ignore[return-value]  # stored by this method for name
        generation = self._generation
        answer = compute(*args)
        if keep is not None and not keep(answer):
            return answer
        # No lock: store, then look. A forget() that began before the look (its
        # generation bump) voids the answer, which is taken back here; one that
        # begins after it drops the answer itself (it bumps, then pops the user).
        memo = self._memo
        answers = memo.get(user_id)
        if answers is None:  # (not setdefault: no new dict for every answer kept)
            if len(memo) >= self._maxsize:
                memo.clear()
            answers = memo[user_id] = {}
        answers[name] = (now, answer)
        if generation != self._generation:
            answers.pop(name, None)  # (a newer answer another thread kept may go too: recomputed)
        return answer

    def forget(self, user_ids: Iterable[str]) -> None:
        """Drop every answer memoised for ``user_ids`` (their state just changed)."""
        with self._lock:
            self._generation += 1
            memo = self._memo
            if memo:  # nothing kept (a burst of writes, no reads): nothing to look up
                for user_id in user_ids:
                    memo.pop(user_id, None)
