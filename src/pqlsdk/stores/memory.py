"""The memory store: state in this process only, for tests and short scripts.

Nothing survives the process, and other processes cannot see it. The log holds
encoded bytes, not message objects, so a long log adds no work to GC passes.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from .._aggregates import Aggregate
from .._clock import micros
from .._exceptions import ConfigError
from ..messages import Message, decode
from ._base import Record, T
from ._state import AccountState, UserState, apply, rebuild

__all__ = ["MemoryStore"]


class MemoryStore:
    """A ``Store`` held in dictionaries behind one lock.

    Added in version 0.1.0.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, UserState] = {}
        self._accounts: dict[str, AccountState] = {}
        # (timestamp µs, arrival, subject, messageId, json): in time order, arrival
        # order breaking ties.
        self._log: list[tuple[int, int, str, str, bytes]] = []
        self._ids: set[str] = set()
        self._arrivals = 0
        self._aggregates: frozenset[Aggregate] = frozenset()

    @property
    def url(self) -> str:
        """Always ``memory://``.

        Added in version 0.1.0.
        """
        return "memory://"

    def record(self, records: Iterable[Record], *, outbox: bool = False) -> int:
        """Append to the log and fold into state, under the store's lock.

        Added in version 0.1.0.
        """
        if outbox:
            raise ConfigError("the memory store has no durable outbox")
        added = 0
        with self._lock:
            for message, data in records:
                if message.message_id in self._ids:
                    continue
                self._ids.add(message.message_id)
                self._arrivals += 1
                entry = (
                    micros(message.timestamp),
                    self._arrivals,
                    message.subject,
                    message.message_id,
                    data,
                )
                if not self._log or self._log[-1] < entry:
                    self._log.append(entry)
                else:
                    bisect.insort(self._log, entry)
                changes = apply(message, self._users.get, self._accounts.get, self._aggregates)
                for user in changes.users:
                    self._users[user.user_id] = user
                for account in changes.accounts:
                    self._accounts[account.account_id] = account
                added += 1
        return added

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates kept up to date.

        Added in version 0.1.0.
        """
        return self._aggregates

    def maintain(self, aggregates: Iterable[Aggregate]) -> int:
        """Keep ``aggregates``; compute new ones from the log under the lock.

        Added in version 0.1.0.
        """
        with self._lock:
            new = frozenset(aggregates) - self._aggregates
            if new:
                rebuild(
                    (decode(entry[4]) for entry in self._log),
                    new,
                    self._users.get,
                    self._accounts.get,
                )
                self._aggregates |= new
        return len(new)

    def update_user(self, user_id: str, change: Callable[[UserState], T]) -> T:
        """Run ``change`` on the live user state under the lock.

        Added in version 0.1.0.
        """
        with self._lock:
            state = self._users.setdefault(user_id, UserState(user_id=user_id))
            return change(state)

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Run ``change`` on the live account state under the lock.

        Added in version 0.1.0.
        """
        with self._lock:
            state = self._accounts.setdefault(account_id, AccountState(account_id=account_id))
            return change(state)

    def user(self, user_id: str) -> UserState | None:
        """Return the live state of ``user_id`` (do not mutate it).

        Added in version 0.1.0.
        """
        return self._users.get(user_id)

    def account(self, account_id: str) -> AccountState | None:
        """Return the live state of ``account_id`` (do not mutate it).

        Added in version 0.1.0.
        """
        return self._accounts.get(account_id)

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order (a snapshot taken at the call).

        Added in version 0.1.0.
        """
        with self._lock:
            log = list(self._log)
        for _, _, owner, _, data in log:
            if subject is None or owner == subject:
                yield decode(data)

    def count(self) -> int:
        """Return how many messages the log holds.

        Added in version 0.1.0.
        """
        return len(self._log)

    def prune(self, before: datetime) -> int:
        """Drop messages older than ``before`` from the log.

        Added in version 0.1.0.
        """
        cutoff = micros(before)
        with self._lock:
            index = bisect.bisect_left(self._log, (cutoff,))
            self._ids.difference_update(entry[3] for entry in self._log[:index])
            del self._log[:index]
        return index

    def close(self) -> None:
        """Nothing to release.

        Added in version 0.1.0.
        """

    def __repr__(self) -> str:
        return f"MemoryStore(users={len(self._users)}, messages={len(self._log)})"
