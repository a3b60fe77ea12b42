"""SQLite write transactions: ``BEGIN IMMEDIATE``, shared by every SQLite file pqlsdk writes.

The SQLite store and the collector's SQLite storage both read state and write
it back in one transaction; SQLite's default ``BEGIN DEFERRED`` would take the
write lock only at the first write, so two processes could both read, then one
fail with ``SQLITE_BUSY`` (or, worse, overwrite what the other wrote from a stale
read). ``BEGIN IMMEDIATE`` takes the write lock first: processes queue instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["immediate"]


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before any read."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
