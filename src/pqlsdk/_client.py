"""The ``Client``: the one object a host app holds.

It turns calls (``identify``, ``group``, ``track``) into checked Segment
messages, stamps them with the client's clock, and records them in the store.
On the host's request path it never raises for run-time faults (a bad event, a
failing store): it logs, counts and returns. Setup mistakes raise at once, and a
``strict=True`` client (for tests) raises everything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

from ._clock import Clock, SystemClock, micros
from ._exceptions import ConfigError, InvalidMessageError, NotJSONError, PQLError, StoreError
from ._stats import Counters, Stats
from .messages import Group, Identify, Message, Track, check, convert, new_message_id
from .stores import AccountState, Store, UserState, open_store

__all__ = ["DEFAULT_STORE", "Client", "ClosedError"]

DEFAULT_STORE: Final = "sqlite:///pqlsdk.db"
"""The store a client opens when given none: a SQLite file in the working directory."""

_PRUNE_EVERY: Final = 3_600_000_000  # µs: retention is enforced at most hourly


class ClosedError(PQLError, RuntimeError):
    """A call on a client after ``close()``."""

    reason = "closed"


class Client:
    """Records product events and keeps per-user and per-account state.

    Usage::

        with pqlsdk.Client(store="sqlite:///pqlsdk.db") as client:
            client.identify("u1", {"plan": "trial"})
            client.group("u1", "acme", {"employees": 120})
            client.track("u1", "limit_hit", {"limit": "seats"})

    Options are keyword-only:

    - ``store``: a URL (``memory://``, ``sqlite:///path.db``) or a ``Store``.
    - ``clock``: where every "now" comes from; ``SystemClock()`` by default.
    - ``strict``: raise run-time faults instead of logging and counting them.
    - ``retention``: how long the raw message log keeps messages (state derived
      from them is kept regardless); None keeps them forever.
    """

    def __init__(
        self,
        *,
        store: str | Store = DEFAULT_STORE,
        clock: Clock | None = None,
        strict: bool = False,
        retention: timedelta | None = timedelta(days=400),
    ) -> None:
        if retention is not None and retention <= timedelta(0):
            raise ConfigError(f"retention must be positive or None, got {retention!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigError(f"clock must have a now() method, got {type(clock).__name__}")
        if isinstance(store, str):
            self._store = open_store(store)
        elif isinstance(store, Store):
            self._store = store
        else:
            raise ConfigError(f"store must be a URL or a Store, got {type(store).__name__}")
        self._clock: Clock = clock or SystemClock()
        self._strict = strict
        self._retention = retention
        self._counters = Counters()
        self._closed = False
        self._prune_lock = threading.Lock()
        self._next_prune = 0
        self._prune(micros(self._clock.now()))

    @property
    def store(self) -> Store:
        """The store this client records into."""
        return self._store

    @property
    def clock(self) -> Clock:
        """The clock every "now" of this client comes from."""
        return self._clock

    def identify(
        self,
        user_id: str | None,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        timestamp: datetime | None = None,
        context: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Record who ``user_id`` is: ``traits`` merge into the user's state."""
        self._record_call(
            Identify,
            {"traits": traits},
            user_id=user_id,
            anonymous_id=anonymous_id,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
        )

    def group(
        self,
        user_id: str | None,
        group_id: str,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        timestamp: datetime | None = None,
        context: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Record that ``user_id`` belongs to account ``group_id`` with ``traits``."""
        self._record_call(
            Group,
            {"group_id": group_id, "traits": traits},
            user_id=user_id,
            anonymous_id=anonymous_id,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
        )

    def track(
        self,
        user_id: str | None,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        timestamp: datetime | None = None,
        context: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Record that ``user_id`` did ``event``; this is what rules count."""
        self._record_call(
            Track,
            {"event": event, "properties": properties},
            user_id=user_id,
            anonymous_id=anonymous_id,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
        )

    def ingest(self, messages: Iterable[Message | Mapping[str, Any]]) -> int:
        """Record already-formed Segment messages (structs or decoded JSON dicts).

        For imports, replays and tests: the messages are checked like any call and
        written in one store transaction. Returns how many were recorded.
        """
        checked = []
        for item in messages:
            try:
                message = item if isinstance(item, Message) else convert(item)
                checked.append(check(message))
            except InvalidMessageError as exc:
                self._drop(exc.reason, exc)
        return self._write(checked)

    def user(self, user_id: str) -> UserState | None:
        """Return what the store holds for ``user_id`` (None if nothing, or on a fault)."""
        try:
            return self._store.user(user_id)
        except StoreError as exc:
            self._error(exc)
            return None

    def account(self, account_id: str) -> AccountState | None:
        """Return what the store holds for ``account_id`` (None if nothing, or on a fault)."""
        try:
            return self._store.account(account_id)
        except StoreError as exc:
            self._error(exc)
            return None

    def stats(self) -> Stats:
        """Return how many messages were recorded and dropped, by reason."""
        return self._counters.snapshot()

    def close(self) -> None:
        """Release the store. Later calls are dropped (counted as ``closed``)."""
        if not self._closed:
            self._closed = True
            self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(store={self._store.url!r}, strict={self._strict})"

    # -- internals ------------------------------------------------------------

    def _record_call(
        self,
        kind: type[Message],
        fields: dict[str, Any],
        *,
        user_id: str | None,
        anonymous_id: str | None,
        timestamp: datetime | None,
        context: Mapping[str, Any] | None,
        message_id: str | None,
    ) -> None:
        try:
            for name in _PAYLOADS.intersection(fields):
                fields[name] = _dict(name, fields[name])
            message = kind(
                user_id=user_id,
                anonymous_id=anonymous_id,
                timestamp=self._clock.now() if timestamp is None else timestamp,
                context=_dict("context", context),
                message_id=message_id or new_message_id(),
                **fields,
            )
            record = check(message)
        except InvalidMessageError as exc:
            self._drop(exc.reason, exc)
            return
        self._write([record])

    def _write(self, records: list[tuple[Message, bytes]]) -> int:
        if not records:
            return 0
        if self._closed:
            self._drop("closed", ClosedError("the client is closed"), count=len(records))
            return 0
        try:
            added = self._store.record(records)
        except StoreError as exc:
            self._drop("store_error", exc, count=len(records))
            return 0
        self._counters.recorded(added)
        now = micros(self._clock.now())
        if now >= self._next_prune:
            self._prune(now)
        return added

    def _prune(self, now: int) -> None:
        """Drop log entries past retention; at most hourly, one thread at a time."""
        if self._retention is None or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + _PRUNE_EVERY
            self._store.prune(self._clock.now() - self._retention)
        except StoreError as exc:
            self._error(exc)
        finally:
            self._prune_lock.release()

    def _drop(self, reason: str, exc: PQLError, *, count: int = 1) -> None:
        """Raise in strict mode; otherwise count ``count`` dropped messages and log."""
        if self._strict:
            raise exc
        self._counters.dropped(reason, str(exc), count)

    def _error(self, exc: StoreError) -> None:
        """Raise in strict mode; otherwise count a store fault that lost no message."""
        if self._strict:
            raise exc
        self._counters.error("store_error", str(exc))


_PAYLOADS: Final = frozenset({"traits", "properties"})


def _dict(name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept any mapping for traits, properties and context; refuse anything else."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise NotJSONError(f"{name} must be a mapping, not {type(value).__name__}")
