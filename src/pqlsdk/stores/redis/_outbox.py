"""The Redis store's outbox on the server: messages waiting for the collector, for every host.

Why on the server: every host's sender must find the queue in one place, one
slot (``{log}``), so that a message is queued once (the log's script queues it
in the step that logs it) and a host that dies leaves its batch to another.
Senders lease the oldest entries until a time by Redis's clock, so hosts'
clocks need not agree: two senders never hold one entry, an entry whose sender
died is leased again when its lease ends, and a release frees nothing another
sender took meanwhile.

``RedisOutbox`` adapts this to the client's sender; the store hands it out
(``RedisStore.outbox``). Unlike the SQLite outbox's, a lease here does not name
its holder, and a crashed sender's lease is never taken over early: senders
span hosts, and no host can prove another host's process dead. It ends by
Redis's clock (``Delivery.lease``), and any host's sender takes the entries
then. While Redis is away the outbox takes nothing and queues nothing; the
store's local buffer holds the messages, and they join the outbox when they
are replayed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol, cast

from ..._exceptions import StoreError
from .._outbox import Item, Lease
from ._scripts import Keys, Server


class ServerOutbox:
    """The outbox's keys and the commands and scripts on them."""

    def __init__(self, server: Server, keys: Keys) -> None:
        self._server = server
        self._redis = server.client
        self._keys = keys

    def enqueue(self, bodies: list[bytes]) -> None:
        """Queue ``bodies`` (at least one) under the next outbox numbers."""
        keys = self._keys
        last = int(self._redis.incrby(keys.outbox_seq, len(bodies)))
        numbers = range(last - len(bodies) + 1, last + 1)
        pipe: Any = self._redis.pipeline(transaction=True)
        pipe.hset(keys.outbox, mapping=dict(zip(numbers, bodies, strict=True)))
        pipe.zadd(keys.ready, {str(number): number for number in numbers})
        pipe.execute()

    def lease(self, max_count: int, max_bytes: int, seconds: float) -> Lease:
        """Lease the oldest entries no sender holds (those whose lease ended too)."""
        keys = self._keys
        reply = self._server.optimistic(
            keys.leased,
            lambda: (
                True,
                cast(
                    list[Any],
                    self._server.eval(
                        self._redis,
                        "lease",
                        [keys.outbox, keys.ready, keys.leased],
                        [max_count, max_bytes, max(1, round(seconds * 1000))],
                    ),
                ),
            ),
        )
        until, rest = int(reply[0]), reply[1:]
        return Lease(
            tuple(int(rest[i]) for i in range(0, len(rest), 2)),
            tuple(rest[i + 1] for i in range(0, len(rest), 2)),
            until,
        )

    def ack(self, keys: Iterable[int]) -> None:
        """Delete entries."""
        numbers = [str(key) for key in keys]
        pipe: Any = self._redis.pipeline(transaction=True)
        pipe.hdel(self._keys.outbox, *numbers)
        pipe.zrem(self._keys.ready, *numbers)
        pipe.zrem(self._keys.leased, *numbers)
        pipe.execute()

    def release(self, until: int, keys: Iterable[int]) -> None:
        """Make entries still under the lease ending at ``until`` ready again."""
        ready, leased = self._keys.ready, self._keys.leased
        args = [until, *keys]
        self._server.optimistic(
            leased, lambda: (True, self._server.eval(self._redis, "release", [ready, leased], args))
        )

    def size(self) -> int:
        """Entries waiting, leased or not."""
        return int(self._redis.hlen(self._keys.outbox))


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

    def lease(self, max_count: int, max_bytes: int, seconds: float) -> Lease:
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

    def when_queued(self, callback: Callable[[int], None] | None) -> None:
        """Call ``callback(count)`` when a replay after an outage queues messages."""
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

    def take(self, max_count: int, max_bytes: int) -> Lease | None:
        """Lease the oldest entries no live sender holds; None while Redis is away."""
        try:
            lease = self._store.lease(max_count, max_bytes, self._lease)
        except StoreError:
            return None
        return lease if lease.keys else None

    def ack(self, lease: Lease) -> None:
        """Delete delivered (or rejected) entries."""
        # On a fault the lease ends, another sender sends them again, and the collector
        # drops the duplicates.
        with contextlib.suppress(StoreError):
            self._store.ack(lease.keys)

    def release(self, lease: Lease) -> None:
        """Make entries available to any sender again (unless another took them meanwhile)."""
        with contextlib.suppress(StoreError):  # the lease ends by itself
            self._store.release(lease.until, lease.keys)

    def pending(self) -> int:
        """Entries on the server (as last read, while Redis is away) plus this process's buffer."""
        with contextlib.suppress(StoreError):  # Redis is away: the last size stands
            self._size = self._store.outbox_size()
        return self._size + self._store.buffered

    def forget_inherited(self) -> None:
        """In a forked child: nothing to forget; each lease carries its end (``Lease.until``)."""

    def when_queued(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(count)`` when the store's replay after an outage queues messages."""
        self._store.when_queued(callback)
