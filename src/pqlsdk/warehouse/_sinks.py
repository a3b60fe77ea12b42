"""Where scores go besides the terminal: Parquet or CSV files, and a table for a CRM sync.

One row per subject and model: ``subject``, ``id``, ``model``, ``score``,
``tier``, ``route``, ``reasons`` (JSON: each signal's points, whether it fired
and what it observed) and ``scored_at``, the evaluation time. The PostgreSQL
engine writes the same rows, so a sync job reads one shape whichever engine ran.

A file is written beside its destination and renamed over it; a table is
replaced in one transaction (``CREATE OR REPLACE`` and every row, then
``COMMIT``): a reader sees the old rows or the new ones, never a part, and a
write that fails leaves the old table as it was. The table is written into a
DuckDB file or, the same way, into a SQLite file (with Python's own
``sqlite3``: its columns ``TEXT`` and ``REAL``, ``reasons`` JSON text and
``scored_at`` ISO-8601 text, as SQLite keeps JSON and instants).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import sqlglot
from sqlglot import exp

from .._exceptions import ConfigError
from .._formats import sniff
from .._scoring import AccountScore, Score
from . import _duckdb
from ._values import literal, select

__all__ = ["COLUMNS", "rows", "write_file", "write_scores", "write_table"]

COLUMNS: Final = (
    ("subject", "VARCHAR"),
    ("id", "VARCHAR"),
    ("model", "VARCHAR"),
    ("score", "DOUBLE"),
    ("tier", "VARCHAR"),
    ("route", "VARCHAR"),
    ("reasons", "JSON"),
    ("scored_at", "TIMESTAMPTZ"),
)
"""The rows' columns and their DuckDB types."""

_SQLITE_TYPES: Final = {"VARCHAR": "TEXT", "DOUBLE": "REAL", "JSON": "TEXT", "TIMESTAMPTZ": "TEXT"}
"""Each DuckDB type's SQLite column type: JSON and instants are text there."""

_BATCH: Final = 50_000
"""Rows handed to DuckDB at a time (through a JSON Lines file, DuckDB's fastest reader)."""

_FORMATS: Final = {".parquet": "parquet", ".csv": "csv"}

_COPY: Final = {
    "parquet": "COPY (SELECT * FROM scores ORDER BY subject DESC, id) TO 'x' (FORMAT parquet)",
    "csv": "COPY (SELECT * FROM scores ORDER BY subject DESC, id) TO 'x' (FORMAT csv, HEADER)",
}
"""Users first, then accounts, each by id (a file that diffs well); the path set after."""


def rows(users: Iterable[Score], accounts: Iterable[AccountScore]) -> Iterator[dict[str, Any]]:
    """One row per user under the model, then one per account its own model scored."""
    for score in users:
        yield _row(score)
    for account in accounts:
        if account.score is not None:
            yield _row(account.score)


def _row(score: Score) -> dict[str, Any]:
    return {
        "subject": score.subject,
        "id": score.id,
        "model": score.model,
        "score": score.score,
        "tier": score.tier,
        "route": score.route,
        "reasons": score.to_dict()["reasons"],
        "scored_at": score.at.isoformat(),
    }


def _types() -> exp.Expr:
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.Literal.string(name), expression=exp.Literal.string(kind))
            for name, kind in COLUMNS
        ]
    )


def _insert(connection: Any, table: exp.Table, batch: list[dict[str, Any]], folder: Path) -> None:
    lines = folder / "rows.jsonl"
    encode = msgspec.json.Encoder().encode
    lines.write_bytes(b"".join(encode(row) + b"\n" for row in batch))
    query = select(
        "SELECT * FROM read_json(:path, format := 'newline_delimited', columns := :types)",
        path=literal(str(lines)),
        types=_types(),
    )
    connection.execute(exp.insert(query, table).sql("duckdb"))


def _fill(connection: Any, table: exp.Table, scored: Iterable[dict[str, Any]]) -> None:
    """Create ``table`` (replacing it) and insert every row, batch by batch."""
    schema = exp.Schema(
        this=table,
        expressions=[
            exp.ColumnDef(this=exp.to_identifier(name), kind=exp.DataType.build(kind))
            for name, kind in COLUMNS
        ],
    )
    connection.execute(exp.Create(this=schema, kind="TABLE", replace=True).sql("duckdb"))
    with tempfile.TemporaryDirectory(prefix="pqlsdk-") as folder:
        iterator = iter(scored)
        while batch := list(itertools.islice(iterator, _BATCH)):
            _insert(connection, table, batch, Path(folder))


def _count(connection: Any, table: exp.Table) -> int:
    counted = connection.execute(exp.select("count(*)").from_(table).sql("duckdb")).fetchone()
    return int(counted[0])


def write_file(path: Path, scored: Iterable[dict[str, Any]]) -> int:
    """Write the rows to ``path`` (``.parquet`` or ``.csv``); return how many."""
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"--output {path}: scores are written to FILE.parquet or FILE.csv")
    connection = _duckdb.connect()
    temporary = path.with_name(f".{path.name}.pqlsdk-{os.getpid()}")
    try:
        table = exp.to_table("scores")
        _fill(connection, table, scored)
        copy = sqlglot.parse_one(_COPY[kind], read="duckdb")
        copy.set("files", [literal(str(temporary))])
        connection.execute(copy.sql("duckdb"))
        count = _count(connection, table)
        os.replace(temporary, path)
    except Exception as exc:  # duckdb's errors and the rename's: a folder that is not there
        raise ConfigError(f"cannot write {str(path)!r}: {exc}") from exc
    finally:
        connection.close()
        temporary.unlink(missing_ok=True)
    return count


def _table_name(name: str) -> exp.Table:
    parts = name.split(".")
    if not all(parts) or len(parts) > 3:
        raise ConfigError(f"--into {name!r}: name a table, as scores or crm.scores")
    names = [exp.to_identifier(part, quoted=True) for part in parts]
    return exp.Table(
        this=names[-1],
        db=names[-2] if len(names) > 1 else None,
        catalog=names[-3] if len(names) > 2 else None,
    )


def write_table(database: Path, name: str, scored: Iterable[dict[str, Any]]) -> int:
    """Replace table ``name`` of the DuckDB or SQLite file ``database`` with the rows, atomically.

    A file that does not exist yet becomes a DuckDB database.
    """
    table = _table_name(name)
    kind = sniff(database) if database.exists() else "duckdb"
    if kind == "sqlite":
        return _write_sqlite(database, name, table, scored)
    if kind != "duckdb":
        # DuckDB opens some other files too (and would keep the table in memory only).
        raise ConfigError(f"--into {name}: {str(database)!r} is not a DuckDB or SQLite database")
    try:
        import duckdb  # noqa: PLC0415 - the warehouse extra, loaded on use

        connection = duckdb.connect(str(database))
    except Exception as exc:  # duckdb's errors: not a database, locked by another process
        raise ConfigError(f"--into {name}: cannot open {str(database)!r}: {exc}") from exc
    try:
        connection.execute("BEGIN TRANSACTION")
        try:
            _fill(connection, table, scored)
            count = _count(connection, table)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except Exception as exc:  # duckdb's errors: a schema that does not exist, mostly
        raise ConfigError(f"--into {name}: {exc}") from exc
    finally:
        connection.close()
    return count


def _write_sqlite(
    database: Path, name: str, table: exp.Table, scored: Iterable[dict[str, Any]]
) -> int:
    """Replace ``table`` of the SQLite file ``database``: drop, create, insert, in one transaction.

    SQLite's schema changes are part of its transactions: a reader sees the old
    table or the new one, and a write that fails (or is interrupted) leaves the
    old one. ``name`` may name an attached schema only as ``main``.
    """
    if table.catalog:
        raise ConfigError(f"--into {name!r}: a SQLite table is named as scores or main.scores")
    schema = exp.Schema(
        this=table,
        expressions=[
            exp.ColumnDef(
                this=exp.to_identifier(column), kind=exp.DataType.build(_SQLITE_TYPES[kind])
            )
            for column, kind in COLUMNS
        ],
    )
    insert = exp.insert(
        exp.Values(expressions=[exp.Tuple(expressions=[exp.Placeholder() for _ in COLUMNS])]),
        table,
    )
    encode = msgspec.json.Encoder().encode
    try:
        # Autocommit: the transaction below is the statements' own, begun and ended here.
        db = sqlite3.connect(database, isolation_level=None)
    except sqlite3.Error as exc:  # pragma: no cover - sniff() saw a SQLite header
        raise ConfigError(f"--into {name}: cannot open {str(database)!r}: {exc}") from exc
    try:
        db.execute("BEGIN IMMEDIATE")  # the write lock now: no reader's snapshot to upgrade
        try:
            db.execute(exp.Drop(tables=[table.copy()], kind="TABLE", exists=True).sql("sqlite"))
            db.execute(exp.Create(this=schema, kind="TABLE").sql("sqlite"))
            iterator = iter(scored)
            while batch := list(itertools.islice(iterator, _BATCH)):
                db.executemany(
                    insert.sql("sqlite"),
                    (
                        tuple(
                            encode(row[column]).decode() if kind == "JSON" else row[column]
                            for column, kind in COLUMNS
                        )
                        for row in batch
                    ),
                )
            counted = db.execute(exp.select("count(*)").from_(table).sql("sqlite")).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:  # a schema other than main, a locked or read-only file
        raise ConfigError(f"--into {name}: {exc}") from exc
    finally:
        db.close()
    return int(counted[0])


def into_database(events: Path, into: str, database: Path | None) -> Path:
    """Return the file ``--into`` writes to: ``database``, else the messages' own database.

    Checked before scoring too, so that a missing ``--database`` is said at once.
    """
    if database is not None:
        return database
    if sniff(events) not in ("duckdb", "sqlite"):
        raise ConfigError(
            f"--into {into}: the messages are not in a DuckDB or SQLite database; "
            "name one with --database FILE"
        )
    return events


def write_scores(
    events: Path,
    users: Iterable[Score],
    accounts: Iterable[AccountScore],
    *,
    output: Path | None,
    into: str | None,
    database: Path | None,
) -> list[str]:
    """Write ``pqlsdk score``'s ``--output`` and ``--into``; return what was written, to say.

    ``--into`` writes into ``database``, else into ``events`` when the messages
    came from a DuckDB or SQLite database.
    """
    said = []
    if output is not None:
        count = write_file(output, rows(users, accounts))
        said.append(f"wrote {count} score(s) to {output}")
    if into is not None:
        database = into_database(events, into, database)
        count = write_table(database, into, rows(users, accounts))
        said.append(f"wrote {count} score(s) into {into} of {database}")
    return said
