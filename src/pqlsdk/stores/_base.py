"""The ``Store`` protocol: what pqlsdk needs from wherever state is kept.

A store keeps two things: the raw message log (for rebuilds, replay and
retention) and the per-user and per-account state that ``_state.apply`` derives
from it. Writing a message updates both at once, atomically, and a message whose
``messageId`` the store already holds is ignored, so recording is idempotent.

A store whose server can be away (Redis) raises ``StoreUnavailableError`` while
it is, and counts its own faults (``ReportsFaults``); ``with_faults`` joins those
counts to the client's. They live here, not beside the outage logic
(``_outage``), so that only a Redis store loads that. A store on a server also
reads many users in one round trip (``ReadsUsers``), and asks the intake for
chunks gathered over a window rather than slices of a few messages
(``PaysPerRoundTrip``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Literal, Protocol, TypeVar, runtime_checkable

import msgspec

from .._aggregates import Aggregate
from .._exceptions import StoreError
from .._stats import Stats
from ..messages import Message
from ._outbox import Outbox
from ._state import AccountState, UserState

__all__ = [
    "FaultCounts",
    "PaysPerRoundTrip",
    "ReadsUsers",
    "Record",
    "ReportsFaults",
    "Store",
    "StoreUnavailableError",
    "Subject",
    "T",
    "Written",
    "with_faults",
]

Record = tuple[Message, bytes]
"""A checked message and its JSON encoding (encoded once, by ``messages.check``).

Added in version 0.1.0.
"""

Subject = Literal["user", "account"]
"""Whose state a change is about: a user's, or an account's.

Added in version 0.1.0.
"""
T = TypeVar("T")


class Written:
    """The states a ``record()`` left its users and accounts in, as the store wrote them.

    Why: the client scores each user it recorded (tier crossings) right after
    the write; reading every user and account back would cost a round trip
    each on Redis, whose write computed those very states. A store puts here
    what it has at hand; whoever reads it reads anything missing from the
    store as usual. Do not mutate the states (a store may keep them live).

    Added in version 0.1.0.
    """

    __slots__ = ("accounts", "users")

    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}
        self.accounts: dict[str, AccountState] = {}


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

    def record(
        self, records: Iterable[Record], *, outbox: bool = False, written: Written | None = None
    ) -> int:
        """Append messages to the log and fold them into state, in one transaction.

        Returns how many were new; messages whose ``messageId`` is already stored
        are skipped. ``outbox`` also queues new messages for the collector in the
        same transaction; only stores with a durable outbox accept it. A store
        puts into ``written``, if given, the states the new messages changed, as
        this call left them (it may leave out those it does not have at hand).

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

    def outbox(self, *, lease: float) -> Outbox | None:
        """Return where this store keeps messages for the collector; None if it keeps none.

        A store with a durable outbox queues new messages in the transaction
        that records them (``record(..., outbox=True)``), and senders lease
        them for ``lease`` seconds. None (the memory store) means the client
        queues them in memory.

        Added in version 0.1.0.
        """
        ...

    def close(self) -> None:
        """Release files and connections; the store is unusable afterwards.

        Added in version 0.1.0.
        """
        ...


class StoreUnavailableError(StoreError):
    """The store's server is unreachable or too slow; the call was answered without it.

    The store counts these and logs once per outage, so the client neither
    counts nor logs them again.
    """


class FaultCounts(msgspec.Struct, frozen=True, gc=False):
    """What a store counted that the client's own counters never see."""

    recorded: int
    """Buffered messages that reached the store when they were replayed."""
    dropped: Mapping[str, int]
    errors: Mapping[str, int]


@runtime_checkable
class ReportsFaults(Protocol):
    """A store that counts its own faults (its counts join ``Client.stats()``)."""

    def fault_counts(self) -> FaultCounts:
        """Return the counts as they stand."""
        ...


@runtime_checkable
class ReadsUsers(Protocol):
    """A store that reads many users for about the cost of one (one round trip on Redis).

    Why: an account's PQA check scores every member; read one at a time, a
    server's store pays a round trip per member. Other stores read one by one.
    """

    def read_users(self, user_ids: list[str]) -> dict[str, UserState | None]:
        """Return each user's state (None: no such user)."""
        ...


@runtime_checkable
class PaysPerRoundTrip(Protocol):
    """A store whose write costs round trips to a server, however many messages it holds.

    Why: while the host calls, the intake applies slices of a few messages
    (``_pacing``), which suits a store whose cost is per message (SQLite). A
    write to Redis costs three round trips whatever its size, tens of µs of
    client CPU each under the GIL: in slices of 2 the intake spent most of its
    time on them and fell behind the host. Such a store is fed what gathered
    over ``intake_window`` seconds instead, a chunk at a time.
    """

    @property
    def intake_window(self) -> float:
        """Seconds over which the intake gathers a chunk while the host calls."""
        ...


def with_faults(stats: Stats, store: object) -> Stats:
    """Add ``store``'s own counts, if it keeps any, to the client's ``stats``."""
    if not isinstance(store, ReportsFaults):
        return stats
    faults = store.fault_counts()
    dropped, errors = Counter(stats.dropped), Counter(stats.errors)
    dropped.update(faults.dropped)
    errors.update(faults.errors)
    return msgspec.structs.replace(
        stats, recorded=stats.recorded + faults.recorded, dropped=dict(dropped), errors=dict(errors)
    )
