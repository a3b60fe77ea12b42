"""The in-process outbox: a bounded queue for stores that keep none.

``MemoryOutbox`` holds encoded bytes (never object graphs, so a long queue adds
nothing to GC passes). When full, a policy decides: drop the newest, drop the
oldest, or block the caller up to a timeout; every drop is counted. Stores with
a durable outbox keep it themselves (``pqlsdk.stores._outbox``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, Literal

from .._stats import Counters
from ..stores._outbox import Item, Lease

__all__ = ["FullPolicy", "MemoryOutbox"]

FullPolicy = Literal["drop_newest", "drop_oldest", "block"]


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

    def take(self, max_count: int, max_bytes: int) -> Lease | None:
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
            return Lease(tuple(k for k, _ in taken), tuple(d for _, d in taken))

    def ack(self, leased: Lease) -> None:
        """Forget leased messages and wake blocked producers."""
        with self._lock:
            self._leased -= len(leased.keys)
            self._room.notify_all()

    def release(self, leased: Lease) -> None:
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

    def when_queued(self, callback: Callable[[int], None]) -> None:
        """Nothing joins this queue but through ``put`` or the host's calls: no word to give."""
