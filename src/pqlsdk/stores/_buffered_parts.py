"""Parts of the buffered SQLite store (``stores.buffered``) kept apart to keep it short.

``Held``: the states the intake's ``record()`` calls change, kept decoded from
one chunk to the next. ``FileCalls``: what goes straight to the file (the outbox and lease
calls among them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from .._aggregates import Aggregate
from .._pacing import Pacer
from ._outbox import SQLiteOutbox
from ._state import AccountState, UserState, encode
from .sqlite import SQLiteStore

__all__ = ["PIECE", "FileCalls", "Held"]

PIECE: Final = 32
"""States encoded (some 1 µs each) between two looks at the host in a paced commit."""
_LATE: Final = 0.001
"""A nap this much longer than asked: the host calls back to back (see ``_pacing``), s."""


class Held:
    """States a thread holds decoded across ``record()`` calls (``hold()``), under the lock."""

    _lock: threading.RLock
    _holder: int | None
    _users: dict[str, bytes]
    _accounts: dict[str, bytes]
    _held_users: dict[str, UserState]
    _held_accounts: dict[str, AccountState]
    _pacer: Pacer
    _pacing: int | None
    """The writer thread, while its commit makes way for the host (``_make_way``)."""

    def _make_way(self) -> None:
        """In the writer's commit, between pieces of its work: nap while the host calls.

        A commit encodes, counts and snapshots thousands of states and messages
        under the GIL, a millisecond or more; a host call that wanted the GIL
        meanwhile waited for all of it (see ``_pacing``). In pieces, with a nap
        between two while the host calls, it waits for one piece. The lock
        stays held (the intake waits for the commit, as it did). A nap that comes
        back late means the host calls back to back: each return would cost it
        a forced switch, so the rest goes at once. Only on the writer thread: a
        host's own ``commit()`` (a flush, a read) does not nap.
        """
        if self._pacing != threading.get_ident() or not self._pacer.calling():
            return
        start = time.monotonic()
        self._pacer.rest()
        if time.monotonic() - start > _LATE:
            self._pacing = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Let this thread's ``record()`` calls keep the states they change decoded.

        The intake records a chunk in several calls (one per run of distinct
        users, each followed by its tier checks), and a user or an account
        comes back in most of them, and in most chunks of a burst: held, each
        is decoded once and encoded once per commit rather than once per call.
        The states stay held after the block, for the next chunk, whichever
        thread applies it (the intake's lock orders them), until the next
        commit that finds no block under way, or a ``record()`` outside a block:
        held objects live for about a commit interval at most (``stores.buffered``
        says why the overlay keeps bytes), and every other reader of the
        overlay takes them into account.

        Added in version 0.1.0.
        """
        with self._lock:  # not nested: the intake applies one chunk at a time
            self._holder = threading.get_ident()
        try:
            yield
        finally:
            with self._lock:
                self._holder = None

    def _flush_held(self) -> None:
        """Encode the held states into the overlay, keeping them held (lock held)."""
        done = 0
        for user_id, user in self._held_users.items():
            self._users[user_id] = encode(user)
            done += 1
            if not done % PIECE:
                self._make_way()
        for account_id, account in self._held_accounts.items():
            self._accounts[account_id] = encode(account)
            done += 1
            if not done % PIECE:
                self._make_way()

    def _release_held(self) -> None:
        """Encode the held states into the overlay and let them go (lock held)."""
        if self._held_users or self._held_accounts:
            self._flush_held()
            self._held_users, self._held_accounts = {}, {}


class FileCalls:
    """What a buffered store asks the file directly: its URL, aggregates, and outbox calls.

    Only committed rows are leased: the outbox calls never wait for the buffer.
    """

    _inner: SQLiteStore
    _lock: threading.RLock
    _buffer: Sequence[object]
    _outbox: bool

    @property
    def inner(self) -> SQLiteStore:
        """The SQLite store commits go to.

        Added in version 0.1.0.
        """
        return self._inner

    @property
    def url(self) -> str:
        """The inner store's URL.

        Added in version 0.1.0.
        """
        return self._inner.url

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates the inner store keeps.

        Added in version 0.1.0.
        """
        return self._inner.aggregates

    def enqueue(self, messages: Iterable[bytes]) -> None:
        """Queue pqlsdk's own records for the collector (committed at once).

        Added in version 0.1.0.
        """
        self._inner.enqueue(messages)

    def lease(
        self, max_count: int, max_bytes: int, *, now: float, until: float
    ) -> list[tuple[int, bytes]]:
        """Lease committed outbox rows.

        Added in version 0.1.0.
        """
        return self._inner.lease(max_count, max_bytes, now=now, until=until)

    def take_over_leases(self, now: float) -> dict[str, int]:
        """End the leases of senders that died on this host.

        Added in version 0.1.0.
        """
        return self._inner.take_over_leases(now)

    def unlease(self, keys: Iterable[int], *, delete: bool) -> None:
        """End leases on outbox rows.

        Added in version 0.1.0.
        """
        self._inner.unlease(keys, delete=delete)

    def outbox_size(self) -> int:
        """Count committed outbox rows plus buffered messages bound for the outbox.

        Added in version 0.1.0.
        """
        with self._lock:
            buffered = len(self._buffer) if self._outbox else 0
        return self._inner.outbox_size() + buffered

    def outbox(self, *, lease: float) -> SQLiteOutbox:
        """Return the SQLite store's outbox table, counting messages still buffered for it.

        Added in version 0.1.0.
        """
        return SQLiteOutbox(self, lease=lease)
