"""Per-user and per-account state, and the one function that folds a message into it.

Every store (memory, SQLite, and later ones) keeps the same ``UserState`` and
``AccountState`` records and changes them only through ``apply()``, so the stores
differ in where state lives and how it is locked, never in what a message means.

Messages may arrive out of time order. The state therefore remembers *when* each
trait and the account link were set, and a message only replaces what an older
message set: the result is the same whatever order messages arrive in.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any, Final, TypeVar, cast

import msgspec

from .._aggregates import DAY, TEXTS, Aggregate, Step, by_event
from .._clock import from_micros, micros
from ..messages import Group, Identify, Message, Track

__all__ = [
    "AccountState",
    "Changes",
    "MomentRecord",
    "UserState",
    "apply",
    "cached",
    "decode_account",
    "decode_aggregate",
    "decode_user",
    "encode",
    "fold_track",
    "rebuild",
]

_NEVER: Final = -(2**62)
"""Timestamp (µs) older than any real message: nothing set yet."""


class MomentRecord(msgspec.Struct, kw_only=True, gc=False):
    """One moment decision for a user: shown, or held out, and what the user did.

    Added in version 0.1.0.
    """

    id: str
    kind: str
    at: int
    """When it was shown (or would have been, when held out), µs."""
    held_out: bool = False
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)
    """Outcome (``clicked``, ``dismissed``...) to when it happened, µs."""
    title: str | None = None
    """The title as the user saw it, placeholders filled (cut to 200 characters), so that
    a crossing names the moment the way the user read it. None when held out, and in
    records written before titles were kept (msgpack maps: they decode with the default,
    and older readers skip the field).

    Added in version 0.1.0.
    """


class UserState(msgspec.Struct, kw_only=True, gc=False):
    """What pqlsdk knows about one user (or anonymous visitor).

    Times are microseconds since the Unix epoch, UTC; the ``*_at`` properties give
    them as datetimes.

    Added in version 0.1.0.
    """

    user_id: str
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    trait_times: dict[str, int] = msgspec.field(default_factory=dict)
    account_id: str | None = None
    account_time: int = _NEVER
    first_seen: int | None = None
    last_active: int | None = None
    tracks: int = 0
    aggregates: dict[str, Any] = msgspec.field(default_factory=dict)
    """Running values the rules need, by ``Aggregate.key``."""
    tiers: dict[str, str] = msgspec.field(default_factory=dict)
    """The tier each model last placed this user in (for crossing detection)."""
    moments: list[MomentRecord] = msgspec.field(default_factory=list)
    """Recent moment decisions, oldest first (for caps, cooldowns and holdouts)."""

    @property
    def first_seen_at(self) -> datetime | None:
        """When the earliest message about this user happened.

        Added in version 0.1.0.
        """
        return None if self.first_seen is None else from_micros(self.first_seen)

    @property
    def last_active_at(self) -> datetime | None:
        """When the user's latest ``track`` happened (identify and group are not activity).

        Added in version 0.1.0.
        """
        return None if self.last_active is None else from_micros(self.last_active)


class AccountState(msgspec.Struct, kw_only=True, gc=False):
    """What pqlsdk knows about one account (a Segment group).

    Added in version 0.1.0.
    """

    account_id: str
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    trait_times: dict[str, int] = msgspec.field(default_factory=dict)
    active_members: int = 0
    """Users whose account this is and who tracked anything."""
    members: list[str] = msgspec.field(default_factory=list)
    """Users whose account this is (by their latest group message), sorted."""
    aggregates: dict[str, Any] = msgspec.field(default_factory=dict)
    """Running values account models need, fed by every member's tracks."""
    tiers: dict[str, str] = msgspec.field(default_factory=dict)
    """The tier each account model last placed this account in."""


class Changes(msgspec.Struct, gc=False):
    """The states ``apply()`` changed, for the store to write back."""

    users: list[UserState]
    accounts: list[AccountState]


UserLoader = Callable[[str], UserState | None]
AccountLoader = Callable[[str], AccountState | None]


def apply(
    message: Message,
    load_user: UserLoader,
    load_account: AccountLoader,
    aggregates: Collection[Aggregate] = (),
    at: int | None = None,
) -> Changes:
    """Fold ``message`` into the state it concerns and return what changed.

    ``load_user`` and ``load_account`` return the current state or None; the store
    calls this inside whatever lock or transaction makes the read-modify-write atomic.
    ``aggregates`` are the running values to keep (see ``pqlsdk._aggregates``);
    ``at`` is the message's timestamp in µs, if the caller has it already.
    """
    if at is None:
        at = micros(message.timestamp)
    subject = message.user_id or message.anonymous_id or ""  # Message.subject, inline: hot
    user = load_user(subject) or UserState(user_id=subject)
    if user.first_seen is None or at < user.first_seen:
        user.first_seen = at
    changes = Changes([user], [])
    if type(message) is Track:  # most messages: checked first
        last = user.last_active
        if last is None or at > last:
            user.last_active = at
        user.tracks += 1
        account_id = user.account_id
        account = None
        if account_id is not None:
            account = load_account(account_id) or AccountState(account_id=account_id)
            changes.accounts.append(account)
            if last is None:
                account.active_members += 1
        fold_track(message, at, user, account, aggregates)
    elif isinstance(message, Identify):
        _merge(user.traits, user.trait_times, message.traits, at)
    else:
        _group(cast(Group, message), at, user, load_account, changes)
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
    # A user moving accounts leaves the old team and joins the new one.
    if user.account_id is not None:
        previous = _account(user.account_id, load_account)
        previous.members.remove(user.user_id)
        previous.active_members -= user.last_active is not None
        changes.accounts.append(previous)
    bisect.insort(account.members, user.user_id)
    account.active_members += user.last_active is not None
    user.account_id = message.group_id
    user.account_time = at


def fold_track(
    message: Track,
    at: int,
    user: UserState | None,
    account: AccountState | None,
    aggregates: Collection[Aggregate],
) -> None:
    """Fold a track into the user's and account's aggregates that it matches.

    Runs for every recorded event and every event of a replayed history, so it
    visits only the aggregates the event can feed (``by_event``).
    """
    if not aggregates:
        return
    global _indexed  # noqa: PLW0603 - one set of aggregates per process, almost always
    indexed = _indexed
    if indexed[0] is not aggregates:
        if isinstance(aggregates, frozenset):
            indexed = _indexed = (aggregates, by_event(aggregates))
        else:
            indexed = (None, by_event(frozenset(aggregates)))
    steps = indexed[1]
    event, properties = message.event, message.properties
    for key, mine, matches, fold, field, daily in steps.get(event) or steps[None]:
        target = user if mine else account
        if target is None or (matches is not None and not matches(event, properties)):
            continue
        values = target.aggregates
        if fold is None:  # a tally, inline: most aggregates are
            values[key] = values.get(key, 0) + 1
            continue
        state = values.get(key)
        if field is not None:  # an all-time distinct: a track without the field has no value
            value = properties.get(field)
            if value is None:
                continue
            if state and type(value) is str and state[-1] == TEXTS.get(value):
                continue  # the usual case: the latest value again, already in the list
        elif daily and state and state[-1] == at // DAY:
            continue  # the usual case: another event on the latest active day
        values[key] = fold(state, at, properties)


_indexed: tuple[frozenset[Aggregate] | None, dict[str | None, tuple[Step, ...]]] = (None, {})
"""The last frozenset of aggregates folded and its ``by_event`` index: one identity check
per track instead of the cache's hashing."""


def rebuild(
    messages: Iterable[Message],
    aggregates: Collection[Aggregate],
    load_user: UserLoader,
    load_account: AccountLoader,
) -> tuple[dict[str, UserState | None], dict[str, AccountState | None]]:
    """Compute ``aggregates`` afresh from a log of ``messages`` in time order.

    For rules that need an aggregate the store has not kept. Account aggregates
    credit each track to the user's *current* account: the log is replayed for
    the new aggregates only, not to rewrite membership history. Returns the
    states touched, for the store to write back.
    """
    keys = [aggregate.key for aggregate in aggregates]
    user, users = cached(load_user, clearing=keys)
    account, accounts = cached(load_account, clearing=keys)
    for message in messages:
        if isinstance(message, Track):
            owner = user(message.subject)
            team = None if owner is None or owner.account_id is None else account(owner.account_id)
            fold_track(message, micros(message.timestamp), owner, team, aggregates)
    return users, accounts


_S = TypeVar("_S", UserState, AccountState)


def cached(
    load: Callable[[str], _S | None], *, clearing: Collection[str] = ()
) -> tuple[Callable[[str], _S | None], dict[str, _S | None]]:
    """Wrap ``load`` so each state is loaded once; return the loader and its cache.

    A store folding several messages in one transaction must see its own changes
    (they go into the cache); a rebuild also drops the aggregate keys in
    ``clearing`` from each state the first time it is loaded.
    """
    cache: dict[str, _S | None] = {}

    def get(key: str) -> _S | None:
        if key not in cache:
            found = cache[key] = load(key)
            if found is not None:
                for name in clearing:
                    found.aggregates.pop(name, None)
        return cache[key]

    return get, cache


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
_aggregate_decoder: Final = msgspec.msgpack.Decoder(Aggregate)

encode: Final = msgspec.msgpack.Encoder().encode
"""Encode what a store keeps (a state, an aggregate spec) as msgpack: one format for every store."""


def decode_user(data: bytes) -> UserState:
    """Decode a user state written by ``msgspec.msgpack.encode``."""
    return _user_decoder.decode(data)


def decode_account(data: bytes) -> AccountState:
    """Decode an account state written by ``msgspec.msgpack.encode``."""
    return _account_decoder.decode(data)


def decode_aggregate(data: bytes) -> Aggregate:
    """Decode an aggregate spec written by ``encode`` (a store's aggregate registry)."""
    return _aggregate_decoder.decode(data)
