"""State derived from messages: the same in every store, whatever the arrival order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from pqlsdk import messages
from pqlsdk._aggregates import Aggregate, aggregate_value, fold_event
from pqlsdk._clock import micros
from pqlsdk._tiers import swap_tier
from pqlsdk.messages import Group, Identify, Message, Track
from pqlsdk.stores import AccountState, MemoryStore, Store, UserState, Written
from pqlsdk.stores._state import fold_track, rebuild

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def record(store: Store, *items: Message) -> int:
    return store.record([messages.check(item) for item in items])


def test_traits_merge_by_time_not_arrival(store: Store) -> None:
    """A later identify wins for the keys it sets, even when it arrives first."""
    record(
        store,
        Identify(user_id="u", timestamp=at(2), traits={"plan": "paid"}),
        Identify(user_id="u", timestamp=at(1), traits={"plan": "trial", "seats": 3}),
    )
    user = store.user("u")
    assert user is not None
    assert user.traits == {"plan": "paid", "seats": 3}


def test_account_is_the_latest_group_by_time(store: Store) -> None:
    """A user belongs to the account of their latest group message by timestamp."""
    record(
        store,
        Group(user_id="u", group_id="new", timestamp=at(5)),
        Group(user_id="u", group_id="old", timestamp=at(1), traits={"employees": 10}),
    )
    user, old = store.user("u"), store.account("old")
    assert user is not None
    assert old is not None
    assert user.account_id == "new"
    assert old.traits == {"employees": 10}


def test_account_traits_merge_across_users(store: Store) -> None:
    """Group traits from any member merge into the account, later values winning."""
    record(
        store,
        Group(
            user_id="a", group_id="acme", timestamp=at(1), traits={"plan": "free", "employees": 9}
        ),
        Group(user_id="b", group_id="acme", timestamp=at(2), traits={"plan": "paid"}),
    )
    account = store.account("acme")
    assert account is not None
    assert account.traits == {"plan": "paid", "employees": 9}


def test_active_members_follow_tracks_and_moves(store: Store) -> None:
    """Members who tracked anything are counted once, and a mover leaves the old account."""
    record(
        store,
        Group(user_id="a", group_id="one", timestamp=at(1)),
        Group(user_id="b", group_id="one", timestamp=at(1)),
        Group(user_id="c", group_id="one", timestamp=at(1)),  # never tracks
        Track(user_id="a", event="x", timestamp=at(2)),
        Track(user_id="a", event="x", timestamp=at(3)),
        Track(user_id="b", event="x", timestamp=at(2)),
        Group(user_id="b", group_id="two", timestamp=at(4)),
    )
    one, two = store.account("one"), store.account("two")
    assert (one and one.active_members, two and two.active_members) == (1, 1)


def test_identify_and_group_are_not_activity(store: Store) -> None:
    """Only track messages count as activity; first seen counts every message."""
    record(
        store,
        Identify(user_id="u", timestamp=at(1)),
        Track(user_id="u", event="x", timestamp=at(3)),
        Track(user_id="u", event="x", timestamp=at(2)),
        Group(user_id="u", group_id="g", timestamp=at(9)),
    )
    user = store.user("u")
    assert user is not None
    assert (user.first_seen_at, user.last_active_at, user.tracks) == (at(1), at(3), 2)


def test_unknown_subjects_have_no_state(store: Store) -> None:
    """A user or account no message named has no state."""
    assert store.user("nobody") is None
    assert store.account("nothing") is None
    fresh = Identify(user_id="u", timestamp=at(1))
    record(store, fresh)
    user = store.user("u")
    assert user is not None
    assert (user.first_seen_at, user.last_active_at) == (at(1), None)


def test_anonymous_messages_key_on_the_anonymous_id(store: Store) -> None:
    """A message with only anonymousId builds state under that id."""
    record(store, Track(anonymous_id="anon-1", event="page_viewed", timestamp=at(1)))
    user = store.user("anon-1")
    assert user is not None
    assert user.tracks == 1


def test_arrival_order_does_not_change_state(store: Store) -> None:
    """Any shuffle of the same messages yields the same users and accounts."""
    rng = random.Random(7)
    items: list[Message] = []
    for i in range(200):
        user = f"u{rng.randrange(6)}"
        kind = rng.randrange(3)
        when = at(rng.randrange(100))
        if kind == 0:
            items.append(
                Identify(user_id=user, timestamp=when, traits={"k": i % 5, f"t{i % 3}": i})
            )
        elif kind == 1:
            items.append(
                Group(
                    user_id=user, group_id=f"g{rng.randrange(3)}", timestamp=when, traits={"n": i}
                )
            )
        else:
            items.append(Track(user_id=user, event="x", timestamp=when))
    # Equal timestamps resolve by arrival, so give every message its own instant.
    items = [
        type(m)(**{**_fields(m), "timestamp": at(0) + timedelta(seconds=i)})
        for i, m in enumerate(items)
    ]
    record(store, *items)
    expected = _snapshot(store)
    shuffled = items[:]
    rng.shuffle(shuffled)
    other = MemoryStore()
    record(other, *shuffled)
    assert _snapshot(other) == expected


def _fields(message: Message) -> dict[str, Any]:
    return msgspec.structs.asdict(message)


def _snapshot(store: Store) -> tuple[object, ...]:
    users = tuple(store.user(f"u{i}") for i in range(6))
    accounts = tuple(store.account(f"g{i}") for i in range(3))
    return users, accounts


def test_duplicate_message_ids_are_recorded_once(store: Store) -> None:
    """Recording is idempotent: a messageId seen before changes nothing."""
    message = Track(user_id="u", event="x", timestamp=at(1), message_id="same")
    assert record(store, message, message) == 1
    assert record(store, message) == 0
    user = store.user("u")
    assert user is not None
    assert (user.tracks, store.count()) == (1, 1)


def test_messages_come_back_in_time_order(store: Store) -> None:
    """The log yields messages by timestamp, per subject or all."""
    items = [Track(user_id=f"u{i % 2}", event=f"e{i}", timestamp=at(10 - i)) for i in range(6)]
    record(store, *items)
    assert [m.event for m in store.messages()] == ["e5", "e4", "e3", "e2", "e1", "e0"]  # type: ignore[union-attr]
    assert [m.event for m in store.messages("u0")] == ["e4", "e2", "e0"]  # type: ignore[union-attr]


def test_many_messages_page_through_in_order(store: Store) -> None:
    """Long logs are read in pages without losing or repeating a message."""
    rng = random.Random(3)
    items = [
        Track(user_id="u", event="x", timestamp=at(rng.randrange(50)), message_id=f"m{i}")
        for i in range(2500)
    ]
    record(store, *items)
    read = list(store.messages("u"))
    assert sorted(m.message_id for m in read) == sorted(m.message_id for m in items)
    assert [m.timestamp for m in read] == sorted(m.timestamp for m in items)


def test_prune_drops_old_log_entries_but_keeps_state(store: Store) -> None:
    """Retention trims the raw log; what state learned from it stays."""
    record(store, *(Track(user_id="u", event="x", timestamp=at(h)) for h in range(10)))
    assert store.prune(at(4)) == 4
    assert store.count() == 6
    user = store.user("u")
    assert user is not None
    assert user.tracks == 10
    # A pruned message id may be recorded again: the log no longer knows it.
    assert next(m.timestamp for m in store.messages()) == at(4)


def test_rebuild_skips_subjects_the_store_does_not_know() -> None:
    """Rebuilding from a log never invents state for an unknown subject."""
    users, accounts = rebuild(
        [Track(user_id="ghost", event="x", timestamp=at(1))],
        [Aggregate("count", "x")],
        lambda _: None,
        lambda _: None,
    )
    assert (users, accounts) == ({"ghost": None}, {})


def test_swap_tier_is_a_compare_and_set(store: Store) -> None:
    """The remembered tier changes only from the expected value."""
    record(store, Group(user_id="u", group_id="g", timestamp=at(1)))
    assert swap_tier(store, "user", "u", "m", expected=None, tier="hot")
    assert not swap_tier(store, "user", "u", "m", expected=None, tier="warm")
    assert swap_tier(store, "account", "g", "m", expected=None, tier="busy")
    user, account = store.user("u"), store.account("g")
    assert (user and user.tiers, account and account.tiers) == ({"m": "hot"}, {"m": "busy"})


def test_maintain_is_idempotent_and_feeds_new_events(store: Store) -> None:
    """A kept aggregate is not rebuilt twice, and new events update it."""
    spec = Aggregate("count", "x", scope="account")
    record(
        store,
        Group(user_id="u", group_id="g", timestamp=at(1)),
        Track(user_id="u", event="x", timestamp=at(2)),
    )
    assert store.maintain([spec]) == 1
    assert store.maintain([spec]) == 0
    assert store.aggregates == frozenset({spec})
    record(store, Track(user_id="u", event="x", timestamp=at(3)))
    account = store.account("g")
    assert account is not None
    assert aggregate_value(spec, account.aggregates.get(spec.key), 0) == 2


def test_update_creates_state_for_new_subjects(store: Store) -> None:
    """An atomic update on an unknown user or account starts from empty state."""
    assert store.update_user("new", lambda s: s.tracks) == 0
    assert store.update_account("acct", lambda s: s.members) == []
    assert (store.user("new"), store.account("acct")) == (
        UserState(user_id="new"),
        AccountState(account_id="acct"),
    )


def test_record_hands_back_the_states_it_wrote(store: Store) -> None:
    """``written`` gets each user and account the new messages changed, as a read then sees it."""
    record(store, Group(user_id="a", group_id="acme", timestamp=at(1)))
    written = Written()
    batch: list[Identify | Group | Track] = [
        Track(user_id="a", event="x", timestamp=at(2)),
        Identify(user_id="b", timestamp=at(3)),
    ]
    added = store.record([messages.check(item) for item in batch], written=written)
    assert (added, written.users, written.accounts) == (
        2,
        {"a": store.user("a"), "b": store.user("b")},
        {"acme": store.account("acme")},
    )


def test_folding_keeps_what_each_aggregate_is_defined_to_keep() -> None:
    """Folded by ``fold_track`` or one aggregate at a time by ``fold_event``, states are equal.

    Tracks repeat the latest value and day (kept without a fold), bring new ones, values
    of other types (1 is not "1"), and lack the field or hold null (no value at all).
    """
    aggregates = frozenset(
        {
            Aggregate(kind="distinct", event="used", field="f"),
            Aggregate(kind="distinct", event="used", field="f", window=86_400),
            Aggregate(kind="distinct", event="used", field="f", where=(("k", 1),)),
            Aggregate(kind="active_days"),
            Aggregate(kind="active_days", window=7 * 86_400),
            Aggregate(kind="count", event="used"),
        }
    )
    values = ["a", "a", "b", "a", 1, "1", 1, None, "ab", "ab"]
    tracks = [
        Track(user_id="u", event="used", timestamp=at(hours), properties=properties)
        for hours, value in enumerate(values * 3)
        for properties in ({"f": value, "k": 1}, {"g": value})
    ]
    user, expected = UserState(user_id="u"), UserState(user_id="u")
    for track in tracks:
        fold_track(track, micros(track.timestamp), user, None, aggregates)
        for aggregate in aggregates:
            if aggregate.matches(track.event, track.properties):
                state = expected.aggregates.get(aggregate.key)
                folded = fold_event(aggregate, state, micros(track.timestamp), track.properties)
                expected.aggregates[aggregate.key] = folded
        assert user.aggregates == expected.aggregates
    key = Aggregate(kind="distinct", event="used", field="f").key
    assert user.aggregates[key] == ['"1"', '"a"', '"ab"', '"b"', "1"]
