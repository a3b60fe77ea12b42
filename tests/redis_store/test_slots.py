"""Scripts and hash slots: on Redis Cluster no script spans two; elsewhere one takes a chunk.

A cluster node refuses a script whose keys are in two slots, so the store asks
the server whether it runs Redis Cluster before its first write, and groups a
chunk's users and accounts by slot only then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pqlsdk.messages import Group, Track, encode
from pqlsdk.stores import Record
from pqlsdk.stores.redis import RedisStore

from .conftest import Server

AT = datetime(2026, 3, 15, 12, tzinfo=UTC)


def records(messages: list[Any]) -> list[Record]:
    """The store's records of ``messages``."""
    return [(message, encode(message)) for message in messages]


def write_a_chunk(store: RedisStore) -> tuple[int, int, int]:
    """Write 40 users in 5 accounts, then a chunk of 3 tracks each: (new, logged, active in a0)."""
    users = [f"u{i}" for i in range(40)]
    store.record(
        records(
            [
                Group(user_id=u, group_id=f"a{i % 5}", timestamp=AT, message_id=f"g-{u}")
                for i, u in enumerate(users)
            ]
        )
    )
    added = store.record(
        records(
            [
                Track(user_id=u, event="page_viewed", timestamp=AT, message_id=f"t-{u}-{k}")
                for k in range(3)
                for u in users
            ]
        )
    )
    account = store.account("a0")
    assert account is not None
    return added, store.count(), account.active_members


def test_on_redis_cluster_no_script_spans_two_slots(cluster: Server) -> None:
    """A guard: on a cluster node (which refuses such scripts) a chunk of many users writes."""
    store = RedisStore.from_url(cluster.url(prefix="p", timeout=5))
    assert write_a_chunk(store) == (120, 160, 8)
    store.close()


def test_a_server_that_keeps_info_to_itself_is_taken_for_a_cluster(
    server_without_info: Server,
) -> None:
    """Without an answer to INFO the store keeps to one slot per script, and writes as well."""
    store = RedisStore.from_url(server_without_info.url(prefix="p", timeout=5))
    assert write_a_chunk(store) == (120, 160, 8)
    assert store._server.cluster
    store.close()
