"""The memory store's compact layout: small per user, and the same answers as before."""

from __future__ import annotations

import gc
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import pqlsdk
import pqlsdk._digests
from pqlsdk import messages
from pqlsdk._aggregates import Aggregate
from pqlsdk.messages import Group, Identify, Message, Track
from pqlsdk.stores import MemoryStore, memory
from pqlsdk.stores._state import MomentRecord

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PLAYBOOK = Path(__file__).resolve().parents[1] / "examples" / "rules" / "playbook.toml"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(store: MemoryStore, *items: Message) -> int:
    return store.record([messages.check(item) for item in items])


def test_a_user_costs_under_a_kibibyte(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench case's workload with the playbook model holds under 1 KiB per user."""
    monkeypatch.setattr(memory, "_HOT", 64)  # a fixed cost: at 100,000 users it is ~25 B each
    users = 3_000
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK, retention=None) as client:
        client.stats()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for n in range(users):
                user = f"user-{n:06d}"
                client.identify(user, {"plan": "trial", "email": f"{user}@example.com"})
                client.group(user, f"acct-{n % 1000:04d}", {"employees": 120})
                client.track(user, "core_workflow_completed")
                client.track(user, "feature_used", {"feature": f"f{n % 8}"})
                client.track(user, "page_viewed", {"path": "/pricing"})
            client.flush()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert client.stats().recorded == users * 5
    assert grown / users < 1_024


@pytest.mark.parametrize("late", [0, 3, 64], ids=["sealed-at-once", "sealed-when-3", "held"])
def test_late_messages_keep_time_order_across_blocks(
    monkeypatch: pytest.MonkeyPatch, late: int
) -> None:
    """Messages arriving in any order come back in time order, late ones sealed or held."""
    monkeypatch.setattr(memory, "_BLOCK", 4)
    monkeypatch.setattr(memory, "_LATE", late)
    store = MemoryStore()
    seconds = list(range(40))
    random.Random(7).shuffle(seconds)
    for second in seconds:
        record(store, Track(user_id=f"u{second % 3}", event="e", timestamp=at(second)))
    assert [m.timestamp for m in store.messages()] == [at(s) for s in range(40)]
    assert [m.timestamp for m in store.messages("u1")] == [at(s) for s in range(1, 40, 3)]
    assert store.count() == 40


def test_a_backfill_is_not_compressed_once_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users backfilled one after another (each late to the last): blocks seal per 64 late ones."""
    sealed = 0
    seal = memory._Block.seal

    def counted(entries: list[memory._Entry]) -> memory._Block:
        nonlocal sealed
        sealed += 1
        return seal(entries)

    monkeypatch.setattr(memory._Block, "seal", counted)
    store = MemoryStore()
    for user in range(20):
        record(store, *(Track(user_id=f"u{user}", event="e", timestamp=at(s)) for s in range(100)))
    assert store.count() == 2_000
    assert [m.timestamp for m in store.messages("u7")] == [at(s) for s in range(100)]
    assert sealed < 2_000 // 64 * 2


def test_prune_drops_whole_and_partial_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pruning cuts sealed blocks and the tail, and a pruned id may be recorded again."""
    monkeypatch.setattr(memory, "_BLOCK", 4)
    store = MemoryStore()
    first = Track(user_id="u", event="e", timestamp=at(0), message_id="first")
    record(store, first, *(Track(user_id="u", event="e", timestamp=at(s)) for s in range(1, 10)))
    assert store.prune(at(4)) == 4  # the first block, whole
    assert store.prune(at(6)) == 2  # part of the next
    assert [m.timestamp for m in store.messages()] == [at(s) for s in range(6, 10)]
    assert store.prune(at(9)) == 3  # the blocks are gone: the tail is cut
    assert store.count() == 1
    assert record(store, first) == 1  # no longer held: a new message
    assert store.count() == 2


def test_a_resent_message_is_ignored_whatever_its_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A messageId the log holds is a duplicate, even sealed in a block, even re-timed."""
    monkeypatch.setattr(memory, "_BLOCK", 4)
    store = MemoryStore()
    original = Track(user_id="u", event="e", timestamp=at(0), message_id="m-0")
    record(store, original, *(Track(user_id="u", event="e", timestamp=at(s)) for s in range(1, 9)))
    assert record(store, original) == 0
    assert record(store, Track(user_id="u", event="e", timestamp=at(99), message_id="m-0")) == 0
    assert store.count() == 9
    state = store.user("u")
    assert state is not None
    assert state.tracks == 9


def test_ids_whose_hashes_clash_are_both_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ids with one hash are told apart by value: neither is taken for the other."""
    monkeypatch.setattr(memory, "_digest", lambda message_id: 0)
    store = MemoryStore()
    one = Track(user_id="u", event="e", timestamp=at(0), message_id="one")
    two = Track(user_id="u", event="e", timestamp=at(1), message_id="two")
    assert record(store, one, two) == 2
    assert record(store, two, one) == 0
    assert store.prune(at(1)) == 1  # "one" goes; "two" is still held
    assert record(store, two) == 0
    assert record(store, one) == 1


def test_the_dedupe_index_holds_many_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the recent set's bound, ids move to the sorted array and still dedupe."""
    monkeypatch.setattr(pqlsdk._digests, "_RECENT", 8)
    monkeypatch.setattr(pqlsdk._digests, "_SHARDS", 1)  # all 30 in one shard: it merges
    store = MemoryStore()
    tracks = [Track(user_id="u", event="e", timestamp=at(s), message_id=f"m{s}") for s in range(30)]
    assert record(store, *tracks) == 30
    assert record(store, *tracks) == 0
    assert store.prune(at(10)) == 10
    assert record(store, *tracks[:12]) == 10


def test_cold_states_read_and_change_like_hot_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """States encoded out of the hot set read back equal, and take updates and rebuilds."""
    monkeypatch.setattr(memory, "_HOT", 2)
    store = MemoryStore()
    for n in range(5):
        record(
            store,
            Identify(user_id=f"u{n}", traits={"n": n}, timestamp=at(n)),
            Group(user_id=f"u{n}", group_id=f"a{n}", timestamp=at(n)),
            Track(user_id=f"u{n}", event="e", timestamp=at(n)),
        )
    assert "u0" not in store._users.hot
    assert store.user("u0").traits == {"n": 0}  # type: ignore[union-attr]
    assert store.update_user("u0", lambda state: state.tiers.setdefault("m", "hot")) == "hot"
    assert store.user("u0").tiers == {"m": "hot"}  # type: ignore[union-attr]
    store.update_account("a0", lambda state: state.tiers.setdefault("m", "warm"))
    assert store.account("a0").tiers == {"m": "warm"}  # type: ignore[union-attr]
    tally = Aggregate("count", "e")
    assert store.maintain([tally, Aggregate("count", "e", scope="account")]) == 2
    assert all(store.user(f"u{n}").aggregates == {tally.key: 1} for n in range(5))  # type: ignore[union-attr]
    assert repr(store) == "MemoryStore(users=5, messages=15)"


def test_a_cold_state_is_its_fields_without_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoded out of the hot set, a state drops its field names and reads back field for field."""
    monkeypatch.setattr(memory, "_HOT", 1)
    store = MemoryStore()
    record(
        store,
        Identify(user_id="u", traits={"plan": "trial"}, timestamp=at(1)),
        Group(user_id="u", group_id="a", traits={"employees": 5}, timestamp=at(2)),
        Track(user_id="u", event="e", timestamp=at(3)),
    )
    store.update_user("u", lambda state: state.tiers.setdefault("m", "hot"))
    store.update_user("u", lambda state: state.moments.append(MomentRecord(id="1", kind="k", at=5)))
    store.update_account("a", lambda state: state.tiers.setdefault("m", "warm"))
    assert store.maintain([Aggregate("count", "e"), Aggregate("count", "e", scope="account")]) == 2
    user, account = store.user("u"), store.account("a")
    # Only the distinct-valued states above stay hot: the next user and account push them out.
    record(store, Group(user_id="v", group_id="b", timestamp=at(4)))
    assert b"trait_times" not in store._users.cold["u"] + store._accounts.cold["a"]
    assert store.user("u") == user
    assert store.account("a") == account
