"""Outboxes: where encoded messages wait for the collector.

Two kinds, one protocol:

- ``MemoryOutbox``: a bounded in-process queue of encoded bytes (never object
  graphs, so a long queue adds nothing to GC passes). When full, a policy
  decides: drop the newest, drop the oldest, or block the caller up to a
  timeout; every drop is counted.
- ``SQLiteOutbox``: rows in the store's file. Nothing is dropped; a row leaves
  only when the collector accepted it. Senders in several processes share the
  table safely: ``take`` leases rows for a while, so two senders never send the
  same row at once, and a crashed sender's lease simply expires.
- ``RedisOutbox``: entries on the Redis server, shared by every host of the
  app the same way (leases by the server's clock). While Redis is away it
  takes nothing and queues nothing; the store's local buffer holds the
  messages, and they join the outbox when they are replayed.

Delivery is at-least-once; every message carries a ``messageId`` so the
collector can drop duplicates.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, Literal, Protocol

import attrs

from ._exceptions import StoreError
from ._stats import Counters

__all__ = [
    "FullPolicy",
    "Leased",
    "MemoryOutbox",
    "Outbox",
    "OutboxServer",
    "OutboxTable",
    "RedisOutbox",
    "SQLiteOutbox",
]

FullPolicy = Literal["drop_newest", "drop_oldest", "block"]
Item = tuple[str, bytes]
"""A message id and the message's JSON."""


@attrs.frozen
class Leased:
    """Messages taken for one delivery attempt; ``keys`` identify them in the outbox."""

    keys: tuple[int, ...]
    messages: tuple[bytes, ...]


class Outbox(Protocol):
    """A queue of encoded messages with take / ack / release semantics."""

    @property
    def durable(self) -> bool:
        """Whether queued messages survive the process."""
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

    def forget_inherited(self) -> None:
        """Start empty: the parent delivers what it queued."""
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)
        self._queue.clear()
        self._leased = 0


class OutboxTable(Protocol):
    """A store with an outbox table (the SQLite store, buffered or not)."""

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

    def outbox_size(self) -> int:
        """Count the rows."""
        ...


class SQLiteOutbox:
    """The outbox table of a SQLite store, shared by every process using the file."""

    durable: Final = True

    def __init__(self, store: OutboxTable, *, lease: float) -> None:
        self._store = store
        self._lease = lease

    def put(self, items: Sequence[Item]) -> int:
        """Queue ``items`` in the outbox table; nothing is ever dropped."""
        self._store.enqueue(data for _, data in items)
        return len(items)

    def take(self, max_count: int, max_bytes: int) -> Leased | None:
        """Lease the oldest rows no live sender holds."""
        now = time.time()
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


class Held(Protocol):
    """Entries one sender holds, and the end of its lease (which also names the lease)."""

    @property
    def until(self) -> int:
        """The lease's end, by the server's clock."""
        ...

    @property
    def entries(self) -> list[tuple[int, bytes]]:
        """``(number, message)`` pairs, oldest first."""
        ...


class OutboxServer(Protocol):
    """A store whose server keeps an outbox shared by every host (the Redis store)."""

    @property
    def buffered(self) -> int:
        """Messages waiting in this process for the server (they join the outbox later)."""
        ...

    def enqueue(self, messages: Iterable[bytes]) -> None:
        """Queue encoded messages."""
        ...

    def lease(self, max_count: int, max_bytes: int, seconds: float) -> Held:
        """Lease the oldest entries no sender holds, for ``seconds``."""
        ...

    def ack(self, keys: Iterable[int]) -> None:
        """Delete entries."""
        ...

    def release(self, until: int, keys: Iterable[int]) -> None:
        """Make entries still under the lease ending at ``until`` available again."""
        ...

    def outbox_size(self) -> int:
        """Count the entries."""
        ...


class RedisOutbox:
    """The Redis store's outbox, shared by every process of every host on the server.

    Why it never raises: it runs in the sender thread (and in ``flush()``),
    where a Redis fault must neither kill the sender nor reach the host. The
    store counts and logs each outage once; here a fault means "nothing to
    take now" (``take``), "the lease ends by itself" (``release``), or a
    possible second send after the lease ends (``ack``: the collector drops
    the duplicate by ``messageId``). ``put`` is the exception: pqlsdk's own
    records reach it from the client, which counts a ``StoreError`` as
    ``emit_failed``.
    """

    durable: Final = True

    def __init__(self, store: OutboxServer, *, lease: float) -> None:
        self._store = store
        self._lease = lease
        self._lock = threading.Lock()
        self._held: dict[tuple[int, ...], int] = {}  # leased keys -> the lease's end
        self._size = 0  # the last size Redis reported

    def put(self, items: Sequence[Item]) -> int:
        """Queue ``items`` on the server; nothing is dropped (a fault raises ``StoreError``)."""
        self._store.enqueue(data for _, data in items)
        return len(items)

    def take(self, max_count: int, max_bytes: int) -> Leased | None:
        """Lease the oldest entries no live sender holds; None while Redis is away."""
        try:
            held = self._store.lease(max_count, max_bytes, self._lease)
        except StoreError:
            return None
        if not held.entries:
            return None
        keys = tuple(key for key, _ in held.entries)
        with self._lock:
            self._held[keys] = held.until
        return Leased(keys, tuple(data for _, data in held.entries))

    def _forget(self, leased: Leased) -> int:
        with self._lock:
            return self._held.pop(leased.keys, 0)

    def ack(self, leased: Leased) -> None:
        """Delete delivered (or rejected) entries."""
        self._forget(leased)
        # On a fault the lease ends, another sender sends them again, and the collector
        # drops the duplicates.
        with contextlib.suppress(StoreError):
            self._store.ack(leased.keys)

    def release(self, leased: Leased) -> None:
        """Make entries available to any sender again (unless another took them meanwhile)."""
        until = self._forget(leased)
        with contextlib.suppress(StoreError):  # the lease ends by itself
            self._store.release(until, leased.keys)

    def pending(self) -> int:
        """Entries on the server (as last read, while Redis is away) plus this process's buffer."""
        with contextlib.suppress(StoreError):  # Redis is away: the last size stands
            self._size = self._store.outbox_size()
        return self._size + self._store.buffered

    def forget_inherited(self) -> None:
        """In a forked child: the parent's leases are the parent's to end."""
        self._lock = threading.Lock()
        self._held = {}
