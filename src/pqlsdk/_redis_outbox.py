"""The Redis store's outbox: entries on the server, shared by every host of the app.

Leases are by the server's clock, so senders on several hosts share the outbox
the way processes share a SQLite outbox table. While Redis is away it takes
nothing and queues nothing; the store's local buffer holds the messages, and
they join the outbox when they are replayed. Loaded only when a client uses a
Redis store.

Unlike the SQLite outbox's, a lease here does not name its holder, and a
crashed sender's lease is never taken over early: senders span hosts, and no
host can prove another host's process dead. It ends by Redis's clock
(``Delivery.lease``), and any host's sender takes the entries then.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from ._exceptions import StoreError
from ._outbox import Item, Leased

__all__ = ["Held", "OutboxServer", "RedisOutbox"]


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
    def url(self) -> str:
        """The server and prefix, without credentials."""
        ...

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

    @property
    def where(self) -> str:
        """The server the outbox is on."""
        return f"in the Redis outbox at {self._store.url}"

    def recover(self) -> int:
        """Entries waiting on the server; leases of crashed senders end by themselves."""
        return self.pending()

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
