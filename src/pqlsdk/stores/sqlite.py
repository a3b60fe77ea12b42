"""The SQLite store: the embedded default, one file shared by a host's processes.

Why SQLite: it ships with Python, survives restarts, and lets every worker of a
host (gunicorn, Celery) share one state file without a server. The file runs in
WAL mode so readers never wait for the writer, and every write is one
``BEGIN IMMEDIATE`` transaction that reads the state it changes, so two processes
folding messages into the same user at once serialise instead of losing updates.

The schema is versioned with ``PRAGMA user_version`` and upgraded forward on open
by the ``_MIGRATIONS`` list; a file from a newer pqlsdk is refused rather than
misread. A connection is never used across ``fork()``: the child opens its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

from .._aggregates import Aggregate
from .._clock import micros
from .._exceptions import ConfigError, SchemaVersionError, StoreError
from .._lifecycle import unwatch, watch
from .._liveness import gone, identity
from ..messages import Message, decode, decode_checked
from ._base import Record, Subject, T, Written
from ._outbox import SQLiteOutbox
from ._rows import each_in, insert_rows
from ._state import (
    AccountState,
    UserState,
    apply,
    cached,
    decode_account,
    decode_aggregate,
    decode_user,
    encode,
    rebuild,
)
from ._transactions import immediate

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

Row = tuple[str, str, int, bytes]
"""A message as the log keeps it: its id, subject, timestamp (µs) and JSON."""
LoggedRow = tuple[str, str, int, bytes, *tuple[str, ...]]
"""A ``Row`` that may carry more fields after the four (the buffered store's overlay
keys), which ``record_folded`` leaves alone: its rows are logged without a copy."""
Folded = tuple[Mapping[str, bytes], Mapping[str, bytes]]
"""Users' and accounts' states folded by the caller, msgpack-encoded, by id."""

_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the message log, and user and account state as msgpack blobs.
    (
        """CREATE TABLE messages (
            seq INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            ts INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX messages_by_subject ON messages (subject, ts)",
        "CREATE INDEX messages_by_time ON messages (ts)",
        "CREATE TABLE users (user_id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID",
        "CREATE TABLE accounts (account_id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID",
    ),
    # 2: the aggregates every process sharing the file keeps up to date.
    ("CREATE TABLE aggregates (key TEXT PRIMARY KEY, spec BLOB NOT NULL) WITHOUT ROWID",),
    # 3: the durable outbox: messages waiting for the collector, leased by senders.
    (
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY,
            body BLOB NOT NULL,
            lease_until REAL NOT NULL DEFAULT 0
        )""",
    ),
    # 4: who holds each lease (``_liveness.identity()``), so leases of dead senders
    # on this host are taken over at once instead of when they run out.
    ("ALTER TABLE outbox ADD COLUMN holder TEXT NOT NULL DEFAULT ''",),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema version this pqlsdk writes; older files are upgraded on open.

Added in version 0.1.0.
"""

_PAGE: Final = 1000
_IDS: Final = 500
"""Message ids looked up per statement (SQLite allows 999 parameters at the least)."""
_CACHE: Final = -8192
"""The write connection's page cache, KiB (SQLite's default: 2 MiB). A commit inserts into the
message-id index at random and the subject index once per user: with 8 MiB, a quarter less work."""
_PAGE_BYTES: Final = 8192
"""The page size of a file this store creates (SQLite's default: 4 KiB); a file keeps the size
it was created with. A message's row and its index entries take most of a kilobyte: with
pages twice as large, a commit of thousands writes and checkpoints half as many, for a fifth
less of the committing thread's CPU per message. Not larger: every commit writes each page
it changes whole, and with 16 KiB a sync-durability call (one commit) took a third longer."""
_SELECT_STATE: Final = {
    "user": "SELECT state FROM users WHERE user_id = ?",
    "account": "SELECT state FROM accounts WHERE account_id = ?",
}

_second: Final = itemgetter(1)

# Connections inherited through fork() are parked here, never closed: closing one
# in the child could checkpoint or remove the parent's WAL file under it.
_orphans: list[sqlite3.Connection] = []


class SQLiteStore:
    """A ``Store`` in one SQLite file, safe for several processes and threads.

    Added in version 0.1.0.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        """Open (creating if needed) the store file at ``path``.

        ``timeout`` is how long a write waits for another process's transaction
        before failing with ``StoreError``.
        """
        self._path = Path(path)
        self._timeout = timeout
        # Re-entrant: a flush() from a signal handler may read while this thread writes.
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # Reads have their own connection: in WAL mode they see the last commit
        # and never wait for a write transaction (a buffered store's commit of
        # thousands of messages), so gate() and decide() stay fast under load.
        self._read_lock = threading.RLock()
        self._reader: sqlite3.Connection | None = None
        self._aggregates: frozenset[Aggregate] = frozenset()
        if not self._path.parent.is_dir():
            raise ConfigError(f"sqlite store: directory {str(self._path.parent)!r} does not exist")
        try:
            self._connect()
        except sqlite3.Error as exc:
            raise ConfigError(f"sqlite store: cannot open {str(self._path)!r}: {exc}") from exc
        watch(self)

    @property
    def url(self) -> str:
        """``sqlite:///`` followed by the file's path.

        Added in version 0.1.0.
        """
        return f"sqlite:///{self._path}"

    @property
    def path(self) -> Path:
        """The store file.

        Added in version 0.1.0.
        """
        return self._path

    def _open(self) -> sqlite3.Connection:
        """Open the file in autocommit mode, for any of this process's threads."""
        return sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )

    def _connect(self) -> sqlite3.Connection:
        conn = self._open()
        conn.execute(f"PRAGMA page_size = {_PAGE_BYTES}")  # see _PAGE_BYTES
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable against process crashes (SIGKILL); only an
        # OS crash or power loss can lose the last transactions.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size = {_CACHE}")  # see _CACHE
        self._migrate(conn)
        self._conn = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        with immediate(conn):
            # Read again under the write lock: another process may have migrated.
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"sqlite store {str(self._path)!r} has schema version {version}; "
                    f"this pqlsdk reads up to {SCHEMA_VERSION}: upgrade pqlsdk"
                )
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def after_fork(self) -> None:
        """In a forked child: drop the parent's connection and lock without touching them.

        Added in version 0.1.0.
        """
        _orphans.extend(conn for conn in (self._conn, self._reader) if conn is not None)
        self._conn = self._reader = None
        self._lock = threading.RLock()
        self._read_lock = threading.RLock()

    def _connection(self) -> sqlite3.Connection:
        return self._conn or self._connect()

    def _reading(self) -> sqlite3.Connection:
        if self._reader is None:  # the file was migrated when the store was opened
            self._reader = self._open()
            self._reader.execute("PRAGMA query_only = ON")
        return self._reader

    @contextmanager
    def _use(self, action: str) -> Iterator[sqlite3.Connection]:
        """Lend a connection for ``action`` under its lock; faults become ``StoreError``.

        ``"read"`` gets the read connection, everything else the write connection.
        """
        try:
            if action == "read":
                with self._read_lock:
                    yield self._reading()
            else:
                with self._lock:
                    yield self._connection()
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite store {str(self._path)!r}: {action} failed: {exc}") from exc

    def record(
        self, records: Iterable[Record], *, outbox: bool = False, written: Written | None = None
    ) -> int:
        """Append and fold ``records`` in one ``BEGIN IMMEDIATE`` transaction.

        With ``outbox``, new messages are also queued for the collector in the
        same transaction: recorded and queued, or neither. A buffered store
        commits thousands at once, so the statements are per table, not per
        message: one lookup of the ids already logged per ``_IDS`` messages,
        then one multi-row insert each for the log and the states, and one
        statement that queues the log's new rows in the outbox.

        Added in version 0.1.0.
        """
        records = list(records)
        with self._use("write") as conn, immediate(conn):
            return self._fold(conn, records, outbox=outbox, written=written)

    def record_folded(
        self,
        rows: Sequence[LoggedRow],
        folded: Callable[[], Folded | None],
        *,
        outbox: bool,
        version: int | None,
    ) -> tuple[int, int]:
        """Commit messages whose states the caller folded already, or fold them here.

        For the buffered store, which folded each message into its overlay as
        it came: when no other connection committed to the file since this
        one's commit that returned ``version`` (SQLite's ``data_version``), and
        ``folded()`` (asked under the write lock) still vouches for its
        states, the overlay's states are the file's states with these messages
        applied, so they are written as they are (msgpack blobs, one
        multi-row insert per table) and no message is decoded or applied again.
        Otherwise the messages are folded into the states as committed, as
        ``record()`` does. Returns how many were recorded and the
        ``data_version`` to pass next time.

        Added in version 0.1.0.
        """
        with self._use("write") as conn, immediate(conn):
            (now,) = conn.execute("PRAGMA data_version").fetchone()
            states = folded() if version == now else None
            if states is None:
                records = [(decode_checked(row[3]), row[3]) for row in rows]
                return self._fold(conn, records, outbox=outbox), now
            # Their ids were looked up when they were folded, and nothing was
            # committed since by anyone else: none of them is logged yet (and
            # if one were, ignoring it beats failing this commit at every retry).
            _log(conn, rows, outbox=outbox, columns=slice(4))
            users, accounts = states
            insert_rows(conn, "INSERT OR REPLACE INTO users (user_id, state)", users.items())
            insert_rows(
                conn, "INSERT OR REPLACE INTO accounts (account_id, state)", accounts.items()
            )
            return len(rows), now

    def data_version(self) -> int:
        """SQLite's ``data_version`` on the write connection: it moves when another one commits.

        Added in version 0.1.0.
        """
        with self._use("write") as conn:
            (version,) = conn.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _fold(
        self,
        conn: sqlite3.Connection,
        records: list[Record],
        *,
        outbox: bool,
        written: Written | None = None,
    ) -> int:
        """Log, queue and fold the records not logged yet (a write transaction is open)."""
        load_user, users = cached(lambda key: self._load(conn, "user", key))
        load_account, accounts = cached(lambda key: self._load(conn, "account", key))
        aggregates = self._refresh_aggregates(conn)
        seen = _logged(conn, [message.message_id for message, _ in records])
        new: list[Record] = []
        for record in records:
            if record[0].message_id not in seen:  # not logged, nor earlier in this batch
                seen.add(record[0].message_id)
                new.append(record)
        rows = [(m.message_id, m.subject, micros(m.timestamp), data) for m, data in new]
        _log(conn, rows, outbox=outbox)
        for message, _ in new:
            changes = apply(message, load_user, load_account, aggregates)
            for user in changes.users:
                users[user.user_id] = user
            for account in changes.accounts:
                accounts[account.account_id] = account
        _write_states(conn, users, accounts)
        if written is not None:  # every state loaded or created was written back
            written.users.update((k, v) for k, v in users.items() if v is not None)
            written.accounts.update((k, v) for k, v in accounts.items() if v is not None)
        return len(new)

    def _refresh_aggregates(self, conn: sqlite3.Connection) -> frozenset[Aggregate]:
        """Re-read the registry when another process added to it (it only grows)."""
        (count,) = conn.execute("SELECT count(*) FROM aggregates").fetchone()
        if count != len(self._aggregates):
            rows = conn.execute("SELECT spec FROM aggregates").fetchall()
            self._aggregates = frozenset(decode_aggregate(spec) for (spec,) in rows)
        return self._aggregates

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates kept up to date (as of this process's last transaction).

        Added in version 0.1.0.
        """
        return self._aggregates

    def maintain(self, aggregates: Iterable[Aggregate]) -> int:
        """Register ``aggregates`` and compute new ones from the log, in one transaction.

        Added in version 0.1.0.
        """
        with self._use("rebuild") as conn, immediate(conn):
            new = frozenset(aggregates) - self._refresh_aggregates(conn)
            if new:
                conn.executemany(
                    "INSERT INTO aggregates (key, spec) VALUES (?, ?)",
                    [(aggregate.key, encode(aggregate)) for aggregate in new],
                )
                rows = conn.execute("SELECT body FROM messages ORDER BY ts, seq").fetchall()
                users, accounts = rebuild(
                    [decode(body) for (body,) in rows],
                    new,
                    lambda key: self._load(conn, "user", key),
                    lambda key: self._load(conn, "account", key),
                )
                _write_states(conn, users, accounts)
                self._aggregates |= new
            return len(new)

    def _load(self, conn: sqlite3.Connection, subject: Subject, key: str) -> Any:
        row = conn.execute(_SELECT_STATE[subject], (key,)).fetchone()
        if row is None:
            return None
        return decode_user(row[0]) if subject == "user" else decode_account(row[0])

    def update_user(self, user_id: str, change: Callable[[UserState], T]) -> T:
        """Run ``change`` on the user's state in one ``BEGIN IMMEDIATE`` transaction.

        Added in version 0.1.0.
        """
        with self._use("write") as conn, immediate(conn):
            state = self._load(conn, "user", user_id) or UserState(user_id=user_id)
            result = change(state)
            _write_states(conn, {user_id: state}, {})
            return result

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Run ``change`` on the account's state in one ``BEGIN IMMEDIATE`` transaction.

        Added in version 0.1.0.
        """
        with self._use("write") as conn, immediate(conn):
            state = self._load(conn, "account", account_id) or AccountState(account_id=account_id)
            result = change(state)
            _write_states(conn, {}, {account_id: state})
            return result

    def user(self, user_id: str) -> UserState | None:
        """Return the stored state of ``user_id``.

        Added in version 0.1.0.
        """
        with self._use("read") as conn:
            return self._load(conn, "user", user_id)  # type: ignore[no-any-return]

    def account(self, account_id: str) -> AccountState | None:
        """Return the stored state of ``account_id``.

        Added in version 0.1.0.
        """
        with self._use("read") as conn:
            return self._load(conn, "account", account_id)  # type: ignore[no-any-return]

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order, reading a page at a time.

        Added in version 0.1.0.
        """
        where = "" if subject is None else "subject = ? AND "
        query = (
            f"SELECT ts, seq, body FROM messages WHERE {where}(ts, seq) > (?, ?) "  # noqa: S608 - fixed text
            f"ORDER BY ts, seq LIMIT {_PAGE}"
        )
        after: tuple[int, ...] = (-(2**63), -1)
        while True:
            params = after if subject is None else (subject, *after)
            with self._use("read") as conn:
                rows = conn.execute(query, params).fetchall()
            for _, _, body in rows:
                yield decode(body)
            if len(rows) < _PAGE:
                return
            after = (rows[-1][0], rows[-1][1])

    def count(self) -> int:
        """Return how many messages the log holds.

        Added in version 0.1.0.
        """
        with self._use("read") as conn:
            (count,) = conn.execute("SELECT count(*) FROM messages").fetchone()
        return int(count)

    def has_message(self, message_id: str) -> bool:
        """Whether the log holds a message with this ``messageId``.

        Added in version 0.1.0.
        """
        with self._use("read") as conn:
            found = conn.execute(
                "SELECT 1 FROM messages WHERE message_id = ?", (message_id,)
            ).fetchone()
        return found is not None

    def logged(self, message_ids: list[str]) -> set[str]:
        """Which of ``message_ids`` the log holds (one query per few hundred).

        Added in version 0.1.0.
        """
        with self._use("read") as conn:
            return _logged(conn, message_ids)

    def enqueue(self, messages: Iterable[bytes]) -> None:
        """Queue encoded messages for the collector (pqlsdk's own records).

        Added in version 0.1.0.
        """
        with self._use("write") as conn, immediate(conn):
            conn.executemany("INSERT INTO outbox (body) VALUES (?)", [(m,) for m in messages])

    def lease(
        self, max_count: int, max_bytes: int, *, now: float, until: float
    ) -> list[tuple[int, bytes]]:
        """Lease the oldest unleased outbox rows until ``until`` (Unix seconds).

        The lease names this process as its holder (see ``take_over_leases``).

        Added in version 0.1.0.
        """
        holder = identity()
        with self._use("write") as conn, immediate(conn):
            rows = conn.execute(
                "SELECT seq, body FROM outbox WHERE lease_until < ? ORDER BY seq LIMIT ?",
                (now, max_count),
            ).fetchall()
            # The first row, and the rows after it while the batch stays within max_bytes:
            # cut where the running size passes it, found without a loop in Python (a
            # batch of hundreds held the GIL for some 150 us in one).
            ends = list(accumulate(map(len, map(_second, rows))))
            taken: list[tuple[int, bytes]] = rows[: max(1, bisect_right(ends, max_bytes))]
            if taken:  # the rows selected from the first taken to the last: one statement
                conn.execute(
                    "UPDATE outbox SET lease_until = ?, holder = ? "
                    "WHERE seq BETWEEN ? AND ? AND lease_until < ?",
                    (until, holder, taken[0][0], taken[-1][0], now),
                )
            return taken

    def take_over_leases(self, now: float) -> dict[str, int]:
        """End the leases held by senders that died on this host; return ``{holder: rows}``.

        A lease of a live sender, or of a sender on another host, kernel or pid
        namespace, is left to run out (see ``pqlsdk._liveness``). Costs one read
        when no lease is held.

        Added in version 0.1.0.
        """
        with self._use("read") as conn:
            held = conn.execute(
                "SELECT DISTINCT holder FROM outbox WHERE lease_until >= ? AND holder != ''",
                (now,),
            ).fetchall()
        dead = [holder for (holder,) in held if gone(holder)]
        if not dead:
            return {}
        with self._use("write") as conn, immediate(conn):
            return {
                holder: conn.execute(
                    "UPDATE outbox SET lease_until = 0, holder = '' WHERE holder = ?", (holder,)
                ).rowcount
                for holder in dead
            }

    def unlease(self, keys: Iterable[int], *, delete: bool) -> None:
        """End leases: delete the rows (delivered or rejected) or make them available again.

        Added in version 0.1.0.
        """
        head = (
            "DELETE FROM outbox WHERE seq"
            if delete
            else "UPDATE outbox SET lease_until = 0, holder = '' WHERE seq"
        )
        with self._use("write") as conn, immediate(conn):
            for _ in each_in(conn, head, list(keys), _IDS):
                pass

    def outbox_size(self) -> int:
        """Rows waiting in the outbox, leased or not.

        Added in version 0.1.0.
        """
        with self._use("read") as conn:
            (count,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)

    def prune(self, before: datetime) -> int:
        """Delete logged messages older than ``before``.

        Added in version 0.1.0.
        """
        with self._use("prune") as conn:
            return conn.execute("DELETE FROM messages WHERE ts < ?", (micros(before),)).rowcount

    def outbox(self, *, lease: float) -> SQLiteOutbox:
        """Return the outbox table in this file, shared by every process that opens it.

        Added in version 0.1.0.
        """
        return SQLiteOutbox(self, lease=lease)

    def close(self) -> None:
        """Close this process's connections.

        Added in version 0.1.0.
        """
        with self._lock, self._read_lock:
            for conn in (self._conn, self._reader):
                if conn is not None:
                    conn.close()
            self._conn = self._reader = None
        unwatch(self)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"


def _logged(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    """Which of ``ids`` the log holds already, ``_IDS`` per statement."""
    head = "SELECT message_id FROM messages WHERE message_id"
    return {row[0] for cursor in each_in(conn, head, ids, _IDS) for row in cursor}


def _log(
    conn: sqlite3.Connection,
    rows: Iterable[Sequence[Any]],
    *,
    outbox: bool,
    columns: slice | None = None,
) -> None:
    """Log the ``rows`` not logged yet; with ``outbox``, queue the ones this added.

    Each row holds message id, subject, ts and body (``columns`` picks them).
    Both commit paths log this way, so a message is queued once (``_queue_logged``).
    """
    last = _last_seq(conn) if outbox else 0
    insert_rows(
        conn, "INSERT OR IGNORE INTO messages (message_id, subject, ts, body)", rows, columns
    )
    if outbox:
        _queue_logged(conn, last)


def _last_seq(conn: sqlite3.Connection) -> int:
    """Return the log's newest row (0 if empty): the rows a transaction adds come after it."""
    (last,) = conn.execute("SELECT ifnull(max(seq), 0) FROM messages").fetchone()
    return int(last)


def _queue_logged(conn: sqlite3.Connection, last: int) -> None:
    """Queue for the collector the messages this transaction logged after row ``last``.

    Copied inside SQLite, in log order: one statement, however many there are,
    rather than their bodies bound again from Python, a thousand rows a
    statement, each statement a hand-off of the GIL for the committing thread
    (see ``_rows``). A row already logged (``INSERT OR IGNORE``) adds none, so
    it is not queued twice. New rows come after the newest one: the write
    transaction excludes other writers and rows are numbered from the largest.
    """
    conn.execute(
        "INSERT INTO outbox (body) SELECT body FROM messages WHERE seq > ? ORDER BY seq", (last,)
    )


def _write_states(
    conn: sqlite3.Connection,
    users: dict[str, UserState | None],
    accounts: dict[str, AccountState | None],
) -> None:
    """Write back every state a transaction loaded or created."""
    insert_rows(
        conn,
        "INSERT OR REPLACE INTO users (user_id, state)",
        [(key, encode(user)) for key, user in users.items() if user is not None],
    )
    insert_rows(
        conn,
        "INSERT OR REPLACE INTO accounts (account_id, state)",
        [(key, encode(acct)) for key, acct in accounts.items() if acct is not None],
    )
