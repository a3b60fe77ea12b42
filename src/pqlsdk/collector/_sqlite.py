"""SQLite storage: the collector's zero-setup default, one file for all its workers.

Like the SDK's own store, the file runs in WAL mode, so health checks and lead
queries never wait for a batch being written, and every write is one
``BEGIN IMMEDIATE`` transaction: several uvicorn worker processes writing the
same file serialise on SQLite's lock (waiting up to ``timeout``) instead of
failing halfway. Each process opens its own connection.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError, StoreError
from ..stores._transactions import immediate
from ._lead import DEFAULT_TIERS
from ._storage import SQLStorage, Transaction

__all__ = ["SQLiteStorage"]


class _SQLiteTransaction:
    """A ``Transaction`` over one sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows."""
        return self._conn.execute(sql, params).fetchall()

    def insert_each(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run the ``INSERT ... RETURNING`` once per row; True where a row came back."""
        return [bool(self._conn.execute(sql, row).fetchall()) for row in rows]


class SQLiteStorage(SQLStorage):
    """Collector storage in one SQLite file, safe for several processes and threads."""

    dialect = "sqlite"
    _TABLE_EXISTS = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    _LOCK_SCHEMA = None  # BEGIN IMMEDIATE already excludes other migrators

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tiers: Sequence[str] = DEFAULT_TIERS,
        timeout: float = 30.0,
    ) -> None:
        """Open (creating and migrating if needed) the SQLite file at ``path``.

        ``timeout`` is how long a write waits for another process's transaction.
        """
        super().__init__(tiers=tiers)
        self._path = Path(path)
        if not self._path.parent.is_dir():
            raise ConfigError(
                f"sqlite storage: directory {str(self._path.parent)!r} does not exist"
            )
        try:
            self._conn = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"sqlite storage: cannot open {str(self._path)!r}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crashed process; only an OS crash can
            # lose the last batches, which senders then retry.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"sqlite storage {str(self._path)!r}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    @contextmanager
    def _use(self, action: str) -> Iterator[sqlite3.Connection]:
        """Lend the connection under the lock; turn SQLite faults into ``StoreError``."""
        with self._lock:
            if self._closed:
                raise StoreError(f"sqlite storage {str(self._path)!r} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(
                    f"sqlite storage {str(self._path)!r}: {action} failed: {exc}"
                ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        with self._use("write") as conn, immediate(conn):
            yield _SQLiteTransaction(conn)

    @contextmanager
    def _reading(self) -> Iterator[Transaction]:
        with self._use("read") as conn:
            yield _SQLiteTransaction(conn)

    def _write_time(self, when: datetime) -> str:
        # Fixed width (microseconds always present, year padded) so text order is time order.
        return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

    def _read_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def close(self) -> None:
        """Close the connection; further calls raise ``StoreError``. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
