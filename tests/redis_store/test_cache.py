"""The read cache: reads reused for a short TTL, own writes seen at once, caps still exact."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pqlsdk
from pqlsdk.messages import Track, check
from pqlsdk.stores.redis import RedisStore

from ..test_moments import PLAYBOOK, hot_client

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def track(store: RedisStore, user_id: str, message_id: str) -> None:
    store.record([check(Track(user_id=user_id, event="x", timestamp=T0, message_id=message_id))])


def tracks(store: RedisStore, user_id: str) -> int | None:
    user = store.user(user_id)
    return None if user is None else user.tracks


def test_other_hosts_writes_are_seen_within_the_ttl(make_url: Callable[[], str]) -> None:
    """A host reuses a read for cache_ttl: another host's write shows up at most that late."""
    url = make_url()
    here = RedisStore.from_url(f"{url}&cache_ttl=0.2")
    there = RedisStore.from_url(f"{url}&cache_ttl=0")
    track(there, "u", "a")
    assert tracks(here, "u") == 1
    track(there, "u", "b")
    assert (tracks(here, "u"), tracks(there, "u")) == (1, 2)  # the stale read, within the TTL
    time.sleep(0.25)
    assert tracks(here, "u") == 2
    here.close()
    there.close()


def test_own_writes_are_seen_at_once(make_url: Callable[[], str]) -> None:
    """A host's own writes drop what it cached for the user and their account."""
    store = RedisStore.from_url(f"{make_url()}&cache_ttl=60")
    store.record([check(pqlsdk.messages.Group(user_id="u", group_id="acme", timestamp=T0))])
    assert tracks(store, "u") == 0
    acme = store.account("acme")
    assert acme is not None
    assert acme.active_members == 0
    track(store, "u", "a")
    acme = store.account("acme")
    assert acme is not None
    assert (tracks(store, "u"), acme.active_members) == (1, 1)
    store.update_user("u", lambda state: state.traits.update(plan="business"))
    user = store.user("u")
    assert user is not None
    assert user.traits == {"plan": "business"}
    store.close()


def test_a_read_racing_with_a_write_is_not_kept(store: RedisStore) -> None:
    """A read that began before this process wrote may hold the old state: it is not cached."""
    cached = RedisStore(store.client, prefix=store.prefix, cache_ttl=60)
    track(cached, "u", "a")

    def read_while_writing() -> int | None:
        found = tracks(store, "u")  # the state before the write below
        track(cached, "u", "b")
        return found

    assert cached._cached(("u", "u"), read_while_writing) == 1
    assert tracks(cached, "u") == 2


def test_caps_hold_when_a_host_decides_on_a_stale_read(
    clock: pqlsdk.FixedClock, make_url: Callable[[], str]
) -> None:
    """A host whose cache missed another host's showing still shows nothing: the claim is a
    version-checked write on the fresh state, not on the cache."""
    url = f"{make_url()}&cache_ttl=60"
    hot_client(clock, url).close()
    first = pqlsdk.Client(store=url, clock=clock, rules=PLAYBOOK)
    second = pqlsdk.Client(store=url, clock=clock, rules=PLAYBOOK)
    assert second.user("u") is not None  # cached: no moment shown yet
    shown = first.decide("u")
    assert shown is not None
    assert shown.kind == "upgrade_widget"
    stale = second.user("u")
    assert stale is not None
    assert stale.moments == []  # the second host's cache has not seen the showing
    assert second.decide("u") is None  # yet the cap holds
    uncached = RedisStore.from_url(url.replace("cache_ttl=60", "cache_ttl=0"))
    fresh = uncached.user("u")
    assert fresh is not None
    assert [record.kind for record in fresh.moments] == ["upgrade_widget"]
    uncached.close()
    first.close()
    second.close()
