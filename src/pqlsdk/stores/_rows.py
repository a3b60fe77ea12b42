"""Many rows into one table in a few statements, for commits of thousands of messages.

``executemany`` steps its statement once per row, and SQLite's module releases
the GIL around every step: a writer thread committing a burst then asks for the
GIL back once per row, and while the host's (or the intake's) threads hold it,
each ask waits up to the switch interval (5 ms). A multi-row ``INSERT`` of up to
``_ROWS`` rows asks once per statement: the same rows, inserted in the same
order with the same conflict clause, at a few hundredths of the hand-offs.

Statements come in few sizes (full ones, then powers of two for the rest): the
connection caches each distinct text compiled, and a cache of a hundred
thousand-row statements of every length would hold tens of MiB.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any, Final

__all__ = ["each_in", "insert_rows"]

_ROWS: Final = 1000
"""Rows per statement at most (fewer if the parameters would pass SQLite's limit)."""


def insert_rows(
    conn: sqlite3.Connection,
    head: str,
    rows: Iterable[Sequence[Any]],
    columns: slice | None = None,
) -> None:
    """Run ``head`` (``INSERT ... INTO table (columns)``) with ``VALUES`` for every row of ``rows``.

    Every row has as many values as ``head`` names columns, or ``columns`` picks
    them from each row: the rows are then taken as they are, not copied into a
    tuple each first (thousands of tuples alive at once start a pass of the
    garbage collector, which stalls every thread of the host).
    """
    rows = list(rows)
    if not rows:
        return
    width = len(rows[0] if columns is None else rows[0][columns])
    step = max(1, min(_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    at = 0
    for size in _sizes(len(rows), step):
        part = rows[at : at + size]
        at += size
        values = part if columns is None else (row[columns] for row in part)
        conn.execute(head + _values(width, size), list(chain.from_iterable(values)))


def _sizes(count: int, step: int) -> Iterator[int]:
    """Split ``count`` into ``step``s, then the rest into powers of two, largest first."""
    full, rest = divmod(count, step)
    yield from [step] * full
    power = 1 << rest.bit_length()
    while rest:
        power >>= 1
        if rest & power:
            yield power
            rest -= power


@functools.lru_cache(maxsize=64)
def _values(width: int, count: int) -> str:
    """`` VALUES (?, ?), (?, ?)...``: ``count`` rows of ``width`` marks."""
    row = "(" + ", ".join("?" * width) + ")"
    return " VALUES " + ", ".join([row] * count)


def each_in(
    conn: sqlite3.Connection, head: str, values: Sequence[Any], size: int = 500
) -> Iterator[sqlite3.Cursor]:
    """Run ``head`` followed by `` IN (?, ...)`` for ``values``, ``size`` at a time.

    One statement per ``size`` values rather than one per value (see the module's
    docstring); yields each statement's cursor, read before the next one runs.
    """
    at = 0
    for count in _sizes(len(values), size):
        part = values[at : at + count]
        at += count
        yield conn.execute(f"{head} IN ({', '.join('?' * count)})", part)
