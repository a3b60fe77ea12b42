"""What only the Redis store does: URLs, keys per slot, several hosts on one server, faults."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.crc import key_slot

import pqlsdk
from pqlsdk._aggregates import Aggregate, aggregate_value
from pqlsdk.messages import Group, Identify, Message, Track, check
from pqlsdk.stores import UserState, open_store
from pqlsdk.stores._base import StoreUnavailableError
from pqlsdk.stores.redis import DEFAULT_PREFIX, RedisStore

from ..processes import untraced_env
from .conftest import dies_after

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def record(store: RedisStore, *items: Message) -> int:
    return store.record([check(item) for item in items])


def test_urls_name_server_database_and_prefix_but_never_credentials() -> None:
    """open_store reads redis:// and rediss:// URLs; url and repr leave the password out."""
    store = open_store("redis://app:s3cret@127.0.0.1:6379/15?prefix=shop&socket_timeout=2")
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.url) == (
        "shop",
        "redis://127.0.0.1:6379/15?prefix=shop&socket_timeout=2",
    )
    assert "s3cret" not in repr(store)
    assert store.client.connection_pool.connection_kwargs["password"] == "s3cret"  # noqa: S105
    keyed = open_store("redis://127.0.0.1/0?password=s3cret&username=app&prefix=x")
    assert keyed.url == "redis://127.0.0.1/0?prefix=x"
    keyed.close()
    tls = open_store("rediss://[::1]/0")
    assert isinstance(tls, RedisStore)
    assert (tls.prefix, tls.url) == (DEFAULT_PREFIX, "rediss://[::1]/0")
    store.close()
    tls.close()


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("redis://127.0.0.1/0?prefix=a&prefix=b", "give prefix= once"),
        ("redis://127.0.0.1/0?prefix=", "non-empty prefix without braces"),
        ("redis://127.0.0.1/0?prefix=a{b}", "non-empty prefix without braces"),
        ("redis://127.0.0.1:port/0", "Port could not be cast"),
        ("redis://127.0.0.1/0?socket_timeout=soon", "socket_timeout"),
    ],
)
def test_bad_redis_urls_are_config_errors(url: str, text: str) -> None:
    """A malformed URL or prefix fails at open, naming what is wrong."""
    with pytest.raises(pqlsdk.ConfigError, match=text):
        open_store(url)


def test_a_missing_redis_py_names_the_extra() -> None:
    """Without redis-py, opening a redis:// store says which extra to install."""
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "from pqlsdk.stores import open_store\n"
        "try:\n"
        "    open_store('redis://127.0.0.1:6379/0')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'pqlsdk[redis]'" in result.stdout


def test_a_subjects_keys_share_one_cluster_slot(store: RedisStore) -> None:
    """Every key of a user sits in one slot, every key of an account in another; all prefixed."""
    record(
        store,
        Identify(user_id="ada", timestamp=at(1), traits={"plan": "trial"}),
        Group(user_id="ada", group_id="acme", timestamp=at(1)),
        Track(user_id="ada", event="x", timestamp=at(2)),
    )
    store.close()  # trims what the write applied (a next write would, in its read)
    keys = [key.decode() for key in store.client.scan_iter(match=f"{store.prefix}:*")]
    slots: dict[str, set[int]] = {}
    for key in keys:
        tag = key[len(store.prefix) + 1 :].split("}")[0]
        slots.setdefault(tag, set()).add(key_slot(key.encode()))
    assert sorted(slots) == ["{a:acme", "{log", "{u:ada"]
    assert all(len(found) == 1 for found in slots.values())
    assert sorted(key[len(store.prefix) :] for key in keys) == [
        ":{a:acme}",
        ":{a:acme}:seen",
        ":{log}",
        ":{u:ada}",
        ":{u:ada}:ids",
    ]  # the pending list is gone once drained and trimmed


def test_two_hosts_on_one_server_share_state_and_aggregates(
    store: RedisStore, redis_store_url: str
) -> None:
    """What one host records and the aggregates it keeps are seen and kept by another."""
    other = RedisStore.from_url(redis_store_url)
    spec = Aggregate("count", "x")
    assert store.maintain([spec]) == 1
    assert other.aggregates == frozenset()
    record(other, Track(user_id="u", event="x", timestamp=at(1)))
    assert other.aggregates == frozenset({spec})  # read from the registry at the write
    user = store.user("u")
    assert user is not None
    assert aggregate_value(spec, user.aggregates.get(spec.key), 0) == 1
    other.close()


def test_prefixes_keep_apps_apart(store: RedisStore, make_url: Callable[[], str]) -> None:
    """Two prefixes on one server are two separate stores."""
    neighbour = RedisStore.from_url(make_url())
    record(store, Track(user_id="u", event="x", timestamp=at(1)))
    assert (neighbour.user("u"), neighbour.count()) == (None, 0)
    neighbour.close()


def test_a_pruned_message_id_may_be_recorded_again(store: RedisStore) -> None:
    """As in SQLite, pruning forgets the ids it dropped (and only those)."""
    old = Track(user_id="u", event="x", timestamp=at(1), message_id="old")
    kept = Track(user_id="u", event="x", timestamp=at(5), message_id="kept")
    assert record(store, old, kept) == 2
    assert store.prune(at(3)) == 1
    assert record(store, old, kept) == 1
    user = store.user("u")
    assert user is not None
    assert (user.tracks, store.count()) == (3, 2)


def test_work_left_by_a_writer_that_died_is_finished_by_the_next(store: RedisStore) -> None:
    """A crash after the user's step: the account catches up at the user's next write."""
    record(store, Group(user_id="u", group_id="acme", timestamp=at(1)))
    spec = Aggregate("count", "x", scope="account")
    store.maintain([spec])
    with dies_after("user"):
        record(store, Track(user_id="u", event="x", timestamp=at(2)))
    assert store.client.llen(store._user_key("u", ":pending")) == 1
    acme = store.account("acme")
    assert acme is not None
    assert (acme.active_members, acme.aggregates) == (0, {})
    assert store.count() == 1  # the log lags too
    record(store, Track(user_id="u", event="x", timestamp=at(3)))
    acme = store.account("acme")
    assert acme is not None
    assert (acme.active_members, aggregate_value(spec, acme.aggregates[spec.key], 0)) == (1, 2)
    record(store, Identify(user_id="v", timestamp=at(4)))  # its read trims what u's write applied
    assert (store.count(), store.client.llen(store._user_key("u", ":pending"))) == (4, 0)


def test_account_work_is_applied_once_when_a_writer_dies_before_trimming(
    store: RedisStore,
) -> None:
    """A crash after the account's step and the log: the next writer finds both done and trims."""
    record(store, Group(user_id="u", group_id="acme", timestamp=at(1)))
    spec = Aggregate("count", "x", scope="account")
    store.maintain([spec])
    with dies_after("accounts"):
        record(store, Track(user_id="u", event="x", timestamp=at(2)))
    acme = store.account("acme")
    assert acme is not None
    assert (aggregate_value(spec, acme.aggregates[spec.key], 0), store.count()) == (1, 2)
    assert store.client.llen(store._user_key("u", ":pending")) == 1
    record(store, Track(user_id="u", event="x", timestamp=at(3)))
    acme = store.account("acme")
    assert acme is not None
    assert (acme.active_members, aggregate_value(spec, acme.aggregates[spec.key], 0)) == (1, 2)
    assert store.count() == 3
    store.close()  # trims what the last write applied
    assert store.client.llen(store._user_key("u", ":pending")) == 0


def test_rebuild_fills_only_states_that_exist(store: RedisStore) -> None:
    """maintain() sets the new aggregates where the log feeds them and invents no state."""
    record(
        store,
        Group(user_id="busy", group_id="lost", timestamp=at(1)),
        Track(user_id="gone", event="x", timestamp=at(2)),
        Track(user_id="idle", event="y", timestamp=at(2)),
        Track(user_id="busy", event="x", timestamp=at(3)),
    )
    store.client.delete(store._user_key("gone"), store._account_key("lost"))
    spec, team = Aggregate("count", "x"), Aggregate("count", "x", scope="account")
    assert store.maintain([spec, team]) == 2
    busy, idle = store.user("busy"), store.user("idle")
    assert busy is not None
    assert idle is not None
    assert (busy.aggregates, idle.aggregates) == ({spec.key: 1}, {})  # idle: none to keep
    assert (store.user("gone"), store.account("lost")) == (None, None)


def test_endless_interference_ends_in_a_store_error(store: RedisStore) -> None:
    """A user whose key changes under every attempt fails within the timeout, not forever."""
    impatient = RedisStore(store.client, prefix=store.prefix, contention_timeout=0.5)
    bystander = redis.Redis(connection_pool=store.client.connection_pool)
    calls = []

    def change(state: UserState) -> None:
        calls.append(state)
        bystander.hincrby(store._user_key("u"), "v", 1)  # another host writes first, every time

    with pytest.raises(pqlsdk.StoreError, match="kept changing"):
        impatient.update_user("u", change)
    assert len(calls) > 4  # retried, with jitter after the first few


@pytest.mark.parametrize(
    ("action", "text"),
    [
        (lambda s: s.user("u"), "read failed"),
        (lambda s: s.account("a"), "read failed"),
        (lambda s: s.count(), "read failed"),
        (lambda s: list(s.messages()), "read failed"),
        (lambda s: s.update_user("u", lambda _: None), "write failed"),
        (lambda s: s.update_account("a", lambda _: None), "write failed"),
        (lambda s: s.prune(at(1)), "prune failed"),
    ],
)
def test_an_unreachable_server_raises_store_unavailable(
    action: Callable[[RedisStore], object], text: str
) -> None:
    """A call that cannot reach Redis raises StoreUnavailableError naming the server only."""
    store = RedisStore.from_url(DOWN)
    with pytest.raises(StoreUnavailableError, match=f"redis://127.0.0.1:1/0: {text}"):
        action(store)
    assert not store.available
    store.close()


@pytest.mark.parametrize(
    ("action", "text"),
    [
        (lambda s: s.user("u"), "read failed"),
        (lambda s: s.update_user("u", lambda _: None), "write failed"),
        (lambda s: s.maintain([Aggregate("count", "x")]), "rebuild failed"),
        (lambda s: s.prune(at(1)), "prune failed"),
        (lambda s: record(s, Track(user_id="u", event="x", timestamp=at(1))), "write failed"),
    ],
)
def test_redis_errors_other_than_unreachable_are_store_errors(
    store: RedisStore, action: Callable[[RedisStore], object], text: str
) -> None:
    """A server that answers with an error (here: a key of the wrong type) is a fault, not an
    outage: StoreError, and the store stays available."""
    for key in (store._user_key("u"), store._registry, store._log):
        store.client.set(key, "not a hash")
    with pytest.raises(pqlsdk.StoreError, match=text) as caught:
        action(store)
    assert not isinstance(caught.value, StoreUnavailableError)
    assert store.available


def test_a_client_on_an_unreachable_server_counts_instead_of_raising() -> None:
    """The host's calls return; messages wait in the buffer; faults are counted, not logged
    per call."""
    client = pqlsdk.Client(store=DOWN, delivery=pqlsdk.Delivery(durability="sync"))
    client.track("u", "x")
    assert client.user("u") is None
    stats = client.stats()
    assert (stats.recorded, dict(stats.dropped)) == (0, {})
    assert stats.errors == {"store_outages": 1, "store_unavailable": 2, "store_buffered": 1}
    client.close()


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_a_missing_test_server_skips_except_under_ci(ci: str, outcome: str) -> None:
    """Without a server these tests skip with the reason; under CI=true the run fails."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"{__file__}::test_prefixes_keep_apps_apart",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
        ],
        capture_output=True,
        text=True,
        env=untraced_env(PQLSDK_TEST_REDIS_URL=DOWN, CI=ci),
        check=False,
    )
    assert outcome in result.stdout, result.stdout
    assert "no Redis server at redis://127.0.0.1:1/0" in result.stdout


def test_a_server_that_lost_its_scripts_gets_them_again(store: RedisStore) -> None:
    """After a restart (or SCRIPT FLUSH) the store loads its scripts again and carries on."""
    record(store, Group(user_id="u", group_id="acme", timestamp=at(1)))
    store.client.script_flush()
    record(store, Track(user_id="u", event="x", timestamp=at(2)))
    store.client.script_flush()
    assert store.update_user("u", lambda state: state.tracks) == 1
    acme = store.account("acme")
    assert acme is not None
    assert (acme.active_members, store.count()) == (1, 2)


def test_a_users_message_ids_expire_when_retention_would_forget_them(store: RedisStore) -> None:
    """After a prune, the messageId set lives until its newest id is past retention."""
    now = datetime.now(UTC)
    ids_key = store._user_key("u", ":ids")
    record(store, Track(user_id="u", event="x", timestamp=now - timedelta(minutes=50)))
    assert store.client.pttl(ids_key) == -1  # no prune yet: no retention known
    store.prune(now - timedelta(hours=1))
    record(store, Track(user_id="u", event="x", timestamp=now - timedelta(minutes=30)))
    minute = 60_000
    assert 29 * minute < store.client.pttl(ids_key) <= 30 * minute
    record(store, Track(user_id="u", event="x", timestamp=now - timedelta(minutes=40)))
    assert 29 * minute < store.client.pttl(ids_key) <= 30 * minute  # the newest id decides
    record(store, Track(user_id="v", event="x", timestamp=now - timedelta(hours=2)))
    assert store.client.exists(store._user_key("v", ":ids")) == 0  # already past retention
