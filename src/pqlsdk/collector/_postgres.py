"""PostgreSQL storage over psycopg 3: for collectors that outgrow one machine's file.

One connection per storage, in autocommit mode so that reads hold no
transaction open; each batch is one explicit transaction. Messages go in with
one pipelined ``executemany`` (a single round trip for the whole batch), and
idempotency and the leads projection are ``INSERT ... ON CONFLICT`` in the
database itself, so several collector processes can write at once. A connection
the server dropped is replaced on the next call; the call that saw it fail
raises ``StoreError`` and its batch is retried by its sender.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

from .._exceptions import ConfigError, StoreError
from ._lead import DEFAULT_TIERS
from ._storage import SQLStorage, Transaction

__all__ = ["PostgresStorage"]


@cache
def _placeholders(sql: str) -> str:
    """Rewrite the shared statements' ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("?", "%s")


def _describe(exc: psycopg.Error) -> str:
    """Return the server's primary message, else the driver's, for logs.

    Never the DETAIL line: it can quote row values (``Failing row contains ...``).
    """
    return (exc.diag.message_primary or str(exc)).strip()


class _PostgresTransaction:
    """A ``Transaction`` over one psycopg cursor."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (none for statements without a result)."""
        self._cursor.execute(_placeholders(sql), params)
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def insert_each(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run the ``INSERT ... RETURNING`` for all rows in one pipeline; True where inserted."""
        cursor = self._cursor
        cursor.executemany(_placeholders(sql), rows, returning=True)
        inserted = [cursor.fetchone() is not None]
        while cursor.nextset():
            inserted.append(cursor.fetchone() is not None)
        return inserted


class PostgresStorage(SQLStorage):
    """Collector storage in a PostgreSQL database (any libpq URL)."""

    dialect = "postgresql"
    _TABLE_EXISTS = (
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    )
    # Two collectors starting at once on an empty database must not both migrate.
    _LOCK_SCHEMA = "SELECT pg_advisory_xact_lock(7370206800)"

    def __init__(
        self, url: str, *, tiers: Sequence[str] = DEFAULT_TIERS, connect_timeout: int = 10
    ) -> None:
        """Connect to ``url`` and create or upgrade the collector's tables.

        Raise ``ConfigError`` for a URL libpq cannot parse and ``StoreError`` when
        the server cannot be reached.
        """
        super().__init__(tiers=tiers)
        self._url = url
        self._connect_timeout = connect_timeout
        self._conn = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.ProgrammingError as exc:
            # libpq's message names the bad option, never the URL's password.
            raise ConfigError(f"postgresql storage URL: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"postgresql storage: cannot connect: {_describe(exc)}") from exc
        # JSON columns come back as text, as SQLite gives them.
        conn.adapters.register_loader("json", TextLoader)
        return conn

    @contextmanager
    def _use(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """Lend the connection under the lock; reconnect if it broke; wrap driver faults."""
        with self._lock:
            if self._closed:
                raise StoreError("postgresql storage is closed")
            try:
                # Closed here means dropped by the server, or a reconnect that failed.
                if self._conn.closed:
                    self._conn.close()  # frees a broken connection; no-op otherwise
                    self._conn = self._connect()
                yield self._conn
            except psycopg.Error as exc:
                raise StoreError(f"postgresql storage: {action} failed: {_describe(exc)}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        with self._use("write") as conn, conn.transaction(), conn.cursor() as cursor:
            yield _PostgresTransaction(cursor)

    @contextmanager
    def _reading(self) -> Iterator[Transaction]:
        with self._use("read") as conn, conn.cursor() as cursor:
            yield _PostgresTransaction(cursor)

    def _write_time(self, when: datetime) -> datetime:
        return when

    def _read_time(self, value: Any) -> datetime:
        # TIMESTAMPTZ comes back in the session's time zone; leads speak UTC.
        moment: datetime = value.astimezone(UTC)
        return moment

    def close(self) -> None:
        """Close the connection; further calls raise ``StoreError``. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
