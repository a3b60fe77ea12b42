"""The Client facade: never raises into the host by default, raises in strict mode."""

from __future__ import annotations

import inspect
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import pqlsdk
from pqlsdk._options import Options
from pqlsdk.messages import Track

NAIVE = datetime(2026, 3, 15, 12)

# Each bad call, the error a strict client raises, and the drop reason counted otherwise.
BAD_CALLS: list[tuple[str, Callable[[pqlsdk.Client], None], type[Exception], str]] = [
    (
        "naive timestamp",
        lambda c: c.track("u", "e", timestamp=NAIVE),
        pqlsdk.NaiveTimestampError,
        "naive_timestamp",
    ),
    ("no identity", lambda c: c.track(None, "e"), pqlsdk.MissingIdentityError, "missing_identity"),
    (
        "non-JSON property",
        lambda c: c.track("u", "e", {"when": object()}),
        pqlsdk.NotJSONError,
        "not_json",
    ),
    (
        "non-mapping traits",
        lambda c: c.identify("u", ["plan"]),  # type: ignore[arg-type]
        pqlsdk.NotJSONError,
        "not_json",
    ),
    (
        "oversized",
        lambda c: c.identify("u", {"bio": "x" * 40_000}),
        pqlsdk.MessageTooLargeError,
        "too_large",
    ),
    (
        "oversized track",
        lambda c: c.track("u", "e", {"bio": "x" * 40_000}),
        pqlsdk.MessageTooLargeError,
        "too_large",
    ),
    ("empty event", lambda c: c.track("u", ""), pqlsdk.InvalidMessageError, "invalid"),
    ("no group id", lambda c: c.group("u", ""), pqlsdk.InvalidIdError, "invalid_id"),
]


@pytest.mark.parametrize(
    ("call", "error", "reason"), [b[1:] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS]
)
def test_strict_client_raises_the_documented_error(
    call: Callable[[pqlsdk.Client], None], error: type[Exception], reason: str
) -> None:
    """In strict mode each bad input raises its own pqlsdk error."""
    with pqlsdk.Client(store="memory://", strict=True) as client, pytest.raises(error):
        call(client)


@pytest.mark.parametrize(
    ("call", "error", "reason"), [b[1:] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS]
)
def test_default_client_counts_a_drop_and_returns(
    call: Callable[[pqlsdk.Client], None],
    error: type[Exception],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """By default the host's call returns; the drop is counted by reason and logged."""
    with pqlsdk.Client(store="memory://") as client:
        call(client)
        call(client)
        stats = client.stats()
    assert (stats.recorded, dict(stats.dropped), stats.dropped_total) == (0, {reason: 2}, 2)
    logged = [r for r in caplog.records if r.name == "pqlsdk"]
    # The first of a reason is logged at once; the repeat is held back (a minute at
    # most) and reported by close().
    assert [r.getMessage().split(":")[0] for r in logged] == [
        f"dropped 1 message(s) [{reason}, 1 so far]",
        f"dropped 1 message(s) [{reason}, 2 so far]",
    ]
    assert {r.levelno for r in logged} == {logging.WARNING}


def test_repeated_drops_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of bad events logs its first drop, then the count (here: at close), not each."""
    with pqlsdk.Client(store="memory://") as client:
        for _ in range(2500):
            client.track(None, "e")
    logged = [r.getMessage() for r in caplog.records if r.name == "pqlsdk"]
    assert [line.split(" [")[0] for line in logged] == [
        "dropped 1 message(s)",
        "dropped 2499 message(s)",
    ]


def test_logs_never_contain_traits_or_properties(caplog: pytest.LogCaptureFixture) -> None:
    """Drops are logged with where the problem is, never the user's values."""
    with pqlsdk.Client(store="memory://") as client:
        client.identify("u", {"email": "alice@example.com", "bad": {"alice-secret"}})
    assert caplog.records
    assert "alice" not in caplog.text


def test_default_timestamp_comes_from_the_clock(clock: pqlsdk.FixedClock) -> None:
    """Every "now" goes through the injected clock."""
    with pqlsdk.Client(store="memory://", clock=clock, strict=True) as client:
        client.track("u", "e")
        clock.advance(timedelta(days=2))
        client.track("u", "e")
        user = client.user("u")
    assert user is not None
    assert (user.first_seen_at, user.last_active_at) == (
        datetime(2026, 3, 15, 12, tzinfo=UTC),
        datetime(2026, 3, 17, 12, tzinfo=UTC),
    )


def test_calls_record_segment_messages(clock: pqlsdk.FixedClock) -> None:
    """identify, group and track record the Segment messages their arguments describe."""
    with pqlsdk.Client(store="memory://", clock=clock, strict=True) as client:
        client.identify("u", MappingProxyType({"plan": "trial"}), context={"ip": "203.0.113.9"})
        client.group("u", "acme", {"employees": 5, "arr": 1.5e6}, message_id="g-1")
        client.track(None, "page_viewed", {"path": "/pricing"}, anonymous_id="anon")
        logged = list(client.store.messages())
    assert [type(m).__name__ for m in logged] == ["Identify", "Group", "Track"]
    assert logged[0].context == {"ip": "203.0.113.9"}
    assert logged[1].message_id == "g-1"
    assert logged[2] == Track(
        anonymous_id="anon",
        event="page_viewed",
        properties={"path": "/pricing"},
        timestamp=clock.now(),
        message_id=logged[2].message_id,
    )


def test_ingest_records_segment_dicts_and_counts_bad_ones(clock: pqlsdk.FixedClock) -> None:
    """Already-formed messages are checked like calls and written together."""
    good: dict[str, Any] = {
        "type": "track",
        "userId": "u",
        "event": "e",
        "timestamp": "2026-03-15T12:00:00Z",
    }
    bad: dict[str, Any] = {"type": "track", "event": "e", "timestamp": "2026-03-15T12:00:00Z"}
    struct = Track(user_id="v", event="e", timestamp=clock.now())
    with pqlsdk.Client(store="memory://", clock=clock) as client:
        assert client.ingest([good, bad, struct]) == 2
        assert client.ingest([bad]) == 0
        assert dict(client.stats().dropped) == {"missing_identity": 2}


def test_closed_client_counts_calls_as_dropped() -> None:
    """After close(), calls return and are counted; strict clients raise ClosedError."""
    client = pqlsdk.Client(store="memory://")
    client.close()
    client.close()  # idempotent
    client.track("u", "e")
    assert dict(client.stats().dropped) == {"closed": 1}
    strict = pqlsdk.Client(store="memory://", strict=True)
    strict.close()
    with pytest.raises(pqlsdk.ClosedError):
        strict.track("u", "e")


def test_store_write_failures_are_counted_not_raised(tmp_path: Path) -> None:
    """A store fault on the request path is a counted drop; reads return None."""
    client = pqlsdk.Client(store=f"sqlite:///{tmp_path}/s.db")
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.executescript("DROP TABLE messages; DROP TABLE users; DROP TABLE accounts;")
    conn.close()
    client.track("u", "e")
    assert client.user("u") is None
    assert client.account("a") is None
    stats = client.stats()
    assert (dict(stats.dropped), dict(stats.errors)) == ({"store_error": 1}, {"store_error": 2})
    client.close()


def test_strict_client_raises_store_faults(tmp_path: Path) -> None:
    """Tests see store faults as exceptions."""
    client = pqlsdk.Client(store=f"sqlite:///{tmp_path}/s.db", strict=True)
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.executescript("DROP TABLE users;")
    conn.close()
    with pytest.raises(pqlsdk.StoreError):
        client.user("u")
    client.close()


def test_retention_prunes_the_log_at_most_hourly(clock: pqlsdk.FixedClock) -> None:
    """Messages older than retention leave the log; state keeps what it learned."""
    store = pqlsdk.stores.MemoryStore()
    with pqlsdk.Client(store=store, clock=clock, retention=timedelta(days=1)) as client:
        client.track("u", "old", timestamp=clock.now() - timedelta(days=3))
        assert client.store.count() == 1  # the first prune ran at construction
        clock.advance(timedelta(minutes=30))
        client.track("u", "recent")
        assert client.store.count() == 2  # not yet an hour since the last prune
        clock.advance(timedelta(hours=1))
        client.track("u", "now")
        assert client.store is store  # the client's view applies what it accepted first
        assert [m.event for m in store.messages()] == ["recent", "now"]  # type: ignore[union-attr]
        user = client.user("u")
        assert user is not None
        assert user.tracks == 3


def test_retention_none_keeps_everything(clock: pqlsdk.FixedClock) -> None:
    """With retention=None nothing is ever pruned."""
    with pqlsdk.Client(store="memory://", clock=clock, retention=None) as client:
        client.track("u", "ancient", timestamp=datetime(2000, 1, 1, tzinfo=UTC))
        clock.advance(timedelta(days=3650))
        client.track("u", "e")
        assert client.store.count() == 2


def test_prune_faults_are_counted(tmp_path: Path, clock: pqlsdk.FixedClock) -> None:
    """A failing prune is an error count, not a drop and not an exception."""
    client = pqlsdk.Client(store=f"sqlite:///{tmp_path}/s.db", clock=clock)
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.executescript("DROP TABLE messages;")
    conn.close()
    clock.advance(timedelta(hours=2))
    client._recorder._prune(0)  # the hourly prune, now
    assert dict(client.stats().errors) == {"store_error": 1}
    client.close()


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"store": 42}, "store must be a URL or a Store, got int"),
        ({"store": "mongodb://x"}, "unknown scheme"),
        ({"retention": timedelta(0)}, "retention must be positive"),
        ({"clock": "now"}, "clock must have a now"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], text: str) -> None:
    """Setup mistakes raise ConfigError (a ValueError) at once, even by default."""
    with pytest.raises(pqlsdk.ConfigError, match=text):
        pqlsdk.Client(**options)


def test_client_options_have_one_set_of_defaults() -> None:
    """Client(...) and Options.read(...), which framework settings call too, take the same keywords
    with the same defaults: a default changed in one place cannot drift from the other.
    """

    def defaults(call: Callable[..., Any]) -> dict[str, Any]:
        return {n: p.default for n, p in inspect.signature(call).parameters.items()}

    assert defaults(Options.read) == defaults(pqlsdk.Client)


def test_default_store_is_sqlite_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no store given, the embedded SQLite default is used."""
    monkeypatch.chdir(tmp_path)
    with pqlsdk.Client() as client:
        client.track("u", "e")
        assert repr(client) == "Client(store='sqlite:///pqlsdk.db', strict=False)"
        assert isinstance(client.clock, pqlsdk.SystemClock)
    assert (tmp_path / "pqlsdk.db").exists()


def test_fixed_clock_refuses_naive_instants() -> None:
    """A FixedClock is set from aware instants or ISO strings with a zone."""
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    clock.set("2026-03-16T13:00:00+01:00")
    assert clock.now() == datetime(2026, 3, 16, 12, tzinfo=UTC)
    assert repr(clock) == "FixedClock('2026-03-16T12:00:00+00:00')"
    with pytest.raises(pqlsdk.ConfigError, match="naive"):
        pqlsdk.FixedClock(datetime(2026, 1, 1))


def test_system_clock_is_utc() -> None:
    """The default clock reads the wall clock in UTC."""
    now = pqlsdk.SystemClock().now()
    assert now.tzinfo == UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    assert repr(pqlsdk.SystemClock()) == "SystemClock()"


def test_track_reads_the_clock_as_identify_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's clock is asked at each call, by track() as by identify().

    A host's test that sets the clock's ``now`` once the client exists sees every
    message stamped with it, the usual track() call's too.
    """
    at = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pqlsdk.Client(store="memory://", strict=True) as client:
        monkeypatch.setattr(client.clock, "now", lambda: at)
        client.identify("u", {"plan": "trial"})
        client.track("u", "e")
        state = client.user("u")
    assert state is not None
    assert (state.first_seen_at, state.last_active_at) == (at, at)


@pytest.mark.parametrize("call", ["identify", "group"])
def test_traits_that_are_not_a_mapping_are_dropped_and_counted(call: str) -> None:
    """identify() and group() refuse non-mapping traits at the call, like track() properties."""
    with pqlsdk.Client(store="memory://") as client:
        if call == "identify":
            client.identify("u", ["not", "a", "mapping"])  # type: ignore[arg-type]
        else:
            client.group("u", "acme", ["not", "a", "mapping"])  # type: ignore[arg-type]
        stats = client.stats()
    assert (stats.recorded, stats.dropped_total) == (0, 1)


def test_ingest_after_close_is_counted_as_closed() -> None:
    """Messages handed to a closed client are dropped with reason "closed"."""
    client = pqlsdk.Client(store="memory://")
    client.close()
    added = client.ingest(
        [{"type": "track", "userId": "u", "event": "e", "timestamp": "2026-03-15T11:00:00Z"}]
    )
    assert (added, dict(client.stats().dropped)) == (0, {"closed": 1})


def test_mapping_subclasses_are_accepted_as_payloads() -> None:
    """An OrderedDict (a dict subclass) is as good as a dict for properties and context."""
    with pqlsdk.Client(store="memory://", strict=True) as client:
        client.track("u", "e", OrderedDict(plan="trial"), context=OrderedDict(ip="-"))
        assert client.stats().recorded == 1
