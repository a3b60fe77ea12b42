"""Outboxes kept by stores: where a store's encoded messages wait for the collector.

A store says which outbox it has (``Store.outbox``): the SQLite store (buffered
or not) its outbox table, the Redis store its entries on the server
(``pqlsdk.stores.redis``), the memory store none (the client then queues in
memory). The protocol and the lease live here, beside the stores that
implement them, so that a store names its outbox without importing delivery.

``SQLiteOutbox``: rows in the store's file. Nothing is dropped; a row leaves
only when the collector accepted it. Senders in several processes share the
table safely: ``take`` leases rows for a while, so two senders never send the
same row at once. A lease names its holder: the lease of a sender that died on
this host is taken over as soon as a sender looks (at open, and when nothing
else is left to take); any other lease expires by itself.

Delivery is at-least-once; every message carries a ``messageId`` so the
collector can drop duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol

import msgspec

from .._stats import logger

__all__ = ["Item", "Lease", "Outbox", "OutboxTable", "SQLiteOutbox"]

_LOOK_EVERY: Final = 1.0
"""Seconds between two looks for dead senders' leases while a sender finds nothing free."""
Item = tuple[str, bytes]
"""A message id and the message's JSON."""


class Lease(msgspec.Struct, frozen=True, gc=False):
    """Messages one sender took for one delivery attempt, from any store's outbox.

    ``keys`` identify them in the outbox (row or entry numbers), ``messages``
    are their JSON, in the same order. ``until`` is set by the Redis outbox:
    the lease's end in milliseconds by Redis's clock, which also names the
    lease, so releasing it never frees entries another sender took after it
    ended (0 elsewhere: a SQLite lease names its holder in the table).

    Added in version 0.1.0.
    """

    keys: tuple[int, ...]
    messages: tuple[bytes, ...]
    until: int = 0


class Outbox(Protocol):
    """A queue of encoded messages with take / ack / release semantics."""

    @property
    def durable(self) -> bool:
        """Whether queued messages survive the process."""
        ...

    @property
    def where(self) -> str:
        """Where messages wait, for log lines ("in memory", "in the SQLite outbox at ...")."""
        ...

    def recover(self) -> int:
        """At open: take back what dead senders held; return how many messages wait."""
        ...

    def put(self, items: Sequence[Item]) -> int:
        """Queue ``items``; return how many were kept (a full memory outbox drops)."""
        ...

    def take(self, max_count: int, max_bytes: int) -> Lease | None:
        """Lease the oldest messages, up to ``max_count`` and ``max_bytes`` together."""
        ...

    def ack(self, leased: Lease) -> None:
        """Forget messages the collector accepted (or that were rejected for good)."""
        ...

    def release(self, leased: Lease) -> None:
        """Give leased messages back, to be taken again later, in order."""
        ...

    def pending(self) -> int:
        """Messages waiting or leased."""
        ...

    def forget_inherited(self) -> None:
        """In a forked child: drop what belongs to the parent process."""
        ...

    def when_queued(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(count)`` when messages join without a call of the host.

        The sender waits for word of new messages; a Redis store's replay after
        an outage queues some that no call announces, so its outbox does.
        """
        ...


class OutboxTable(Protocol):
    """A store with an outbox table (the SQLite store, buffered or not)."""

    @property
    def url(self) -> str:
        """``sqlite:///`` and the file's path."""
        ...

    def enqueue(self, messages: Iterable[bytes]) -> None:
        """Insert encoded messages."""
        ...

    def lease(
        self, max_count: int, max_bytes: int, *, now: float, until: float
    ) -> list[tuple[int, bytes]]:
        """Lease the oldest unleased rows until ``until``."""
        ...

    def unlease(self, keys: Iterable[int], *, delete: bool) -> None:
        """Delete rows, or make them available again."""
        ...

    def take_over_leases(self, now: float) -> dict[str, int]:
        """End leases whose holders died on this host: ``{holder: rows}``."""
        ...

    def outbox_size(self) -> int:
        """Count the rows."""
        ...


class SQLiteOutbox:
    """The outbox table of a SQLite store, shared by every process using the file."""

    durable: Final = True

    def __init__(self, store: OutboxTable, *, lease: float) -> None:
        self._store = store
        self._lease = lease
        self._next_look = 0.0  # monotonic time of the next look for dead holders in take()

    @property
    def where(self) -> str:
        """The outbox table and its file."""
        return f"in the SQLite outbox at {self._store.url.removeprefix('sqlite:///')}"

    def recover(self) -> int:
        """Take over the leases of senders that died on this host; return the rows waiting."""
        self._take_over(time.time())
        return self.pending()

    def _take_over(self, now: float) -> int:
        """End dead senders' leases (one read when none is held); log each takeover."""
        self._next_look = time.monotonic() + _LOOK_EVERY
        taken = self._store.take_over_leases(now)
        for holder, rows in taken.items():
            logger.info(
                "took over %d outbox message(s) leased by process %s, which no longer runs",
                rows,
                holder.split("|")[1],
            )
        return sum(taken.values())

    def put(self, items: Sequence[Item]) -> int:
        """Queue ``items`` in the outbox table; nothing is ever dropped."""
        self._store.enqueue(data for _, data in items)
        return len(items)

    def take(self, max_count: int, max_bytes: int) -> Lease | None:
        """Lease the oldest rows no live sender holds.

        When none is free, at most every ``_LOOK_EVERY`` seconds, it looks for
        leases of senders that died since (another worker of this host
        SIGKILLed) and takes them over.
        """
        now = time.time()
        rows = self._store.lease(max_count, max_bytes, now=now, until=now + self._lease)
        if not rows and time.monotonic() >= self._next_look and self._take_over(now):
            rows = self._store.lease(max_count, max_bytes, now=now, until=now + self._lease)
        if not rows:
            return None
        keys, messages = zip(*rows, strict=True)  # two tuples, built without a loop in Python
        return Lease(keys, messages)

    def ack(self, leased: Lease) -> None:
        """Delete delivered (or rejected) rows."""
        self._store.unlease(leased.keys, delete=True)

    def release(self, leased: Lease) -> None:
        """Make rows available to any sender again."""
        self._store.unlease(leased.keys, delete=False)

    def pending(self) -> int:
        """Rows in the table."""
        return self._store.outbox_size()

    def forget_inherited(self) -> None:
        """Rows are shared through the file: a forked child keeps nothing to forget."""

    def when_queued(self, callback: Callable[[int], None]) -> None:
        """Nothing joins the table but through ``put`` or the host's calls: no word to give."""
