"""Redis away or slow: the host never raises, gates fall back, messages wait and replay.

The server here is the test's own (``server``: stopped and started again at will),
except where the shared test server is enough.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest

import pqlsdk
from pqlsdk._aggregates import Aggregate, aggregate_value
from pqlsdk.messages import Track, check
from pqlsdk.stores._base import StoreUnavailableError
from pqlsdk.stores.redis import DEFAULT_TIMEOUT, RedisStore

from .conftest import Server
from .workload import EVENTS, NOW, PLAYBOOK

USERS = [f"u{i}" for i in range(8)]
CLOCK = pqlsdk.FixedClock(NOW)


def messages(since: int, count: int) -> list[Track]:
    """``count`` tracks numbered from ``since``, spread over users, events and the last days."""
    out = []
    for n in range(since, since + count):
        event, properties = EVENTS[n % len(EVENTS)]
        out.append(
            Track(
                user_id=USERS[n % len(USERS)],
                event=event,
                properties=properties,
                timestamp=CLOCK.now() - timedelta(minutes=7 * n),
                message_id=f"m{n}",
            )
        )
    return out


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if text in record.getMessage()]


def test_redis_stopped_mid_run_loses_nothing_and_never_raises(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A client tracks and gates in a loop; Redis stops mid-run and starts again.

    The host never raised, gates answered the fallback (deny here) while Redis
    was away and the real answer otherwise, every buffered message reached
    Redis (aggregates equal to a run without the outage), and the outage was
    logged once at its start and once at its end.
    """
    caplog.set_level(logging.INFO, logger="pqlsdk")
    client = pqlsdk.Client(
        store=server.url(timeout=0.05, probe_interval=0.1),
        clock=CLOCK,
        rules=PLAYBOOK,
        retention=None,
        gate_fallback="deny",
    )
    for user in USERS:
        client.identify(user, {"plan": "trial"}, message_id=f"id-{user}")
    gates: dict[str, list[pqlsdk.Gate]] = {"before": [], "during": [], "after": []}
    sent: list[Track] = []

    def run(phase: str, count: int) -> None:
        for message in messages(len(sent), count):
            client.track(
                message.user_id,
                message.event,
                message.properties,
                timestamp=message.timestamp,
                message_id=message.message_id,
            )
            sent.append(message)
            gates[phase].append(client.gate(message.user_id or "", "reports"))

    run("before", 200)
    server.stop()
    run("during", 200)
    time.sleep(0.15)  # past the probe interval: the outage's calls are refused, not waited on
    run("during", 100)
    server.start()
    time.sleep(0.15)  # the next call probes, finds Redis and replays
    run("after", 200)
    stats = client.stats()
    client.close()

    assert [g.allowed for g in gates["before"] + gates["after"]] == [True] * 400
    assert {(g.allowed, g.reason) for g in gates["during"]} == {
        (False, "store unavailable: denied")
    }
    assert len(gates["during"]) == 300
    assert len(logged(caplog, "unreachable (")) == 1
    assert [r.getMessage().split(": ")[-1] for r in logged(caplog, "back after")] == [
        "replayed 300 buffered message(s)"
    ]
    assert (stats.recorded, dict(stats.dropped)) == (len(USERS) + 700, {})
    assert (stats.errors["store_outages"], stats.errors["store_buffered"]) == (1, 300)
    assert stats.errors["store_unavailable"] >= 300  # each gate's read, at least

    reference = pqlsdk.Client(store="memory://", clock=CLOCK, rules=PLAYBOOK, strict=True)
    for user in USERS:
        reference.identify(user, {"plan": "trial"}, message_id=f"id-{user}")
    reference.ingest(sent)
    shared = RedisStore.from_url(server.url())
    assert shared.count() == reference.store.count() == len(USERS) + 700
    for user_id in USERS:
        got, want = shared.user(user_id), reference.user(user_id)
        assert got is not None
        assert want is not None
        assert (got.tracks, got.aggregates, got.traits) == (
            want.tracks,
            want.aggregates,
            want.traits,
        )
    shared.close()
    reference.close()


def test_a_frozen_server_costs_one_call_one_timeout(server: Server) -> None:
    """A server that stops answering: the call that finds out waits one timeout, later
    calls are refused at once, and gates allow (the default fallback)."""
    client = pqlsdk.Client(
        store=server.url(timeout=0.05, probe_interval=60, cache_ttl=0),
        rules=PLAYBOOK,
        retention=None,
        delivery=pqlsdk.Delivery(durability="sync"),
    )
    client.identify("u", {"plan": "trial"})
    assert not client.gate("u", "sso").allowed  # the real answer, while Redis answers
    server.pause()
    timings = []
    for _ in range(3):
        started = time.monotonic()
        gate = client.gate("u", "sso")
        timings.append(time.monotonic() - started)
        assert (gate.allowed, gate.reason) == (True, "store unavailable: allowed")
    assert 0.04 < timings[0] < 0.5
    assert max(timings[1:]) < 0.01
    server.resume()
    client.close()


def test_a_client_built_while_redis_is_down_registers_its_rules_when_it_returns(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Building a client with rules needs no Redis; the registration waits for it, and
    the messages buffered meanwhile are folded into the rules' aggregates."""
    caplog.set_level(logging.INFO, logger="pqlsdk")
    server.stop()
    client = pqlsdk.Client(
        store=server.url(probe_interval=0.05), clock=CLOCK, rules=PLAYBOOK, retention=None
    )
    assert logged(caplog, "aggregates will be registered when it returns")
    client.identify("u0", {"plan": "trial"}, message_id="id-u0")
    for message in messages(0, 40):
        client.ingest([message])
    assert client.decide("u0") is None  # no moment without Redis
    server.start()
    time.sleep(0.06)
    reference = pqlsdk.Client(store="memory://", clock=CLOCK, rules=PLAYBOOK, strict=True)
    reference.identify("u0", {"plan": "trial"}, message_id="id-u0")
    reference.ingest(messages(0, 40))
    assert client.score("u0") == reference.score("u0")
    assert client.stats().recorded == 41
    client.close()
    reference.close()


def test_a_full_buffer_drops_and_counts_the_rest(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Past ``buffer`` messages, new ones are dropped, counted and warned about once."""
    client = pqlsdk.Client(
        store=server.url(buffer=3, probe_interval=0.05),
        retention=None,
        delivery=pqlsdk.Delivery(durability="sync"),
    )
    server.stop()
    for message in messages(0, 6):
        client.ingest([message])
    assert len(logged(caplog, "local buffer is full")) == 1
    server.start()
    time.sleep(0.06)
    assert client.store.count() == 3  # the oldest three, replayed
    stats = client.stats()
    assert (stats.recorded, dict(stats.dropped)) == (3, {"buffer_full": 3})
    client.close()


def test_close_replays_what_waits_if_redis_is_back(server: Server) -> None:
    """close() (and exit) replays the buffer at once, without waiting for a probe."""
    client = pqlsdk.Client(
        store=server.url(probe_interval=60),
        retention=None,
        delivery=pqlsdk.Delivery(durability="sync"),
    )
    server.stop()
    client.ingest(messages(0, 5))
    store = client.store
    assert isinstance(store, RedisStore)
    assert store.buffered == 5
    server.start()
    client.close()
    shared = RedisStore.from_url(server.url())
    assert shared.count() == 5
    shared.close()


def test_messages_lost_at_close_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A client closed while Redis is still away says how many buffered messages are lost."""
    client = pqlsdk.Client(
        store="redis://127.0.0.1:1/0", retention=None, delivery=pqlsdk.Delivery(durability="sync")
    )
    client.ingest(messages(0, 2))
    client.store.at_exit()  # type: ignore[attr-defined]
    assert logged(caplog, "still unreachable: 2 buffered message(s) lost")
    client.close()


def test_a_forked_child_starts_without_the_parents_outage() -> None:
    """After fork the child owns no buffer (the parent replays it) and tries Redis afresh."""
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    store.record([check(messages(0, 1)[0])])
    assert (store.available, store.buffered) == (False, 1)
    store.after_fork()
    assert (store.available, store.buffered) == (True, 0)
    store.close()


def test_a_registry_the_server_lost_is_registered_again(store: RedisStore) -> None:
    """A server that came back empty (no persistence, a failover) gets the aggregates again."""
    spec = Aggregate("count", "x")
    store.maintain([spec])
    store.client.delete(store._registry)
    store.record([check(Track(user_id="u", event="x", timestamp=CLOCK.now()))])
    assert store.client.hlen(store._registry) == 1
    user = store.user("u")
    assert user is not None
    assert aggregate_value(spec, user.aggregates[spec.key], 0) == 1


def test_url_options_set_timeouts_and_outage_settings() -> None:
    """timeout and connect_timeout reach redis-py (default 100 ms); redis-py's own win."""
    default = RedisStore.from_url("redis://127.0.0.1/0")
    kwargs = default.client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (DEFAULT_TIMEOUT,) * 2
    tuned = RedisStore.from_url(
        "redis://127.0.0.1/0?timeout=0.3&connect_timeout=1&buffer=0&cache_ttl=0&probe_interval=2"
    )
    kwargs = tuned.client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.3, 1.0)
    assert tuned.url.endswith(
        "?timeout=0.3&connect_timeout=1&buffer=0&cache_ttl=0&probe_interval=2"
    )
    explicit = RedisStore.from_url("redis://127.0.0.1/0?timeout=0.3&socket_timeout=2")
    assert explicit.client.connection_pool.connection_kwargs["socket_timeout"] == 2.0
    for store in (default, tuned, explicit):
        store.close()


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("timeout=0", "timeout='0': give a positive number of seconds"),
        ("timeout=soon", "timeout='soon': give a positive number of seconds"),
        ("probe_interval=inf", "probe_interval='inf'"),
        ("buffer=1.5", "buffer='1.5': give a non-negative whole number"),
        ("cache_ttl=-1", "cache_ttl='-1': give a non-negative number of seconds"),
        ("timeout=1&timeout=2", "give timeout= once"),
    ],
)
def test_bad_outage_options_are_config_errors(query: str, text: str) -> None:
    """A malformed option fails when the store is opened, naming it."""
    with pytest.raises(pqlsdk.ConfigError, match=text.replace("?", r"\?")):
        RedisStore.from_url(f"redis://127.0.0.1/0?{query}")


def test_gate_fallback_must_be_allow_or_deny() -> None:
    """A misspelt fallback fails when the client is built."""
    with pytest.raises(pqlsdk.ConfigError, match='gate_fallback must be "allow" or "deny"'):
        pqlsdk.Client(store="memory://", gate_fallback="block")  # type: ignore[arg-type]


def test_stats_of_a_store_without_outages_are_the_clients_own() -> None:
    """Stores that count no faults of their own (memory, SQLite) add nothing to stats()."""
    client = pqlsdk.Client(store="memory://")
    client.track("u", "x")
    stats = client.stats()
    assert (stats.recorded, dict(stats.dropped), dict(stats.errors)) == (1, {}, {})
    client.close()


def test_concurrent_calls_never_wait_for_each_other(server: Server) -> None:
    """Threads meeting a frozen server: each waits one timeout at most, the outage begins
    once, and a thread arriving while another probes is answered at once."""
    store = RedisStore.from_url(server.url(timeout=0.1, probe_interval=0.2, cache_ttl=0))
    assert store.user("u") is None
    server.pause()
    barrier = threading.Barrier(2)
    failures: list[Exception] = []

    def read() -> None:
        barrier.wait()
        try:
            store.user("u")
        except pqlsdk.StoreError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 2
    time.sleep(0.25)  # a probe is due: one thread probes (and waits), the other does not
    prober = threading.Thread(target=read)
    barrier = threading.Barrier(1)
    prober.start()
    time.sleep(0.03)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="refused"):
        store.user("u")
    assert time.monotonic() - started < 0.02
    prober.join()
    counts = store.fault_counts()
    assert counts.errors["store_outages"] == 1
    server.resume()
    store.close()


def test_buffered_messages_the_store_refuses_are_dropped_not_retried_forever(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A replayed message Redis refuses (not an outage: an error reply) is dropped and counted,
    and the outage ends."""
    store = RedisStore.from_url(server.url(probe_interval=0.05))
    server.stop()
    store.record([check(message) for message in messages(0, 2)])
    server.start()
    RedisStore.from_url(server.url()).client.set(store._user_key("u0"), "not a hash")
    time.sleep(0.06)
    assert store.user("u1") is not None  # the probe replays; u1's message lands
    counts = store.fault_counts()
    assert (counts.recorded, counts.dropped) == (1, {"store_error": 1})
    assert len(logged(caplog, "a buffered message was dropped")) == 1
    store.close()


def test_a_probe_that_fails_keeps_the_outage(server: Server) -> None:
    """Redis still away at the probe: the call is refused and the next probe is later."""
    store = RedisStore.from_url(server.url(probe_interval=0.05))
    server.stop()
    with pytest.raises(StoreUnavailableError, match="failed"):
        store.user("u")
    time.sleep(0.06)
    with pytest.raises(StoreUnavailableError, match="refused"):
        store.user("u")
    assert store.fault_counts().errors == {"store_outages": 1, "store_unavailable": 2}
    store.at_exit()  # nothing buffered: nothing to say
    store.close()
