"""The Redis store's read cache: user and account states reused for a short TTL.

Why: ``gate()`` and ``decide()`` read at request rate, and one round trip to
Redis costs more than the rest of the call. This process's writes drop the
states they touch (and a read that raced with one is not kept), so a host
sees its own writes at once; other hosts' writes may be seen up to the TTL
late. Caps stay exact because a showing is claimed by a version-checked write
on the state in Redis, never on the cached copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from cachetools import TTLCache

_SIZE: Final = 10_000  # user and account states kept
_MISS: Final = object()

_V = TypeVar("_V")


class ReadCache:
    """States read within ``ttl`` seconds, by ``("u", user id)`` or ``("a", account id)``."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every write of this process (see get)
        self._cache = self._empty()

    def _empty(self) -> TTLCache[tuple[str, str], Any] | None:
        if self._ttl > 0:
            return TTLCache(maxsize=_SIZE, ttl=self._ttl, timer=time.monotonic)
        return None

    def reset(self) -> None:
        """Forget everything: every state may have changed (new aggregates were rebuilt)."""
        with self._lock:
            self._generation += 1
            self._cache = self._empty()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may be held) and nothing cached."""
        self._lock = threading.Lock()
        self._cache = self._empty()

    def get(self, key: tuple[str, str], read: Callable[[], _V]) -> _V:
        """Return ``read()``, reusing what it returned within the TTL.

        A read started before one of this process's writes (which bump the
        generation) is not kept: it may hold the state before that write.
        """
        cache = self._cache
        if cache is None:
            return read()
        with self._lock:
            found = cache.get(key, _MISS)
            generation = self._generation
        if found is not _MISS:
            return cast(_V, found)
        value = read()
        with self._lock:
            if generation == self._generation:
                cache[key] = value
        return value

    def forget(self, *keys: tuple[str, str]) -> None:
        """Drop cached states this process just wrote (or may have written).

        Each write of the intake calls this for every state it touched, most of
        them not cached: a key is looked up before it is popped (a pop of a key
        the cache lacks costs three times the look-up).
        """
        cache = self._cache
        if cache is not None:
            with self._lock:
                self._generation += 1
                for key in keys:
                    if key in cache:
                        del cache[key]
