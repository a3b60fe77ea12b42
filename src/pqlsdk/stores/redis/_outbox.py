"""The Redis store's outbox on the server: messages waiting for the collector, for every host.

Why on the server: every host's sender must find the queue in one place, one
slot (``{log}``), so that a message is queued once (the log's script queues it
in the step that logs it) and a host that dies leaves its batch to another.
Senders lease the oldest entries until a time by Redis's clock, so hosts'
clocks need not agree: two senders never hold one entry, an entry whose sender
died is leased again when its lease ends, and a release frees nothing another
sender took meanwhile. ``pqlsdk._redis_outbox`` adapts this to the sender.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import attrs

from ._scripts import Keys, Server


@attrs.frozen
class Lease:
    """Outbox entries one sender holds: ``(number, message JSON)`` pairs, until ``until``.

    ``until`` is the lease's end in milliseconds by Redis's clock; it also
    names the lease, so releasing it never frees entries another sender took
    after it ended.

    Added in version 0.1.0.
    """

    until: int
    entries: list[tuple[int, bytes]]


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
        return Lease(until, [(int(rest[i]), rest[i + 1]) for i in range(0, len(rest), 2)])

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
