"""Per-user and per-account state, and the one function that folds a message into it.

Every store (memory, SQLite, and later ones) keeps the same ``UserState`` and
``AccountState`` records and changes them only through ``apply()``, so the stores
differ in where state lives and how it is locked, never in what a message means.

Messages may arrive out of time order. The state therefore remembers *when* each
trait and the account link were set, and a message only replaces what an older
message set: the result is the same whatever order messages arrive in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from .._clock import from_micros, micros
from ..messages import Group, Identify, Message, Track

__all__ = ["AccountState", "Changes", "UserState", "apply", "decode_account", "decode_user"]

_NEVER: Final = -(2**62)
"""Timestamp (µs) older than any real message: nothing set yet."""


class UserState(msgspec.Struct, kw_only=True, gc=False):
    """What pqlsdk knows about one user (or anonymous visitor).

    Times are microseconds since the Unix epoch, UTC; the ``*_at`` properties give
    them as datetimes.
    """

    user_id: str
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    trait_times: dict[str, int] = msgspec.field(default_factory=dict)
    account_id: str | None = None
    account_time: int = _NEVER
    first_seen: int | None = None
    last_active: int | None = None
    tracks: int = 0

    @property
    def first_seen_at(self) -> datetime | None:
        """When the earliest message about this user happened."""
        return None if self.first_seen is None else from_micros(self.first_seen)

    @property
    def last_active_at(self) -> datetime | None:
        """When the user's latest ``track`` happened (identify and group are not activity)."""
        return None if self.last_active is None else from_micros(self.last_active)


class AccountState(msgspec.Struct, kw_only=True, gc=False):
    """What pqlsdk knows about one account (a Segment group)."""

    account_id: str
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    trait_times: dict[str, int] = msgspec.field(default_factory=dict)
    active_members: int = 0
    """Users whose account this is and who tracked anything."""


class Changes(msgspec.Struct, gc=False):
    """The states ``apply()`` changed, for the store to write back."""

    users: list[UserState]
    accounts: list[AccountState]


UserLoader = Callable[[str], UserState | None]
AccountLoader = Callable[[str], AccountState | None]


def apply(message: Message, load_user: UserLoader, load_account: AccountLoader) -> Changes:
    """Fold ``message`` into the state it concerns and return what changed.

    ``load_user`` and ``load_account`` return the current state or None; the store
    calls this inside whatever lock or transaction makes the read-modify-write atomic.
    """
    at = micros(message.timestamp)
    subject = message.subject
    user = load_user(subject) or UserState(user_id=subject)
    if user.first_seen is None or at < user.first_seen:
        user.first_seen = at
    changes = Changes([user], [])
    if isinstance(message, Track):
        first_activity = user.last_active is None
        if first_activity or at > user.last_active:  # type: ignore[operator]
            user.last_active = at
        user.tracks += 1
        if first_activity and user.account_id is not None:
            account = _account(user.account_id, load_account)
            account.active_members += 1
            changes.accounts.append(account)
    elif isinstance(message, Identify):
        _merge(user.traits, user.trait_times, message.traits, at)
    else:
        _group(message, at, user, load_account, changes)
    return changes


def _group(
    message: Group, at: int, user: UserState, load_account: AccountLoader, changes: Changes
) -> None:
    account = _account(message.group_id, load_account)
    _merge(account.traits, account.trait_times, message.traits, at)
    changes.accounts.append(account)
    if at < user.account_time or message.group_id == user.account_id:
        user.account_time = max(at, user.account_time)
        return  # an older membership, or the same one: the account link stands
    if user.last_active is not None:
        # An active user moving accounts leaves the old team and joins the new one.
        if user.account_id is not None:
            previous = _account(user.account_id, load_account)
            previous.active_members -= 1
            changes.accounts.append(previous)
        account.active_members += 1
    user.account_id = message.group_id
    user.account_time = at


def _account(account_id: str, load_account: AccountLoader) -> AccountState:
    return load_account(account_id) or AccountState(account_id=account_id)


def _merge(traits: dict[str, Any], times: dict[str, int], new: dict[str, Any], at: int) -> None:
    """Merge ``new`` traits set at ``at``; on equal times the later arrival wins."""
    for key, value in new.items():
        if at >= times.get(key, _NEVER):
            traits[key] = value
            times[key] = at


_user_decoder: Final = msgspec.msgpack.Decoder(UserState)
_account_decoder: Final = msgspec.msgpack.Decoder(AccountState)


def decode_user(data: bytes) -> UserState:
    """Decode a user state written by ``msgspec.msgpack.encode``."""
    return _user_decoder.decode(data)


def decode_account(data: bytes) -> AccountState:
    """Decode an account state written by ``msgspec.msgpack.encode``."""
    return _account_decoder.decode(data)
