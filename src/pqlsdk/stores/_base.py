"""The ``Store`` protocol: what pqlsdk needs from wherever state is kept.

A store keeps two things: the raw message log (for rebuilds, replay and
retention) and the per-user and per-account state that ``_state.apply`` derives
from it. Writing a message updates both at once, atomically, and a message whose
``messageId`` the store already holds is ignored, so recording is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..messages import Message
from ._state import AccountState, UserState

__all__ = ["Record", "Store"]

Record = tuple[Message, bytes]
"""A checked message and its JSON encoding (encoded once, by ``messages.check``)."""


@runtime_checkable
class Store(Protocol):
    """Where pqlsdk keeps the message log and the state derived from it."""

    @property
    def url(self) -> str:
        """The URL this store was opened from (without credentials)."""
        ...

    def record(self, records: Iterable[Record]) -> int:
        """Append messages to the log and fold them into state, in one transaction.

        Returns how many were new; messages whose ``messageId`` is already stored
        are skipped.
        """
        ...

    def user(self, user_id: str) -> UserState | None:
        """Return the state of ``user_id``, or None if no message named that user."""
        ...

    def account(self, account_id: str) -> AccountState | None:
        """Return the state of ``account_id``, or None if no group message named it."""
        ...

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order, all or only ``subject``'s."""
        ...

    def count(self) -> int:
        """Return how many messages the log holds."""
        ...

    def prune(self, before: datetime) -> int:
        """Drop logged messages older than ``before``; state is kept. Returns how many."""
        ...

    def close(self) -> None:
        """Release files and connections; the store is unusable afterwards."""
        ...
