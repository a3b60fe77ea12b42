"""The Redis store's message log and aggregate registry, shared by every process.

Why together: both live in the ``{log}`` slot, and the registry is fed by the
log (a new aggregate is computed by replaying it). The log is one sorted set
ordered by member bytes (biased timestamp, arrival stamp, JSON), so byte order
is time order and a page is one ``ZRANGE BYLEX``. The registry says which
aggregates every process folds in its writes; it only grows, so a process
notices another's registration by its length, and one that finds it shorter
than its own knows the server lost its data and registers them again.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final, cast

from ..._aggregates import Aggregate
from ..._clock import micros
from ...messages import Message, decode
from .._state import AccountState, UserState, decode_account, decode_aggregate, decode_user, encode
from .._state import rebuild as rebuild_states
from ._cache import ReadCache
from ._scripts import BIAS, HEADER, Keys, Server

_PAGE: Final = 1000


class Log:
    """The log, the registry, and the retention this process last applied."""

    def __init__(self, server: Server, keys: Keys, cache: ReadCache) -> None:
        self._server = server
        self._redis = server.client
        self._keys = keys
        self._cache = cache
        self.aggregates: frozenset[Aggregate] = frozenset()
        """The aggregates kept up to date (as of this process's last write)."""
        self.cutoff: int | None = None
        """µs: messageIds older than this are forgotten."""
        self.keep: int | None = None
        """µs the log keeps a message, by Redis's clock (the messageId sets' expiry)."""

    def refresh(self) -> frozenset[Aggregate]:
        """Re-read the registry when another process added to it (it only grows).

        A registry missing some this process registered belongs to a server
        that lost its data (a restart without persistence, a failover): they
        are registered again, so messages keep being folded into them.
        """
        registry = self._keys.registry
        if self._redis.hlen(registry) != len(self.aggregates):
            specs = cast(list[bytes], self._redis.hvals(registry))
            found = frozenset(decode_aggregate(spec) for spec in specs)
            lost = self.aggregates - found
            if lost:
                self._redis.hset(registry, mapping={spec.key: encode(spec) for spec in lost})
            self.aggregates = found | lost
        return self.aggregates

    def register(self, wanted: frozenset[Aggregate]) -> int:
        """Register the aggregates not yet registered, then compute them from the log.

        Registered first, so every process folds them from its next write on;
        then each state touched gets their values in its own transaction.
        """
        new = wanted - self.refresh()
        if not new:
            return 0
        keys = self._keys
        try:
            self._redis.hset(
                keys.registry, mapping={aggregate.key: encode(aggregate) for aggregate in new}
            )
            self.aggregates |= new
            users, accounts = rebuild_states(
                self.messages(),
                new,
                lambda user_id: self._server.load(keys.user(user_id), decode_user),
                lambda account_id: self._server.load(keys.account(account_id), decode_account),
            )
            names = [aggregate.key for aggregate in new]
            for user_id, user in users.items():
                if user is not None:
                    self._merge(keys.user(user_id), decode_user, user.aggregates, names)
            for account_id, account in accounts.items():
                if account is not None:
                    self._merge(keys.account(account_id), decode_account, account.aggregates, names)
            return len(new)
        finally:
            self._cache.reset()  # every state may have changed

    def _merge(
        self,
        key: str,
        load: Callable[[bytes], UserState | AccountState],
        values: dict[str, Any],
        names: list[str],
    ) -> None:
        """Set the rebuilt aggregates ``names`` in the state at ``key``, atomically."""

        def change(state: UserState | AccountState) -> None:
            for name in names:
                if name in values:
                    state.aggregates[name] = values[name]
                else:
                    state.aggregates.pop(name, None)

        self._server.update(key, lambda raw: load(cast(bytes, raw)), change)

    def messages(self) -> Iterator[Message]:
        """Every logged message in time order, a page at a time."""
        start: bytes = b"-"
        while True:
            page = cast(
                list[bytes],
                self._redis.zrange(self._keys.log, start, "+", bylex=True, offset=0, num=_PAGE),
            )
            for member in page:
                yield decode(member[HEADER.size :])
            if len(page) < _PAGE:
                return
            start = b"(" + page[-1]

    def count(self) -> int:
        """How many messages the log holds."""
        return int(self._redis.zcard(self._keys.log))

    def prune(self, before: datetime) -> int:
        """Drop messages older than ``before``; from then on messageIds older are forgotten."""
        cutoff = micros(before)
        dropped = self._redis.zremrangebylex(
            self._keys.log, "-", b"(" + struct.pack(">Q", cutoff + BIAS)
        )
        self.cutoff = cutoff
        self.keep = time.time_ns() // 1000 - cutoff
        return int(dropped)
