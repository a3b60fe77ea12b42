"""A chunk of messages and its tier checks cost a bounded number of round trips and commands.

Round trips are counted on the real server's connections: each packed send of
a redis-py connection (one command, one whole pipeline, or one batch of the
store's writer) is one round trip; commands are counted in what it sends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import hiredis
import pytest
from redis.connection import Connection

import pqlsdk
from pqlsdk._aggregates import Aggregate, aggregate_value
from pqlsdk._intake import Intake
from pqlsdk.messages import Group, Identify, Track, encode
from pqlsdk.stores import Record
from pqlsdk.stores.redis import RedisStore, _scripts
from pqlsdk.stores.redis._options import read_url

from ..conftest import ROOT
from .conftest import dies_after, when_a_writer_has_done

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
BURST = ["core_workflow_completed", "checkout_started", "limit_hit", "demo_requested"]
"""Scores 0, 40 (warm), 70 (hot), 100 (burning) under the playbook, one step each."""
AT = datetime(2026, 3, 15, 12, tzinfo=UTC)


class Counting(Connection):
    """A connection that counts its sends (one per command or pipeline, a round trip each)
    and the commands they carry."""

    sends = 0
    commands = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Counting.sends += 1
        reader = hiredis.Reader()
        for part in [command] if isinstance(command, bytes | str) else command:
            reader.feed(part)
        while reader.gets() is not False:  # each command is an array of its arguments
            Counting.commands += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def counting_store(url: str, *, cache_ttl: float = 0.25) -> RedisStore:
    """A store at ``url`` whose connections count their round trips."""
    opened = read_url(url)
    opened.client.connection_pool.connection_class = Counting
    return RedisStore(opened.client, prefix=opened.prefix, url=opened.url, cache_ttl=cache_ttl)


def records(messages: list[Any]) -> list[Record]:
    """The store's records of ``messages``."""
    return [(message, encode(message)) for message in messages]


def playbook_client(
    store: RedisStore, *, on_tier_change: Callable[[pqlsdk.TierChange], None] | None = None
) -> tuple[pqlsdk.Client, Intake]:
    """A client of ``store`` with the playbook rules at a fixed time, and its intake."""
    client = pqlsdk.Client(
        store=store,
        clock=pqlsdk.FixedClock(AT),
        rules=PLAYBOOK,
        retention=None,
        on_tier_change=on_tier_change,
    )
    intake = client._recorder.intake
    assert intake is not None
    return client, intake


def grouped_store(url: str) -> tuple[RedisStore, list[str]]:
    """A counting store with 40 users in 5 accounts (a0 to a4), and the users' ids."""
    store = counting_store(url)
    users = [f"u{i}" for i in range(40)]
    store.record(
        records(
            [
                Group(user_id=u, group_id=f"a{i % 5}", timestamp=AT, message_id=f"g-{u}")
                for i, u in enumerate(users)
            ]
        )
    )
    return store, users


def test_a_chunk_of_many_users_costs_three_round_trips(redis_store_url: str) -> None:
    """One read (and the last write's trims), one users' write, one accounts' write and log."""
    store, users = grouped_store(redis_store_url)
    chunk = records(
        [
            Track(user_id=u, event="page_viewed", timestamp=AT, message_id=f"t-{u}-{k}")
            for k in range(3)
            for u in users
        ]
    )
    before = Counting.sends
    added = store.record(chunk)
    spent = Counting.sends - before
    account = store.account("a0")
    assert account is not None
    assert (added, spent, store.count(), account.active_members) == (120, 3, 160, 8)
    store.close()


def test_a_chunk_of_many_users_costs_a_script_call_per_step(redis_store_url: str) -> None:
    """Not a command per user or account: one script call folds every user, and so on."""
    store, users = grouped_store(redis_store_url)
    chunk = records(
        [Track(user_id=u, event="page_viewed", timestamp=AT, message_id=f"t-{u}") for u in users]
    )
    before = Counting.commands
    store.record(chunk)
    # Trim what the last write applied, read the users (and the registry's size); fold
    # them (and read their accounts); apply the accounts and log the messages.
    assert Counting.commands - before == 3 + 2 + 2
    store.close()


def test_crossings_inside_one_chunk_are_reported_in_order_once_each(
    redis_store_url: str,
) -> None:
    """Two users' bursts, interleaved in one chunk: each user's crossings, in order."""
    store = counting_store(redis_store_url)
    changes: list[tuple[str, str]] = []
    client, intake = playbook_client(
        store,
        on_tier_change=lambda c: changes.append((c.id, c.tier)) if c.model == "playbook" else None,
    )
    intake._gather = 5.0  # the intake thread sits on the messages: one chunk at the read
    for event in BURST:
        client.track("a", event)
        client.track("b", event)
    client.user("a")  # this thread applies the pending chunk
    client.close()
    assert changes == [
        ("a", "warm"),
        ("b", "warm"),
        ("a", "hot"),
        ("b", "hot"),
        ("a", "burning"),
        ("b", "burning"),
    ]


def test_a_chunk_and_its_tier_checks_cost_three_round_trips(redis_store_url: str) -> None:
    """The intake's chunk of many users: tier checks read no user or account back."""
    store = counting_store(redis_store_url)
    client, intake = playbook_client(store)
    users = [f"u{i}" for i in range(40)]
    for i, user in enumerate(users):
        client.group(user, f"a{i % 5}", {"employees": 40})
        client.track(user, "page_viewed")  # placed in the lowest tier: no crossing after
    client.flush()
    intake._gather = 5.0  # the intake thread sits on the messages: one chunk at the drain
    for user in users:
        client.track(user, "page_viewed")
    before = Counting.sends
    intake.drain()
    spent = Counting.sends - before
    client.close()
    assert (spent, store.count()) == (3, 120)


def test_a_pqa_check_reads_the_accounts_members_in_one_round_trip(redis_store_url: str) -> None:
    """A member moving in the PQA model's tiers: the others are read at once, not one by one."""
    store = counting_store(redis_store_url, cache_ttl=0)  # no member is read from the cache
    changes: list[tuple[str, str]] = []
    client, intake = playbook_client(store, on_tier_change=lambda c: changes.append((c.id, c.tier)))
    for i in range(20):
        client.group(f"u{i}", "acme", {"employees": 40})
        client.track(f"u{i}", "core_workflow_completed")  # placed in the lowest tier
    client.flush()
    intake._gather = 5.0  # the intake thread sits on the message: this thread applies it
    client.track("u0", "checkout_started")  # to hot: the PQA standing is checked
    before = Counting.sends
    intake.drain()
    spent = Counting.sends - before
    client.close()
    # The chunk's three, the crossing's compare-and-set (read and write), the members' read.
    assert (changes, spent) == ([("u0", "hot")], 3 + 2 + 1)


def test_account_work_a_write_did_not_read_is_read_and_applied(store: RedisStore) -> None:
    """Work a dead writer left for an account the next chunk's messages do not touch."""
    store.record(records([Group(user_id="u", group_id="acme", timestamp=AT, message_id="g")]))
    spec = Aggregate("count", "x", scope="account")
    store.maintain([spec])
    with dies_after("user"):
        store.record(records([Track(user_id="u", event="x", timestamp=AT, message_id="t")]))
    store.record(records([Identify(user_id="u", timestamp=AT, message_id="i")]))  # no account
    acme = store.account("acme")
    assert acme is not None
    assert aggregate_value(spec, acme.aggregates[spec.key], 0) == 1
    store.close()  # trims what the last write applied
    assert store.client.llen(store._user_key("u", ":pending")) == 0


def test_scripts_lost_between_the_steps_are_loaded_again(store: RedisStore) -> None:
    """A server that forgot its scripts after step 1 still gets the accounts' step."""
    store.record(records([Group(user_id="u", group_id="acme", timestamp=AT, message_id="g")]))
    spec = Aggregate("count", "x", scope="account")
    store.maintain([spec])

    def forget_scripts() -> None:
        store.client.script_flush()

    with when_a_writer_has_done("user", forget_scripts):
        store.record(records([Track(user_id="u", event="x", timestamp=AT, message_id="t")]))
    acme = store.account("acme")
    assert acme is not None
    assert (aggregate_value(spec, acme.aggregates[spec.key], 0), store.count()) == (1, 2)


def test_a_client_on_redis_gathers_chunks_over_the_stores_window(redis_store_url: str) -> None:
    """Its intake is fed what gathered over a window while the host calls, not slices of 2."""
    store = RedisStore.from_url(redis_store_url)
    client = pqlsdk.Client(store=store)
    intake = client._recorder.intake
    assert intake is not None
    assert (intake._window, store.intake_window) == (0.002, 0.002)
    client.close()


def test_without_hiredis_redis_py_packs_the_writers_round_trips(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hiredis comes with the redis extra; without it, a write is packed by redis-py."""
    monkeypatch.setattr(_scripts, "_pack", None)
    added = store.record(records([Track(user_id="u", event="x", timestamp=AT, message_id="t")]))
    user = store.user("u")
    assert user is not None
    assert (added, user.tracks, store.count()) == (1, 1, 1)
