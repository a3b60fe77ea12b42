"""The tables of a source of messages, read on demand, and their columns read as message fields.

A Parquet file or folder, a CSV export, a table of a DuckDB database (attached
read-only) or of a SQLite database (copied to JSON Lines, each column as JSON):
each becomes a ``SELECT`` with the source's own order (``_ORDER``) and the types
of its columns, for ``_sources`` (a table of messages) and ``_layouts`` (the
warehouse layouts) to shape into the relation ``messages``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import msgspec
from sqlglot import exp

from .._exceptions import ConfigError
from ._values import literal, select, template

if TYPE_CHECKING:
    from ._sources import Source

__all__ = ["FIELDS"]

FIELDS: Final = (
    "seq",
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "groupId",
    "event",
    "timestamp",
    "properties",
    "traits",
)
"""The fields of a message row, as ``--column`` names them."""
_JSON_FIELDS: Final = frozenset({"properties", "traits"})

_ORDER: Final = "__pqlsdk_order"
"""The column each raw table adds: its own order (file order, ``rowid``)."""

_SOURCE: Final = "pqlsdk_source"
"""The name an attached database file takes in the connection."""

_ISO: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


@attrs.frozen
class _Table:
    """One table's rows as read (``query``, with its order in ``_ORDER``) and its columns."""

    query: exp.Select
    types: dict[str, str]
    """Column name -> DuckDB type, in the table's order, ``_ORDER`` left out."""


class _Tables:
    """The tables of one source, read on demand: by name in a database or folder."""

    def __init__(self, connection: Any, source: Source, kind: str, folder: Path) -> None:
        self.connection = connection
        self.source = source
        self.kind = kind
        self.folder = folder
        if kind == "duckdb":
            attach = exp.Attach(
                this=exp.alias_(literal(str(source.path)), _SOURCE),
                expressions=[exp.AttachOption(this=exp.var("READ_ONLY"))],
            )
            _run(connection, attach)

    def names(self) -> list[str]:
        """List the tables (and views) of the database or folder, as named in it."""
        if self.kind == "duckdb":
            rows = _run(
                self.connection,
                select(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_catalog = :catalog AND table_schema = :schema "
                    "ORDER BY table_name",
                    catalog=literal(_SOURCE),
                    schema=literal(self.source.schema or "main"),
                ),
            ).fetchall()
            return [row[0] for row in rows]
        if self.kind == "sqlite":
            with _sqlite(self.source.path) as db:
                rows = db.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                ).fetchall()
            return [str(row[0]) for row in rows]
        if self.kind == "folder":
            found = {p.stem for p in self.source.path.glob("*.parquet")}
            found |= {p.name for p in self.source.path.iterdir() if p.is_dir()}
            return sorted(found)
        raise ConfigError(
            f"{self.source.path}: a --layout is read from a DuckDB or SQLite database or a "
            f"folder of Parquet files, not a {self.kind} file"
        )

    def messages(self) -> _Table:
        """Read the one table of messages: the file itself, or the database's ``--table``."""
        path = self.source.path
        if self.kind in ("parquet", "csv", "folder"):
            if self.source.table is not None:
                raise ConfigError(f"--table names a database's table; {path} is a {self.kind}")
            if self.kind == "csv":
                return self._csv(path)
            files = [path] if self.kind == "parquet" else sorted(path.glob("*.parquet"))
            if not files:
                raise ConfigError(f"{path}: a folder of messages holds *.parquet files; none")
            return self._parquet(files)
        names = self.names()
        table = self.source.table
        if table is None:
            if len(names) != 1:
                listed = ", ".join(names) or "none"
                raise ConfigError(
                    f"{path}: name the table of messages with --table (its tables: {listed})"
                )
            table = names[0]
        return self.table(table, names)

    def table(self, name: str, names: Sequence[str] | None = None) -> _Table:
        """Read table ``name`` of the database or folder; a ``ConfigError`` if there is none."""
        known = self.names() if names is None else names
        schema, _, bare = name.rpartition(".")
        if self.kind == "duckdb" and schema:
            return self._duckdb(schema, bare)
        if name not in known:
            listed = ", ".join(known) or "none"
            raise ConfigError(f"{self.source.path} has no table {name!r} (its tables: {listed})")
        if self.kind == "duckdb":
            return self._duckdb(self.source.schema or "main", name)
        if self.kind == "sqlite":
            return self._sqlite(name)
        inside = self.source.path / name
        files = [inside.with_suffix(".parquet")] if not inside.is_dir() else []
        files += sorted(inside.rglob("*.parquet")) if inside.is_dir() else []
        return self._parquet(files)

    def _parquet(self, files: Sequence[Path]) -> _Table:
        query = select(
            "SELECT * EXCLUDE (__pqlsdk_file, file_row_number), "
            "(__pqlsdk_file, file_row_number) AS __pqlsdk_order "
            "FROM read_parquet(:files, filename := '__pqlsdk_file', file_row_number := TRUE, "
            "union_by_name := TRUE)",
            files=exp.Array(expressions=[literal(str(file)) for file in files]),
        )
        return self._described(query)

    def _csv(self, path: Path) -> _Table:
        # Every column as text, as written: a userId "007" stays "007", a naive
        # timestamp stays naive (and is refused, as the python engine refuses it).
        query = select(
            "SELECT * EXCLUDE (ordinality), ordinality AS __pqlsdk_order "
            "FROM read_csv(:path, all_varchar := TRUE, header := TRUE) WITH ORDINALITY",
            path=literal(str(path)),
        )
        return self._described(query)

    def _duckdb(self, schema: str, name: str) -> _Table:
        where = exp.Table(
            this=exp.to_identifier(name, quoted=True),
            db=exp.to_identifier(schema, quoted=True),
            catalog=exp.to_identifier(_SOURCE),
        )
        kinds = _run(
            self.connection,
            select(
                "SELECT table_type FROM information_schema.tables WHERE table_catalog = :c "
                "AND table_schema = :s AND table_name = :n",
                c=literal(_SOURCE),
                s=literal(schema),
                n=literal(name),
            ),
        ).fetchall()
        if not kinds:
            raise ConfigError(f"{self.source.path} has no table {schema}.{name}")
        # A table's rowid is its insertion order; a view has none: its rows' order.
        order = "rowid" if kinds[0][0] == "BASE TABLE" else "ROW_NUMBER() OVER ()"
        query = exp.select("*", exp.alias_(template(order), _ORDER)).from_(where)
        return self._described(query)

    def _sqlite(self, name: str) -> _Table:
        lines = self.folder / f"{len(list(self.folder.iterdir()))}.jsonl"
        with _sqlite(self.source.path) as db, lines.open("wb") as out:
            quoted = '"' + name.replace('"', '""') + '"'  # a name read from the file itself
            try:
                cursor = db.execute(f"SELECT * FROM {quoted} ORDER BY rowid")  # noqa: S608
            except sqlite3.OperationalError:  # a table WITHOUT ROWID (or a view of several)
                cursor = db.execute(f"SELECT * FROM {quoted}")  # noqa: S608
            names = [column[0] for column in cursor.description]
            encode = msgspec.json.Encoder().encode
            for row in cursor:
                out.write(encode(dict(zip(names, row, strict=True))) + b"\n")
        # Each column as JSON: SQLite's values keep their kind (a number, a string).
        types = exp.Struct(
            expressions=[
                exp.PropertyEQ(this=exp.Literal.string(n), expression=exp.Literal.string("JSON"))
                for n in names
            ]
        )
        query = select(
            "SELECT * EXCLUDE (ordinality), ordinality AS __pqlsdk_order "
            "FROM read_json(:path, format := 'newline_delimited', columns := :types) "
            "WITH ORDINALITY",
            path=literal(str(lines)),
            types=types,
        )
        return self._described(query)

    def _described(self, query: exp.Select) -> _Table:
        rows = _run(self.connection, exp.Describe(this=query)).fetchall()
        types = {str(row[0]): str(row[1]) for row in rows if row[0] != _ORDER}
        return _Table(query, types)


@contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:  # pragma: no cover - sniff() saw a SQLite header
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from exc
    try:
        yield db
    finally:
        db.close()


def _run(connection: Any, statement: exp.Expr) -> Any:
    try:
        return connection.execute(statement.sql("duckdb"))
    except Exception as exc:  # duckdb's errors: a file it cannot read, mostly
        raise ConfigError(f"duckdb could not read the messages: {exc}") from exc


def _column(name: str) -> exp.Expr:
    return exp.column(name, quoted=True)


def _text(name: str, kind: str) -> exp.Expr:
    """Read a column as text: JSON strings unquoted, other kinds as DuckDB prints them."""
    if kind == "VARCHAR":
        return _column(name)
    if kind == "JSON":
        return template(":c ->> '$'", c=_column(name))
    return exp.cast(_column(name), "VARCHAR")


def _instant(name: str, kind: str, *, naive_is_utc: bool) -> exp.Expr:
    """Read a timestamp column as ISO text with its zone, as the compiled query reads it.

    A typed timestamp without a zone is UTC: what Segment and RudderStack write
    and what a warehouse column holds. A text timestamp is kept as written in a
    table of messages (a naive one is refused, as the python engine refuses it);
    in the layouts, text without a zone is UTC as well.
    """
    column = _column(name)
    if kind.startswith("TIMESTAMP WITH TIME ZONE"):
        return template("strftime(timezone('UTC', :c), :f)", c=column, f=literal(_ISO))
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return template("strftime(CAST(:c AS TIMESTAMP), :f)", c=column, f=literal(_ISO))
    text = _text(name, kind)
    if not naive_is_utc:
        return text
    return template(
        "COALESCE(strftime(timezone('UTC', TRY_CAST(:t AS TIMESTAMPTZ)), :f), :t)",
        t=text,
        f=literal(_ISO),
    )


def _json(name: str, kind: str) -> exp.Expr:
    """Read properties or traits as JSON: JSON as is, text parsed, other kinds converted."""
    if kind == "JSON":  # JSON text held as a JSON string (SQLite's TEXT) is parsed
        return template(
            "CASE WHEN json_type(:c) = 'VARCHAR' THEN CAST(:c ->> '$' AS JSON) ELSE :c END",
            c=_column(name),
        )
    if kind == "VARCHAR":
        return exp.cast(_column(name), "JSON")
    return exp.Anonymous(this="to_json", expressions=[_column(name)])
