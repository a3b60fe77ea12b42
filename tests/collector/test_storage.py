"""Collector storage: the same behaviour from SQLite and PostgreSQL, and each one's faults."""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from pqlsdk import ConfigError, InvalidMessageError, SchemaVersionError, StoreError, messages
from pqlsdk.collector import Lead, Storage, StoreResult, open_storage
from pqlsdk.collector._schema import SCHEMA_VERSION
from pqlsdk.collector._sqlite import SQLiteStorage

from .conftest import T0, block, crossing, track


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    """Open storage on each backend; closed after the test."""
    with open_storage(storage_url) as opened:
        yield opened


def execute(storage_url: str, statement: str) -> None:
    """Run ``statement`` on the database behind ``storage_url`` from outside the storage."""
    if storage_url.startswith("sqlite:///"):
        conn = sqlite3.connect(storage_url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(statement)
        conn.close()
    else:
        with psycopg.connect(storage_url, autocommit=True) as pg:
            pg.execute(statement.encode())


# Schema and migrations -----------------------------------------------------


def test_opening_creates_the_schema_and_reopening_changes_nothing(storage_url: str) -> None:
    """The first open migrates to the current version; later opens find it done."""
    with open_storage(storage_url) as first:
        assert first.schema_version() == SCHEMA_VERSION
        first.store([track("a")])
    with open_storage(storage_url) as second:
        assert (second.schema_version(), second.count()) == (SCHEMA_VERSION, 1)


def test_a_newer_schema_is_refused(storage_url: str) -> None:
    """A database migrated by a newer pqlsdk is not read by this one."""
    open_storage(storage_url).close()
    execute(storage_url, "UPDATE schema_version SET version = version + 1")
    with pytest.raises(SchemaVersionError, match="upgrade pqlsdk"):
        open_storage(storage_url)


def test_the_same_tables_exist_on_both_backends(storage: Storage) -> None:
    """Both backends answer the same empty queries on a fresh schema."""
    assert (storage.count(), storage.leads(), storage.lead("user", "a")) == (0, [], None)


# Storing -----------------------------------------------------------------------


def test_storing_is_idempotent_by_message_id(storage: Storage) -> None:
    """A message stored before is a duplicate, including twice within one batch."""
    a, b = track("a"), track("b")
    first = storage.store([a, b, a])
    assert first == StoreResult(new_ids=(a.message_id, b.message_id), duplicates=(a.message_id,))
    second = storage.store([b, track("c", message_id="c-1")])
    assert second == StoreResult(new_ids=("c-1",), duplicates=(b.message_id,))
    assert storage.count() == 3


def test_an_empty_batch_stores_nothing(storage: Storage) -> None:
    """Storing no messages is a no-op."""
    assert storage.store([]) == StoreResult(new_ids=(), duplicates=())


def test_a_batch_with_an_unstorable_message_stores_nothing(storage: Storage) -> None:
    """store() checks every message before it writes: a batch is one transaction."""
    broken = crossing("a", "hot", subject="team")
    with pytest.raises(
        InvalidMessageError, match=r"Invalid enum value 'team' - at `properties.subject`"
    ):
        storage.store([track("ok"), broken])
    assert storage.count() == 0


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (track("a\x00"), "track userId contains a NUL character"),
        (crossing("a", "hot", model="m\x00"), "track properties.model contains a NUL character"),
        (
            crossing("a", None),  # type: ignore[arg-type]
            "pqlsdk_tier_changed message: Expected `str`, got `null` - at `properties.tier`",
        ),
    ],
    ids=["nul-user", "nul-model", "null-tier"],
)
def test_unstorable_messages_are_named_by_field(
    storage: Storage, message: messages.Message, error: str
) -> None:
    """Storage refuses what one of its databases could not hold, naming the field."""
    with pytest.raises(InvalidMessageError) as caught:
        storage.store([message])
    assert str(caught.value) == error


def test_a_crossing_needs_its_key_properties(storage: Storage) -> None:
    """A crossing without a required property is refused with that property's name."""
    message = crossing("a", "hot")
    properties = dict(message.properties)
    del properties["model"]
    broken = messages.Track(user_id="a", event=message.event, timestamp=T0, properties=properties)
    with pytest.raises(InvalidMessageError) as caught:
        storage.store([broken])
    assert str(caught.value) == (
        "pqlsdk_tier_changed message: Object missing required field `model` - at `properties`"
    )


def test_older_senders_crossings_get_defaults(storage: Storage) -> None:
    """Properties added to the contract later default to empty; unknown ones are ignored."""
    old = messages.Track(
        anonymous_id="anon",
        event="pqlsdk_tier_changed",
        timestamp=T0,
        properties={
            "subject": "account",
            "subject_id": "acme",
            "model": "pql",
            "previous_tier": None,
            "tier": "hot",
            "direction": "up",
            "score": 61,
            "route": "account_executive",
            "signals": [{"signal": "team", "points": 25}],
        },
    )
    storage.store([old])
    assert storage.lead("account", "acme") == Lead(
        subject="account",
        subject_id="acme",
        model="pql",
        previous_tier=None,
        tier="hot",
        direction="up",
        score=61.0,
        route="account_executive",
        reasons=(),
        top_features=(),
        team_size=1,
        moments_seen=(),
        crossed_at=T0,
        user_id=None,
        message_id=old.message_id,
    )


# The leads projection -------------------------------------------------------


def test_the_newest_crossing_wins_even_when_it_arrived_first(storage: Storage) -> None:
    """A crossing older than the stored lead, arriving later, changes nothing."""
    newer = crossing("a", "burning", minutes=30, score=90)
    assert storage.store([newer]).leads == (storage.lead("user", "a"),)
    late = storage.store([crossing("a", "warm", minutes=10, score=30)])
    assert (late.leads, storage.lead("user", "a")) == ((), storage.leads()[0])
    assert storage.lead("user", "a").message_id == newer.message_id  # type: ignore[union-attr]


def test_within_a_batch_only_the_newest_crossing_is_reported(storage: Storage) -> None:
    """Several crossings of one key in one batch yield one lead: the newest."""
    old, new = crossing("a", "warm", minutes=1), crossing("a", "hot", minutes=2)
    for batch in ([old, new], [crossing("b", "hot", minutes=2), crossing("b", "warm")]):
        result = storage.store(batch)
        assert [lead.tier for lead in result.leads] == ["hot"]
    assert new.message_id in [lead.message_id for lead in storage.leads()]


def test_equal_timestamps_fall_to_the_larger_message_id(storage: Storage) -> None:
    """Ties are decided by message id, so arrival order never changes the projection."""
    storage.store([crossing("a", "hot", message_id="m-2")])
    storage.store([crossing("a", "cold", message_id="m-1")])
    storage.store([crossing("b", "cold", message_id="m-1b")])
    storage.store([crossing("b", "hot", message_id="m-2b")])
    assert [(lead.subject_id, lead.message_id) for lead in storage.leads()] == [
        ("a", "m-2"),
        ("b", "m-2b"),
    ]


def test_leads_are_kept_per_subject_and_model(storage: Storage) -> None:
    """One lead per (subject, subject_id, model); lead() without a model takes the latest."""
    storage.store(
        [
            crossing("a", "hot", model="pql", minutes=5),
            crossing("a", "warm", model="expansion", minutes=9),
        ]
    )
    assert [lead.model for lead in storage.leads()] == ["pql", "expansion"]
    assert storage.lead("user", "a").model == "expansion"  # type: ignore[union-attr]
    assert storage.lead("user", "a", model="pql").tier == "hot"  # type: ignore[union-attr]
    assert storage.lead("account", "a") is None


def test_leads_are_ranked_by_tier_then_score(storage: Storage) -> None:
    """burning > hot > warm > cold, unknown tiers last; within a tier, higher score first."""
    storage.store(
        [
            crossing("cold-1", "cold", score=99),
            crossing("odd-1", "platinum", score=100),
            crossing("hot-low", "hot", score=55),
            crossing("burning-1", "burning", score=80),
            crossing("hot-high", "hot", score=70),
            crossing("warm-1", "warm", score=40),
        ]
    )
    assert [lead.subject_id for lead in storage.leads()] == [
        "burning-1",
        "hot-high",
        "hot-low",
        "warm-1",
        "cold-1",
        "odd-1",
    ]
    assert [lead.subject_id for lead in storage.leads(limit=2)] == ["burning-1", "hot-high"]


def test_do_not_contact_leads_rank_after_every_contactable_one(storage: Storage) -> None:
    """A do-not-contact lead never ranks above a contactable one, whatever its tier or score."""
    storage.store(
        [
            crossing("quiet", "burning", score=120, route="do_not_contact"),
            crossing("warm-1", "warm", score=30),
            crossing("hot-1", "hot", score=60),
            crossing("quiet-hot", "hot", score=70, route="do_not_contact"),
        ]
    )
    assert [lead.subject_id for lead in storage.leads()] == [
        "hot-1",
        "warm-1",
        "quiet",
        "quiet-hot",
    ]


def test_a_rep_marks_a_lead_contacted_and_a_new_crossing_keeps_the_mark(
    storage: Storage,
) -> None:
    """mark_contacted records who and when; later crossings of the key keep the mark."""
    storage.store([crossing("ada", "hot", score=60)])
    when = datetime(2026, 3, 15, 13, 30, tzinfo=UTC)
    marked = storage.mark_contacted("user", "ada", "pql", by="Ann Rep", at=when)
    assert marked is not None
    assert (marked.contacted_by, marked.contacted_at) == ("Ann Rep", when)
    storage.store([crossing("ada", "burning", score=90, minutes=120)])
    lead = storage.lead("user", "ada")
    assert lead is not None
    assert (lead.tier, lead.contacted_by, lead.contacted_at) == ("burning", "Ann Rep", when)
    assert storage.leads()[0].contacted_by == "Ann Rep"
    assert storage.mark_contacted("user", "nobody", "pql", by="Ann") is None
    assert storage.mark_contacted("user", "ada", "other-model", by="Ann") is None


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "Ann\nEve", 7])
def test_a_contact_needs_a_printable_name(storage: Storage, name: object) -> None:
    """The rep's name is 1-200 printable characters."""
    storage.store([crossing("ada", "hot")])
    with pytest.raises(ConfigError, match="printable"):
        storage.mark_contacted("user", "ada", "pql", by=name)  # type: ignore[arg-type]


def test_crossings_carry_the_multiplier_members_and_moment_titles(storage: Storage) -> None:
    """A crossing's multiplier, PQA members and moment titles are kept with its lead."""
    member = {"user_id": "ada", "tier": "burning", "score": 85, "route": "x", "reasons": []}
    storage.store(
        [
            crossing(
                "acme",
                "hot",
                subject="account",
                multiplier=0.5,
                members=[member],
                moment_titles=["Ready for more?"],
            )
        ]
    )
    lead = storage.lead("account", "acme")
    assert lead is not None
    assert (lead.multiplier, lead.members, lead.moment_titles) == (
        0.5,
        (member,),
        ("Ready for more?",),
    )


def test_a_version_1_database_is_migrated_with_its_leads(storage_url: str) -> None:
    """Leads stored before version 2 gain the new columns' defaults, and can be marked."""
    with open_storage(storage_url) as storage:
        storage.store([crossing("ada", "hot", score=60)])
    for column in ("multiplier", "members", "moment_titles", "contacted_by", "contacted_at"):
        execute(storage_url, f"ALTER TABLE leads DROP COLUMN {column}")
    execute(storage_url, "DROP INDEX messages_by_time")  # version 3's
    execute(storage_url, "UPDATE schema_version SET version = 1")
    with open_storage(storage_url) as storage:
        assert storage.schema_version() == SCHEMA_VERSION == 3
        lead = storage.lead("user", "ada")
        assert lead is not None
        assert (lead.multiplier, lead.members, lead.contacted_by) == (1.0, (), None)
        assert storage.mark_contacted("user", "ada", "pql", by="Ann") is not None


def test_leads_filter_by_tier_and_route(storage: Storage) -> None:
    """tier= and route= select leads; together they must both match."""
    storage.store(
        [
            crossing("a", "hot", route="account_executive"),
            crossing("b", "hot", route="sales_development", score=60),
            crossing("c", "warm", route="sales_development"),
        ]
    )
    assert [lead.subject_id for lead in storage.leads(tier="hot")] == ["b", "a"]
    assert [lead.subject_id for lead in storage.leads(route="sales_development")] == ["b", "c"]
    assert [lead.subject_id for lead in storage.leads(tier="warm", route="nurture")] == []
    with pytest.raises(ConfigError, match="limit"):
        storage.leads(limit=0)


def test_the_tier_ranking_is_configurable(storage_url: str) -> None:
    """A model with other tier names ranks by the list it is given."""
    with open_storage(storage_url, tiers=["pql", "mql"]) as storage:
        storage.store([crossing("m", "mql", score=90), crossing("p", "pql", score=10)])
        assert [lead.tier for lead in storage.leads()] == ["pql", "mql"]
    for tiers in ([], "hot", [1]):
        with pytest.raises(ConfigError, match="tiers"):
            open_storage(storage_url, tiers=tiers)  # type: ignore[arg-type]


def test_concurrent_writers_store_each_message_once(storage_url: str) -> None:
    """Writers on separate connections (as uvicorn workers have) share one database safely."""
    batches = [
        [track(f"u{n}", message_id=f"m{n}") for n in range(k, k + 40)]
        + [crossing("lead", "hot", minutes=k, message_id=f"c{k}")]
        for k in range(0, 80, 10)
    ]
    storages = [open_storage(storage_url) for _ in range(4)]
    results: list[StoreResult] = []
    errors: list[BaseException] = []

    def write(storage: Storage, mine: list[list[messages.Message]]) -> None:
        try:
            results.extend([storage.store(batch) for batch in mine])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(storage, batches[i::2] + batches[1 - i % 2 :: 2]))
        for i, storage in enumerate(storages)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        # Tracks m0..m109 overlap between batches; each batch adds one crossing.
        assert sum(len(result.new_ids) for result in results) == 110 + 8
        assert storages[0].count() == 118
        assert storages[0].lead("user", "lead").message_id == "c70"  # type: ignore[union-attr]
    finally:
        for storage in storages:
            storage.close()


def test_lead_to_dict_is_plain_json(storage: Storage) -> None:
    """What ``on_crossing`` receives: lists, and the crossing time as ISO-8601 UTC."""
    storage.store([crossing("a", "hot")])
    lead = storage.lead("user", "a")
    assert lead is not None
    data = lead.to_dict()
    assert (data["crossed_at"], data["top_features"], lead.key) == (
        "2026-03-15T12:00:00Z",
        ["reports"],
        ("user", "a", "pql"),
    )


# Lifecycle and faults ----------------------------------------------------


def test_closed_storage_raises_store_error(storage_url: str) -> None:
    """After close() every call fails loudly; close() itself can be repeated."""
    storage = open_storage(storage_url)
    storage.close()
    storage.close()
    with pytest.raises(StoreError, match="closed"):
        storage.count()
    with pytest.raises(StoreError, match="closed"):
        storage.ping()


def test_storage_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain path and sqlite:/// URLs (relative or absolute) open SQLite; others are refused."""
    monkeypatch.chdir(tmp_path)
    for url, path in [
        ("plain.db", "plain.db"),
        ("sqlite:///relative.db", "relative.db"),
        (f"sqlite:///{tmp_path}/absolute.db", f"{tmp_path}/absolute.db"),
    ]:
        with open_storage(url) as storage:
            assert isinstance(storage, SQLiteStorage)
            assert (storage.kind, storage.path, storage.tiers) == (
                "sqlite",
                Path(path),
                ("burning", "hot", "warm", "cold"),
            )
    for url, error in [
        ("", "empty"),
        ("sqlite://", "write sqlite:///"),
        ("sqlite://host/x.db", "write sqlite:///"),
        ("mysql://user:secret@host/db", "scheme 'mysql' is not supported"),
        ("nowhere/x.db", "does not exist"),
        (str(tmp_path), "cannot open"),
    ]:
        with pytest.raises(ConfigError, match=error) as caught:
            open_storage(url)
        assert "secret" not in str(caught.value)


def test_a_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    """A corrupt or foreign file fails at open, and its connection is closed."""
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"x" * 4096)
    with pytest.raises(StoreError, match="file is not a database"):
        open_storage(str(path))


def test_a_locked_sqlite_file_fails_as_a_store_error(tmp_path: Path) -> None:
    """A writer that cannot get the lock in time raises StoreError, and can write later."""
    path = tmp_path / "c.db"
    with SQLiteStorage(path, timeout=0.05) as storage:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="write failed: database is locked"):
            storage.store([track()])
        other.execute("ROLLBACK")
        other.close()
        assert len(storage.store([track()]).new_ids) == 1


def test_postgres_reconnects_after_the_server_drops_the_connection(postgres_url: str) -> None:
    """The call that meets a dropped connection fails (its batch is retried); the next works."""
    application = postgres_url.rsplit("application_name=", 1)[1]
    with open_storage(postgres_url) as storage:
        storage.store([track()])
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application,),
            )
        with pytest.raises(StoreError, match="postgresql storage: read failed"):
            storage.count()
        assert storage.count() == 1
        storage.ping()


def test_postgres_setup_errors(postgres_server: str) -> None:
    """A URL libpq rejects is a ConfigError; a server that does not answer is a StoreError."""
    with pytest.raises(ConfigError, match="postgresql storage URL"):
        open_storage(postgres_server + "?no_such_option=1")
    with pytest.raises(StoreError, match="cannot connect"):
        open_storage("postgresql://postgres:secret@127.0.0.1:1/test?connect_timeout=2")


def test_a_missing_postgres_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, a postgresql:// URL says which extra to install."""
    block(monkeypatch, "psycopg")
    monkeypatch.delitem(sys.modules, "pqlsdk.collector._postgres", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'pqlsdk\[postgres\]'"):
        open_storage("postgresql://127.0.0.1/test")


def test_received_at_is_recorded(storage_url: str) -> None:
    """Each message keeps when the collector received it, next to its own timestamp."""
    at = datetime(2026, 3, 16, 8, 30, tzinfo=UTC)
    with open_storage(storage_url) as storage:
        storage.store([track("a")], received_at=at)
    if storage_url.startswith("sqlite:///"):
        conn = sqlite3.connect(storage_url.removeprefix("sqlite:///"))
        row = conn.execute("SELECT received_at, timestamp FROM messages").fetchone()
        conn.close()
        assert row == ("2026-03-16T08:30:00.000000Z", "2026-03-15T12:00:00.000000Z")
    else:
        with psycopg.connect(storage_url) as pg:
            row = pg.execute("SELECT received_at, timestamp FROM messages").fetchone()
        assert row == (at, T0)
