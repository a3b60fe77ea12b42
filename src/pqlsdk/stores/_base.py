"""The ``Store`` protocol: what pqlsdk needs from wherever state is kept.

A store keeps two things: the raw message log (for rebuilds, replay and
retention) and the per-user and per-account state that ``_state.apply`` derives
from it. Writing a message updates both at once, atomically, and a message whose
``messageId`` the store already holds is ignored, so recording is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Literal, Protocol, TypeVar, runtime_checkable

from .._aggregates import Aggregate
from ..messages import Message
from ._state import AccountState, UserState

__all__ = ["Record", "Store", "Subject", "T"]

Record = tuple[Message, bytes]
"""A checked message and its JSON encoding (encoded once, by ``messages.check``).

Added in version 0.1.0.
"""

Subject = Literal["user", "account"]
"""Whose state a change is about: a user's, or an account's.

Added in version 0.1.0.
"""
T = TypeVar("T")


@runtime_checkable
class Store(Protocol):
    """Where pqlsdk keeps the message log and the state derived from it.

    Added in version 0.1.0.
    """

    @property
    def url(self) -> str:
        """The URL this store was opened from (without credentials).

        Added in version 0.1.0.
        """
        ...

    def record(self, records: Iterable[Record], *, outbox: bool = False) -> int:
        """Append messages to the log and fold them into state, in one transaction.

        Returns how many were new; messages whose ``messageId`` is already stored
        are skipped. ``outbox`` also queues new messages for the collector in the
        same transaction; only stores with a durable outbox accept it.

        Added in version 0.1.0.
        """
        ...

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates this store keeps up to date as messages are recorded.

        Added in version 0.1.0.
        """
        ...

    def maintain(self, aggregates: Iterable[Aggregate]) -> int:
        """Keep ``aggregates`` from now on, rebuilding new ones from the log.

        Aggregates already kept stay kept (other processes sharing the store may
        rely on them). Returns how many were new.

        Added in version 0.1.0.
        """
        ...

    def update_user(self, user_id: str, change: Callable[[UserState], T]) -> T:
        """Run ``change`` on the user's state and save it, atomically; return its result.

        The state is created if the user is new. ``change`` runs under the store's
        write lock (a ``BEGIN IMMEDIATE`` transaction for SQLite), so concurrent
        callers in any thread or process see each other's changes: this is what
        makes moment caps and tier compare-and-set exact. Keep ``change`` short.

        Added in version 0.1.0.
        """
        ...

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Run ``change`` on the account's state and save it, atomically.

        Added in version 0.1.0.
        """
        ...

    def user(self, user_id: str) -> UserState | None:
        """Return the state of ``user_id``, or None if no message named that user.

        Added in version 0.1.0.
        """
        ...

    def account(self, account_id: str) -> AccountState | None:
        """Return the state of ``account_id``, or None if no group message named it.

        Added in version 0.1.0.
        """
        ...

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order, all or only ``subject``'s.

        Added in version 0.1.0.
        """
        ...

    def count(self) -> int:
        """Return how many messages the log holds.

        Added in version 0.1.0.
        """
        ...

    def prune(self, before: datetime) -> int:
        """Drop logged messages older than ``before``; state is kept. Returns how many.

        Added in version 0.1.0.
        """
        ...

    def close(self) -> None:
        """Release files and connections; the store is unusable afterwards.

        Added in version 0.1.0.
        """
        ...
