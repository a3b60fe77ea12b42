"""Where the collector keeps messages and leads: the ``Storage`` interface and its SQL core.

Two databases implement it, SQLite (``_sqlite``) and PostgreSQL (``_postgres``),
with the same schema and the same statements (``_schema``). ``SQLStorage`` holds
everything they share: migrating, storing a batch in one transaction, the leads
projection and its queries. A backend adds only a connection, transactions, and
how its driver takes and gives back timestamps.

Storing is idempotent by ``messageId``: a message already stored is reported as
a duplicate and changes nothing, so a retried batch is stored once.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Protocol, Self

import msgspec

from .._exceptions import ConfigError, InvalidMessageError, SchemaVersionError
from ..messages import Message, encode
from ._extras import load
from ._lead import DEFAULT_TIERS, Lead, lead_from
from ._schema import (
    CONTACT_COLUMNS,
    INSERT_MESSAGE,
    LEAD_COLUMNS,
    MARK_CONTACTED,
    SCHEMA_VERSION,
    UPSERT_LEAD,
    Dialect,
    migration,
)

__all__ = [
    "Position",
    "SQLStorage",
    "Storage",
    "StoreResult",
    "Transaction",
    "open_storage",
    "storable",
]

Position = tuple[Any, str]
"""A stored message's place in time order: its timestamp as the database holds it, its id."""

_json_encode: Final = msgspec.json.Encoder().encode
_json_decode: Final = msgspec.json.Decoder().decode
_decode_message: Final = msgspec.json.Decoder(Message).decode
_COLUMNS: Final = (*LEAD_COLUMNS, *CONTACT_COLUMNS)
_SELECT_LEADS: Final = f"SELECT {', '.join(_COLUMNS)} FROM leads"  # noqa: S608 - constants
_MAX_CONTACT_NAME: Final = 200


class StoreResult(msgspec.Struct, frozen=True):
    """What storing a batch did.

    ``new_ids`` were stored now; ``duplicates`` were stored before (or earlier in
    the same batch) and changed nothing. ``leads`` are the crossings among the
    new messages that are now their key's lead, one per key.

    Added in version 0.1.0.
    """

    new_ids: tuple[str, ...]
    duplicates: tuple[str, ...]
    leads: tuple[Lead, ...] = ()


class Storage(Protocol):
    """What the collector app needs from a database.

    Added in version 0.1.0.
    """

    @property
    def kind(self) -> str:
        """``"sqlite"`` or ``"postgresql"``.

        Added in version 0.1.0.
        """
        ...

    def store(
        self, messages: Iterable[Message], *, received_at: datetime | None = None
    ) -> StoreResult:
        """Store ``messages`` in one transaction, and project their crossings into leads.

        Added in version 0.1.0.
        """
        ...

    def leads(
        self, *, tier: str | None = None, route: str | None = None, limit: int = 100
    ) -> list[Lead]:
        """Return leads, most urgent tier first, then highest score.

        Added in version 0.1.0.
        """
        ...

    def lead(self, subject: str, subject_id: str, *, model: str | None = None) -> Lead | None:
        """Return the lead of one user or account, or None.

        Added in version 0.1.0.
        """
        ...

    def mark_contacted(
        self, subject: str, subject_id: str, model: str, *, by: str, at: datetime | None = None
    ) -> Lead | None:
        """Record that ``by`` contacted a lead at ``at`` (now); return it, or None if unknown.

        Added in version 0.1.0.
        """
        ...

    def count(self, *, upto: Position | None = None) -> int:
        """Return how many messages are stored (at or before ``upto`` in time order, if given).

        Added in version 0.1.0.
        """
        ...

    def messages(self, *, page: int = 5_000) -> Iterator[Message]:
        """Yield every stored message in time order (then by ``messageId``), ``page`` rows a read.

        Added in version 0.1.0.
        """
        ...

    def positioned(
        self, *, after: Position | None = None, page: int = 5_000
    ) -> Iterator[tuple[Position, Message]]:
        """Yield the messages after ``after`` (all without it) in time order, with their places.

        Added in version 0.1.0.
        """
        ...

    def schema_version(self) -> int:
        """Return the schema version the database is at.

        Added in version 0.1.0.
        """
        ...

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers.

        Added in version 0.1.0.
        """
        ...

    def close(self) -> None:
        """Release the connection; further calls raise ``StoreError``.

        Added in version 0.1.0.
        """
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


class Transaction(Protocol):
    """One backend's transaction or read, as the SQL core uses it."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders); return its rows, if it has any."""
        ...

    def insert_each(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run an ``INSERT ... RETURNING`` per row; return which rows were inserted."""
        ...


def storable(message: Message) -> Lead | None:
    """Return the lead ``message`` carries (or None) if storage can hold it.

    Raise ``InvalidMessageError`` naming the field for a crossing whose
    properties are not a lead, or for text that PostgreSQL cannot hold (NUL).
    """
    lead = lead_from(message)
    texts = {
        "messageId": message.message_id,
        "userId": message.user_id,
        "anonymousId": message.anonymous_id,
        "event": getattr(message, "event", None),
    }
    if lead is not None:
        texts |= {
            f"properties.{name}": getattr(lead, name)
            for name in ("subject_id", "model", "previous_tier", "tier", "route")
        }
    for name, value in texts.items():
        if value is not None and "\x00" in value:
            raise InvalidMessageError(
                f"{type(message).__name__.lower()} {name} contains a NUL character"
            )
    return lead


class SQLStorage(ABC):
    """The part of ``Storage`` that is the same SQL in every dialect.

    ``tiers`` ranks leads, most urgent first; tiers not in it rank last.
    """

    dialect: ClassVar[Dialect]
    # How a dialect counts a table in the current schema, and serialises migrators.
    _TABLE_EXISTS: ClassVar[str]
    _LOCK_SCHEMA: ClassVar[str | None]

    def __init__(self, *, tiers: Sequence[str]) -> None:
        if isinstance(tiers, str) or not tiers or not all(isinstance(t, str) for t in tiers):
            raise ConfigError(f"tiers must be a non-empty sequence of tier names, got {tiers!r}")
        self._tiers = tuple(tiers)
        # One connection per storage: calls from the app's worker threads take turns.
        self._lock = threading.Lock()
        self._closed = False

    @property
    def kind(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.dialect

    @property
    def tiers(self) -> tuple[str, ...]:
        """The tier ranking, most urgent first."""
        return self._tiers

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Transaction]:
        """Begin a write transaction that holds the write lock from its first statement."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Transaction]:
        """Lend the connection for reads outside a write transaction."""

    @abstractmethod
    def _write_time(self, when: datetime) -> Any:
        """Return ``when`` as this dialect's timestamp parameter."""

    @abstractmethod
    def _read_time(self, value: Any) -> datetime:
        """Return a timestamp column's value as an aware UTC datetime."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; further calls raise ``StoreError``."""

    def _migrate(self) -> None:
        """Create the schema or upgrade it to ``SCHEMA_VERSION``, in one transaction."""
        with self._transaction() as tx:
            if self._LOCK_SCHEMA is not None:
                tx.query(self._LOCK_SCHEMA)
            ((exists,),) = tx.query(self._TABLE_EXISTS, ("schema_version",))
            if not exists:
                tx.query("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                tx.query("INSERT INTO schema_version (version) VALUES (0)")
            ((version,),) = tx.query("SELECT version FROM schema_version")
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.kind} storage has collector schema version {version}; "
                    f"this pqlsdk knows up to {SCHEMA_VERSION}: upgrade pqlsdk"
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in migration(step, self.dialect):
                    tx.query(statement)
            tx.query("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def schema_version(self) -> int:
        """Return the schema version the database is at."""
        with self._reading() as tx:
            ((version,),) = tx.query("SELECT version FROM schema_version")
        return int(version)

    def store(
        self, messages: Iterable[Message], *, received_at: datetime | None = None
    ) -> StoreResult:
        """Store ``messages`` in one transaction, and project their crossings into leads.

        Raise ``InvalidMessageError`` before writing anything if one of them
        cannot be stored (see ``storable``); the collector app checks each
        message first so that the others are stored.
        """
        batch = list(messages)
        leads = [storable(message) for message in batch]
        if not batch:
            return StoreResult(new_ids=(), duplicates=())
        received = self._write_time(received_at or datetime.now(UTC))
        # Rows are written in one global order (messages by id, then leads by key):
        # PostgreSQL transactions storing overlapping batches then wait for each
        # other instead of deadlocking. The sort is stable, so among equal ids the
        # first in the batch is the one stored.
        order = sorted(range(len(batch)), key=lambda i: batch[i].message_id)
        rows = [self._message_row(batch[i], received) for i in order]
        new = [False] * len(batch)
        latest: dict[tuple[str, str, str], Lead] = {}
        with self._transaction() as tx:
            for i, inserted in zip(order, tx.insert_each(INSERT_MESSAGE, rows), strict=True):
                new[i] = inserted
            crossings = [lead for lead, fresh in zip(leads, new, strict=True) if fresh and lead]
            for lead in sorted(crossings, key=lambda lead: lead.key):
                # A row comes back only if this crossing is now the newest for its
                # key; a newer one for the same key later in the batch replaces it.
                if tx.query(UPSERT_LEAD, self._lead_row(lead)):
                    latest[lead.key] = lead
        ids = [message.message_id for message in batch]
        return StoreResult(
            new_ids=tuple(i for i, fresh in zip(ids, new, strict=True) if fresh),
            duplicates=tuple(i for i, fresh in zip(ids, new, strict=True) if not fresh),
            leads=tuple(latest.values()),
        )

    def leads(
        self, *, tier: str | None = None, route: str | None = None, limit: int = 100
    ) -> list[Lead]:
        """Return up to ``limit`` leads, optionally of one ``tier`` or ``route``.

        Leads that sales may contact come first; ``do_not_contact`` ones after all
        of them, whatever their score. Within each, the most urgent tier first
        (the ``tiers`` ranking; unknown tiers last), then by score, highest first,
        then most recent crossing first.
        """
        if limit < 1:
            raise ConfigError(f"limit must be at least 1, got {limit!r}")
        filters = (("tier", tier), ("route", route))
        where = [(column, value) for column, value in filters if value is not None]
        sql = _SELECT_LEADS
        if where:
            sql += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)
        # The rank numbers are literals: only tier names are parameters.
        rank = " ".join(f"WHEN ? THEN {n}" for n in range(len(self._tiers)))
        sql += (
            " ORDER BY CASE route WHEN 'do_not_contact' THEN 1 ELSE 0 END,"
            f" CASE tier {rank} ELSE {len(self._tiers)} END, score DESC,"
            " crossed_at DESC, subject, subject_id, model LIMIT ?"
        )
        params = [value for _, value in where] + [*self._tiers, limit]
        with self._reading() as tx:
            return [self._lead(row) for row in tx.query(sql, params)]

    def lead(self, subject: str, subject_id: str, *, model: str | None = None) -> Lead | None:
        """Return the lead of one user or account for ``model``, or None.

        Without ``model``, return its most recent crossing of any model.
        """
        sql = _SELECT_LEADS + " WHERE subject = ? AND subject_id = ?"
        params = [subject, subject_id]
        if model is not None:
            sql += " AND model = ?"
            params.append(model)
        sql += " ORDER BY crossed_at DESC, message_id DESC LIMIT 1"
        with self._reading() as tx:
            rows = tx.query(sql, params)
        return self._lead(rows[0]) if rows else None

    def mark_contacted(
        self, subject: str, subject_id: str, model: str, *, by: str, at: datetime | None = None
    ) -> Lead | None:
        """Record that rep ``by`` contacted a lead at ``at`` (now); return the lead, or None.

        The mark stays when the lead crosses again; the feed counts a deadline as
        met only by a contact made after the latest crossing. Raise
        ``ConfigError`` for a name that is empty, longer than 200 characters or
        holds control characters.
        """
        if not (isinstance(by, str) and by.strip() and len(by) <= _MAX_CONTACT_NAME) or not (
            by.isprintable()
        ):
            raise ConfigError("the contacting rep's name must be 1-200 printable characters")
        when = self._write_time(at or datetime.now(UTC))
        with self._transaction() as tx:
            found = tx.query(MARK_CONTACTED, (by, when, subject, subject_id, model))
        return self.lead(subject, subject_id, model=model) if found else None

    def count(self, *, upto: Position | None = None) -> int:
        """Return how many messages are stored (at or before ``upto`` in time order, if given).

        With ``upto``, an index range (``messages_by_time``) is counted: no
        message is read, which is what lets a report check that nothing
        arrived late behind the place it has read to.
        """
        sql, params = "SELECT count(*) FROM messages", []
        if upto is not None:
            sql += " WHERE (timestamp, message_id) <= (?, ?)"
            params = list(upto)
        with self._reading() as tx:
            ((count,),) = tx.query(sql, params)
        return int(count)

    def messages(self, *, page: int = 5_000) -> Iterator[Message]:
        """Yield every stored message in time order (then by ``messageId``), ``page`` rows a read.

        Reads go page by page from where the last one ended (keyset paging on the
        ``(timestamp, message_id)`` order), so memory stays one page, the
        connection is free between pages, and messages stored meanwhile at later
        instants are read too. For reports (``pqlsdk moments``) over the whole history.
        """
        return (message for _, message in self.positioned(page=page))

    def positioned(
        self, *, after: Position | None = None, page: int = 5_000
    ) -> Iterator[tuple[Position, Message]]:
        """Yield the messages after ``after`` (all without it) in time order, with their places.

        A place is the ``(timestamp, message_id)`` pair as stored: pass the last
        one read as ``after`` to read only what sorts after it, as the
        collector's moments report does on each request (``_lift_cache``).
        """
        if page < 1:
            raise ConfigError(f"page must be at least 1, got {page!r}")
        while True:
            sql = "SELECT timestamp, message_id, body FROM messages"
            params: list[Any] = []
            if after is not None:
                sql += " WHERE (timestamp, message_id) > (?, ?)"
                params = list(after)
            sql += " ORDER BY timestamp, message_id LIMIT ?"
            with self._reading() as tx:
                rows = tx.query(sql, [*params, page])
            for at, message_id, body in rows:
                # Both dialects give the JSON back as text.
                yield (at, message_id), _decode_message(body)
            if len(rows) < page:
                return
            after = (rows[-1][0], rows[-1][1])

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers a trivial query."""
        with self._reading() as tx:
            tx.query("SELECT 1")

    def _message_row(self, message: Message, received: Any) -> tuple[Any, ...]:
        return (
            message.message_id,
            type(message).__name__.lower(),
            message.user_id,
            message.anonymous_id,
            getattr(message, "event", None),
            self._write_time(message.timestamp),
            received,
            encode(message).decode(),
        )

    def _lead_row(self, lead: Lead) -> tuple[Any, ...]:
        return (
            lead.subject,
            lead.subject_id,
            lead.model,
            lead.previous_tier,
            lead.tier,
            lead.direction,
            lead.score,
            lead.route,
            _json_encode(lead.reasons).decode(),
            _json_encode(lead.top_features).decode(),
            lead.team_size,
            _json_encode(lead.moments_seen).decode(),
            self._write_time(lead.crossed_at),
            lead.user_id,
            lead.message_id,
            lead.multiplier,
            _json_encode(lead.members).decode(),
            _json_encode(lead.moment_titles).decode(),
        )

    def _lead(self, row: Sequence[Any]) -> Lead:
        values = dict(zip(_COLUMNS, row, strict=True))
        for name in ("reasons", "top_features", "moments_seen", "members", "moment_titles"):
            values[name] = tuple(_json_decode(values[name]))
        values["crossed_at"] = self._read_time(values["crossed_at"])
        if values["contacted_at"] is not None:
            values["contacted_at"] = self._read_time(values["contacted_at"])
        return Lead(**values)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_storage(url: str, *, tiers: Sequence[str] = DEFAULT_TIERS) -> Storage:
    """Open (creating and migrating as needed) the storage ``url`` names.

    - a plain file path, ``sqlite:///relative.db`` or ``sqlite:////absolute.db``:
      SQLite;
    - ``postgresql://user@host:port/dbname`` (or ``postgres://``, any libpq URL):
      PostgreSQL, which needs the ``postgres`` extra.

    ``tiers`` ranks leads, most urgent first. Raise ``ConfigError`` for a URL
    that names neither, ``StoreError`` when the database cannot be opened.

    Added in version 0.1.0.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        if not url:
            raise ConfigError("storage URL is empty: pass a file path or a postgresql:// URL")
        return _sqlite(url, tiers)
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(
                f"storage URL {url!r}: write sqlite:///relative/file.db or "
                "sqlite:////absolute/file.db"
            )
        return _sqlite(rest[1:], tiers)
    if scheme in {"postgresql", "postgres"}:
        postgres = load("._postgres", extra="postgres", purpose="PostgreSQL storage")
        storage: SQLStorage = postgres.PostgresStorage(url, tiers=tiers)
        return storage
    # The URL may carry a password: name only its scheme.
    raise ConfigError(
        f"storage URL scheme {scheme!r} is not supported; use a file path, "
        "sqlite:///path or postgresql://..."
    )


def _sqlite(path: str, tiers: Sequence[str]) -> SQLStorage:
    from ._sqlite import SQLiteStorage  # noqa: PLC0415 - _sqlite imports this module

    return SQLiteStorage(path, tiers=tiers)
