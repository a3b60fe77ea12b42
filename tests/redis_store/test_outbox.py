"""The Redis store's outbox: shared by every host, leased, delivered once to a real collector."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

import pqlsdk
from pqlsdk._retry import RetryPolicy
from pqlsdk.messages import Track, check
from pqlsdk.stores._base import StoreUnavailableError
from pqlsdk.stores.redis import RedisStore
from pqlsdk.stores.redis._outbox import RedisOutbox

from ..conftest import ROOT
from ..delivery.collector import Collector
from ..processes import untraced_env
from .conftest import Server, when_a_writer_has_done

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FAST = pqlsdk.Delivery(
    flush_at=20, flush_interval=0.05, lease=1.0, retry=RetryPolicy(base=0.05, cap=0.2, budget=0.5)
)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as started:
        yield started


def client_for(store: str, collector: Collector, **options: object) -> pqlsdk.Client:
    return pqlsdk.Client(
        store=store,
        endpoint=collector.url,
        write_key=collector.write_key,
        delivery=options.pop("delivery", FAST),
        **options,  # type: ignore[arg-type]
    )


def ticks(collector: Collector) -> list[str]:
    """The messageIds of the ``tick`` events the collector accepted, duplicates included."""
    return [m["messageId"] for m in collector.messages if m.get("event") == "tick"]


def track(n: int, user: str = "u") -> tuple[pqlsdk.messages.Message, bytes]:
    return check(Track(user_id=user, event="tick", timestamp=T0, message_id=f"m{n}"))


HOST = """
    import sys, pqlsdk
    from pqlsdk._retry import RetryPolicy
    url, endpoint, key, name, count = sys.argv[1:6]
    delivery = pqlsdk.Delivery(flush_at=20, flush_interval=0.01, lease=5.0)
    client = pqlsdk.Client(store=url, endpoint=endpoint, write_key=key, delivery=delivery)
    for i in range(int(count)):
        client.track(f"u{i % 7}", "tick", {"host": name, "i": i}, message_id=f"{name}-{i}")
    client.close(timeout=30)
"""


def test_two_hosts_sharing_a_prefix_deliver_every_message_once(
    redis_store_url: str, collector: Collector
) -> None:
    """Two processes track overlapping users and send from one outbox: each message once."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(HOST),
                redis_store_url,
                collector.url,
                collector.write_key,
                name,
                "500",
            ],
            cwd=ROOT,
            env=untraced_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    sent = ticks(collector)
    assert sorted(sent) == sorted(f"{name}-{i}" for name in "ab" for i in range(500))
    # Each host's close() waited for the shared outbox; its last count may include a
    # message the other host queued just after: only the end state is exact.
    store = RedisStore.from_url(redis_store_url)
    assert store.outbox_size() == 0
    store.close()


KILLED = """
    import sys, time, pqlsdk
    url, endpoint, key = sys.argv[1:4]
    delivery = pqlsdk.Delivery(flush_at=10, flush_interval=60, lease=3.0)
    client = pqlsdk.Client(
        store=url, endpoint=endpoint, write_key=key, delivery=delivery, strict=True
    )
    for i in range(10):  # the tenth wakes the sender: one batch of ten
        client.track("u", "tick", message_id=f"k{i}")
    print("sending", flush=True)
    time.sleep(3600)
"""


def test_a_killed_hosts_leased_batch_is_delivered_by_another_after_the_lease(
    redis_store_url: str, collector: Collector
) -> None:
    """A host dies holding a lease: another host sends the batch once the lease ends."""
    collector.set_delay(30)  # the first host's send hangs, its lease held
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED),
            redis_store_url,
            collector.url,
            collector.write_key,
        ],
        cwd=ROOT,
        env=untraced_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sending"
    other = RedisStore.from_url(redis_store_url)
    deadline = time.monotonic() + 10
    while other.client.zcard(f"{other.prefix}:{{log}}:outbox:leased") < 10:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # The request must reach the collector before the kill, or its handler may
    # read it only after set_delay(0) below and accept it: a second delivery.
    while collector.requests < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    other.close()
    collector.set_delay(0)
    with client_for(redis_store_url, collector) as host:
        early = host.flush(timeout=0.3)  # the dead host's lease has not ended yet
        assert (early.delivered, early.pending) == (0, 10)
        late = host.flush(timeout=5)
    assert (late.delivered, late.pending) == (10, 0)
    assert sorted(ticks(collector)) == [f"k{i}" for i in range(10)]


def test_leases_keep_hosts_apart_and_end(store: RedisStore) -> None:
    """Two senders never hold one entry at once; an ended lease frees its entries."""
    store.record([track(n) for n in range(5)], outbox=True)
    first = store.lease(3, 10**6, 0.2)
    second = store.lease(10, 10**6, 0.2)
    assert list(first.keys) == [1, 2, 3]
    assert list(second.keys) == [4, 5]
    assert store.lease(10, 10**6, 0.2).keys == ()
    time.sleep(0.25)
    again = store.lease(10, 10**6, 5)
    assert list(again.keys) == [1, 2, 3, 4, 5]  # oldest first, as queued
    store.release(first.until, [1, 2, 3])  # the first lease ended: it frees nothing
    assert store.lease(10, 10**6, 5).keys == ()
    store.release(again.until, [1, 2])
    assert list(store.lease(10, 10**6, 5).keys) == [1, 2]
    store.ack([1, 2, 3, 4, 5])
    assert store.outbox_size() == 0


def test_a_lease_stops_at_max_bytes_but_takes_at_least_one(store: RedisStore) -> None:
    store.enqueue([b"x" * 100, b"y" * 100, b"z"])
    assert list(store.lease(10, 50, 1).messages) == [b"x" * 100]
    assert list(store.lease(10, 150, 1).messages) == [b"y" * 100, b"z"]
    store.enqueue([])
    assert store.outbox_size() == 3


def test_a_message_is_queued_once_however_often_it_is_logged(store: RedisStore) -> None:
    """Step 3 run again (another writer logged the same work first) or a replayed message
    queues nothing."""
    other = RedisStore(store.client, prefix=store.prefix)  # another process's writer

    def another_writer_drains_first() -> None:
        assert other.record([track(2)], outbox=True) == 1  # logs m1, which it found pending, too

    with when_a_writer_has_done("accounts", another_writer_drains_first):
        assert store.record([track(1)], outbox=True) == 1
    assert store.record([track(1)], outbox=True) == 0
    assert (store.count(), store.outbox_size()) == (2, 2)
    other.close()


def test_only_a_delivering_clients_messages_are_queued(store: RedisStore) -> None:
    store.record([track(1)])
    store.record([track(2)], outbox=True)
    assert list(store.lease(10, 10**6, 1).messages) == [track(2)[1]]


def test_outbox_size_is_every_hosts_and_shows_in_flush(
    make_url: Callable[[], str], collector: Collector
) -> None:
    """What waits is counted across hosts: in ``flush().pending`` and ``outbox_size()``."""
    url = make_url()
    collector.stop()
    with client_for(url, collector, strict=True) as host:
        for n in range(5):
            host.track("u", "tick", message_id=f"m{n}")
        assert host.flush(timeout=0).pending == 5
        other = RedisStore.from_url(url)
        assert other.outbox_size() == 5
        other.close()
        collector.start()
        assert host.flush(timeout=5) == pqlsdk.FlushResult(5, 0)
    assert sorted(ticks(collector)) == [f"m{n}" for n in range(5)]


def test_pqlsdks_own_records_are_queued_without_logging(
    redis_store_url: str, collector: Collector
) -> None:
    """A moment's outcome goes to the collector from the outbox; the log keeps the user's."""
    with client_for(redis_store_url, collector, strict=True) as host:
        host.track("u", "tick", message_id="m1")
        host._recorder.emit(Track(user_id="u", event="pqlsdk_own", timestamp=T0, message_id="own"))
        assert host.flush(timeout=5).pending == 0
        assert host.store.count() == 1
    assert sorted(m["messageId"] for m in collector.messages) == ["m1", "own"]


def test_messages_buffered_in_an_outage_are_sent_once_after_the_replay(
    server: Server, collector: Collector
) -> None:
    """During an outage nothing is sent (no second path); the replay queues and wakes the sender."""
    url = server.url(timeout=0.2, probe_interval=0.05)
    with client_for(url, collector, strict=True) as host:
        host.track("u", "tick", message_id="before")
        assert host.flush(timeout=5).pending == 0
        server.stop()
        for n in range(5):
            host.track("u", "tick", message_id=f"during{n}")
        waiting = host.flush(timeout=0.2)  # never raises; the buffer counts as pending
        assert (waiting.delivered, waiting.pending) == (0, 5)
        assert ticks(collector) == ["before"]
        server.start()
        time.sleep(0.1)
        host.user("u")  # a read probes, replays, and the sender is woken
        deadline = time.monotonic() + 5
        while len(ticks(collector)) < 6:
            assert time.monotonic() < deadline, ticks(collector)
            time.sleep(0.01)
        assert host.flush(timeout=5).pending == 0
    assert sorted(ticks(collector)) == ["before", *(f"during{n}" for n in range(5))]


def test_the_outbox_never_raises_while_redis_is_away(server: Server) -> None:
    """Take nothing, keep the last size, let leases end; only put (pqlsdk's records) raises."""
    store = RedisStore.from_url(server.url(timeout=0.2, probe_interval=60))
    outbox = RedisOutbox(store, lease=1)
    outbox.put([("m1", b"{}"), ("m2", b"{}")])
    leased = outbox.take(1, 10**6)
    assert leased is not None
    assert outbox.pending() == 2
    server.stop()
    assert outbox.take(10, 10**6) is None
    outbox.ack(leased)
    outbox.release(leased)
    store.record([track(1)], outbox=True)  # waits in the local buffer
    assert outbox.pending() == 3  # 2 as last read, 1 buffered
    with pytest.raises(StoreUnavailableError):
        outbox.put([("m3", b"{}")])
    outbox.forget_inherited()
    store.close()


def test_a_closed_stores_outbox_takes_nothing(redis_store_url: str) -> None:
    """The sender racing with close() gets nothing, not a connection opened again."""
    store = RedisStore.from_url(redis_store_url)
    outbox = RedisOutbox(store, lease=1)
    outbox.put([("m1", b"{}")])
    store.close()
    assert (outbox.take(10, 10**6), outbox.pending()) == (None, 0)
    opened = RedisStore.from_url(redis_store_url)
    assert opened.outbox_size() == 1
    opened.close()


def test_a_redis_lease_is_the_lease_every_outbox_hands_the_sender(redis_store_url: str) -> None:
    """One name for a lease: the store's public ``Lease`` is the sender's, with its end."""
    from pqlsdk.stores import _outbox  # noqa: PLC0415 - the private home of the one lease
    from pqlsdk.stores.redis import Lease  # noqa: PLC0415

    store = RedisStore.from_url(redis_store_url)
    store.enqueue([b"{}"])
    lease = RedisOutbox(store, lease=1).take(10, 10**6)
    store.close()
    assert Lease is _outbox.Lease
    assert isinstance(lease, Lease)
    assert (lease.messages, lease.until > 0) == ((b"{}",), True)
