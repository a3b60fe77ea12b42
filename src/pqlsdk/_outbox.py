"""Outboxes: where encoded messages wait for the collector.

Three kinds, one protocol:

- ``MemoryOutbox``: a bounded in-process queue of encoded bytes (never object
  graphs, so a long queue adds nothing to GC passes). When full, a policy
  decides: drop the newest, drop the oldest, or block the caller up to a
  timeout; every drop is counted.
- ``SQLiteOutbox``: rows in the store's file. Nothing is dropped; a row leaves
  only when the collector accepted it. Senders in several processes share the
  table safely: ``take`` leases rows for a while, so two senders never send the
  same row at once. A lease names its holder: the lease of a sender that died
  on this host is taken over as soon as a sender looks (at open, and when
  nothing else is left to take); any other lease expires by itself.
- ``RedisOutbox`` (in ``_redis_outbox``, loaded only for a Redis store):
  entries on the Redis server, shared by every host of the app the same way.

Delivery is at-least-once; every message carries a ``messageId`` so the
collector can drop duplicates.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, Literal, Protocol

import msgspec

from ._stats import Counters, logger

__all__ = [
    "FullPolicy",
    "Leased",
    "MemoryOutbox",
    "Outbox",
    "OutboxTable",
    "SQLiteOutbox",
]

FullPolicy = Literal["drop_newest", "drop_oldest", "block"]

_LOOK_EVERY: Final = 1.0
"""Seconds between two looks for dead senders' leases while a sender finds nothing free."""
Item = tuple[str, bytes]
"""A message id and the message's JSON."""


class Leased(msgspec.Struct, frozen=True, gc=False):
    """Messages taken for one delivery attempt; ``keys`` identify them in the outbox."""

    keys: tuple[int, ...]
    messages: tuple[bytes, ...]


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

    def take(self, max_count: int, max_bytes: int) -> Leased | None:
        """Lease the oldest messages, up to ``max_count`` and ``max_bytes`` together."""
        ...

    def ack(self, leased: Leased) -> None:
        """Forget messages the collector accepted (or that were rejected for good)."""
        ...

    def release(self, leased: Leased) -> None:
        """Give leased messages back, to be taken again later, in order."""
        ...

    def pending(self) -> int:
        """Messages waiting or leased."""
        ...

    def forget_inherited(self) -> None:
        """In a forked child: drop what belongs to the parent process."""
        ...


class MemoryOutbox:
    """A bounded in-process outbox."""

    durable: Final = False
    where: Final = "in memory"

    def __init__(
        self,
        *,
        max_messages: int,
        on_full: FullPolicy,
        block_timeout: float,
        counters: Counters,
    ) -> None:
        self._max = max_messages
        self._on_full = on_full
        self._block_timeout = block_timeout
        self._counters = counters
        # Re-entrant: a signal handler may flush while this thread holds the lock.
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)
        self._queue: deque[tuple[int, bytes]] = deque()
        self._leased = 0
        self._next = 0

    def put(self, items: Sequence[Item]) -> int:
        """Queue ``items`` under the full policy; dropped messages are counted."""
        kept = 0
        with self._lock:
            for _, data in items:
                if len(self._queue) + self._leased >= self._max and not self._make_room():
                    self._counters.dropped("queue_full", "the outbox is full: message dropped")
                    continue
                self._next += 1
                self._queue.append((self._next, data))
                kept += 1
        return kept

    def _make_room(self) -> bool:
        """Free a slot per the policy (the lock is held); False means drop the new one."""
        if self._on_full == "drop_oldest" and self._queue:
            self._queue.popleft()
            self._counters.dropped("queue_full", "the outbox is full: oldest message dropped")
            return True
        if self._on_full == "block":
            deadline = time.monotonic() + self._block_timeout
            while len(self._queue) + self._leased >= self._max:
                left = deadline - time.monotonic()
                if left <= 0 or not self._room.wait(left):
                    return False
            return True
        return False

    def take(self, max_count: int, max_bytes: int) -> Leased | None:
        """Lease from the front of the queue."""
        with self._lock:
            taken: list[tuple[int, bytes]] = []
            size = 0
            while self._queue and len(taken) < max_count:
                key, data = self._queue[0]
                if taken and size + len(data) > max_bytes:
                    break
                self._queue.popleft()
                taken.append((key, data))
                size += len(data)
            if not taken:
                return None
            self._leased += len(taken)
            return Leased(tuple(k for k, _ in taken), tuple(d for _, d in taken))

    def ack(self, leased: Leased) -> None:
        """Forget leased messages and wake blocked producers."""
        with self._lock:
            self._leased -= len(leased.keys)
            self._room.notify_all()

    def release(self, leased: Leased) -> None:
        """Put leased messages back at the front, in their order."""
        with self._lock:
            self._leased -= len(leased.keys)
            self._queue.extendleft(reversed(list(zip(leased.keys, leased.messages, strict=True))))

    def pending(self) -> int:
        """Queued plus leased messages."""
        with self._lock:
            return len(self._queue) + self._leased

    def recover(self) -> int:
        """Return what waits: a new memory outbox holds nothing from before."""
        return self.pending()

    def forget_inherited(self) -> None:
        """Start empty: the parent delivers what it queued."""
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)
        self._queue.clear()
        self._leased = 0


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

    def take(self, max_count: int, max_bytes: int) -> Leased | None:
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
        return Leased(tuple(k for k, _ in rows), tuple(d for _, d in rows))

    def ack(self, leased: Leased) -> None:
        """Delete delivered (or rejected) rows."""
        self._store.unlease(leased.keys, delete=True)

    def release(self, leased: Leased) -> None:
        """Make rows available to any sender again."""
        self._store.unlease(leased.keys, delete=False)

    def pending(self) -> int:
        """Rows in the table."""
        return self._store.outbox_size()

    def forget_inherited(self) -> None:
        """Rows are shared through the file: a forked child keeps nothing to forget."""
