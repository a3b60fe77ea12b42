"""Sources of messages for the duckdb engine: the files and tables users already have.

Every source becomes the relation ``messages`` the compiled query reads (``seq``,
``type``, ``userId``, ``anonymousId``, ``messageId``, ``groupId``, ``event``,
``timestamp`` as ISO text, ``properties`` and ``traits`` as JSON), built as a
syntax tree: a column name read from a file enters the query as a quoted
identifier and a path as a literal, never as pasted text.

- JSON Lines, gzip JSON Lines, a scenario document: ``_duckdb.source``.
- A Parquet file, a folder of Parquet files, a CSV export, a table of a DuckDB
  or SQLite database, each holding one message a row (properties and traits as
  JSON, or JSON text): ``--column FIELD=COLUMN`` names the columns that differ.
- Segment's and RudderStack's warehouse layout (``identifies``, ``groups``,
  ``tracks`` and one table per event, a column per trait or property) in a
  DuckDB or SQLite database or a folder of Parquet files: ``--layout``.

Arrival order (``seq``, which breaks ties between equal timestamps: the later
arrival wins) is a ``seq`` column where the source has one (or the column
``--column seq=COL`` names), else the order of the source itself: the rows of a
file in file order (files of a folder by name), a DuckDB table's ``rowid``, a
SQLite table's ``rowid``. In the layouts it is ``received_at``, when Segment or
RudderStack received the message.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import attrs
import msgspec
from sqlglot import exp

from .._exceptions import ConfigError
from .._formats import sniff
from . import _duckdb
from ._values import literal, select, template

__all__ = ["FIELDS", "LAYOUTS", "Source", "columns_option", "messages"]

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

_ALSO: Final = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "messageId": "message_id",
    "groupId": "group_id",
}
"""A field's column when the source writes names in snake_case (warehouse exports do)."""

_JSON_FIELDS: Final = frozenset({"properties", "traits"})

LAYOUTS: Final = ("segment", "rudderstack")
"""Warehouse layouts read as they are: both write the same tables and columns."""

_ORDER: Final = "__pqlsdk_order"
"""The column each raw table adds: its own order (file order, ``rowid``)."""

_SOURCE: Final = "pqlsdk_source"
"""The name an attached database file takes in the connection."""

_ISO: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


@attrs.frozen
class Source:
    """Where the messages are, and how to read them (the ``pqlsdk score`` options)."""

    path: Path
    table: str | None = None
    """A database's table of messages (``--table``), ``schema.table`` allowed."""
    layout: str | None = None
    """``segment`` or ``rudderstack``: read the warehouse layout (``--layout``)."""
    schema: str | None = None
    """The layout's schema in a DuckDB database (Segment names it after the source)."""
    columns: Mapping[str, str] = attrs.field(factory=dict)
    """Field -> column, for a source whose names differ (``--column``)."""


def columns_option(values: Sequence[str]) -> dict[str, str]:
    """Read ``--column FIELD=COLUMN`` options; an unknown field is a ``ConfigError``."""
    mapping: dict[str, str] = {}
    for value in values:
        field, equals, column = value.partition("=")
        if not equals or not field or not column:
            raise ConfigError(f"--column {value!r}: write FIELD=COLUMN, as userId=uid")
        if field not in FIELDS:
            raise ConfigError(
                f"--column {value!r}: {field!r} is not a message field; "
                f"the fields are {', '.join(FIELDS)}"
            )
        mapping[field] = column
    return mapping


@attrs.frozen
class _Table:
    """One table's rows as read (``query``, with its order in ``_ORDER``) and its columns."""

    query: exp.Select
    types: dict[str, str]
    """Column name -> DuckDB type, in the table's order, ``_ORDER`` left out."""


@contextmanager
def messages(connection: Any, source: Source) -> Iterator[tuple[exp.Expr, str | None]]:
    """Yield ``source``'s messages as a relation over ``connection``, and the file's own ``now``.

    Databases are attached to ``connection`` read-only; a SQLite table is copied
    to a temporary JSON Lines file first (DuckDB's SQLite reader is an extension
    that is downloaded, where this needs nothing but the Python standard library).
    """
    kind = sniff(source.path)
    if kind == "json":
        if source.layout or source.table or source.columns:
            raise ConfigError(
                f"{source.path}: --layout, --table and --column read Parquet, CSV, DuckDB and "
                "SQLite sources; a JSON file holds Segment messages as they are"
            )
        with _duckdb.source(source.path) as found:
            yield found
        return
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pqlsdk-")))
        tables = _Tables(connection, source, kind, folder)
        if source.layout is not None:
            if source.columns:
                raise ConfigError("--column maps a table of messages; a --layout has its names")
            yield _layout(tables), None
        else:
            yield _shaped(tables.messages(), source.columns, str(source.path)), None


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


def _shaped(table: _Table, mapping: Mapping[str, str], where: str) -> exp.Expr:
    """Select ``table``'s rows as messages, each field from its column (``mapping`` first)."""
    by_lower = {name.lower(): name for name in table.types}
    for field, column in mapping.items():
        if column not in table.types:
            raise ConfigError(
                f"--column {field}={column}: {where} has no column {column!r} "
                f"(its columns: {', '.join(table.types)})"
            )
    found: dict[str, str | None] = {}
    for field in FIELDS:
        if field in mapping:
            found[field] = mapping[field]
            continue
        names = (field.lower(), _ALSO.get(field, "").lower())
        found[field] = next((by_lower[n] for n in names if n in by_lower), None)
    missing = [f for f in ("type", "timestamp") if found[f] is None]
    if found["userId"] is None and found["anonymousId"] is None:
        missing.append("userId or anonymousId")
    if missing:
        raise ConfigError(
            f"{where} has no column for {', '.join(missing)} (its columns: "
            f"{', '.join(table.types)}); name them with --column FIELD=COLUMN"
        )
    fields: list[exp.Expr] = []
    for field in FIELDS[1:]:
        name = found[field]
        if name is None:
            value: exp.Expr = exp.Null()
        elif field in _JSON_FIELDS:
            value = _json(name, table.types[name])
        elif field == "timestamp":
            value = _instant(name, table.types[name], naive_is_utc=False)
        else:
            value = _text(name, table.types[name])
        kind = "JSON" if field in _JSON_FIELDS else "VARCHAR"
        fields.append(exp.alias_(exp.cast(value, kind), field, quoted=True))
    order: list[exp.Expr] = [exp.column(_ORDER)]
    if found["seq"] is not None:
        order.insert(0, _column(found["seq"]))
    seq = template(
        "ROW_NUMBER() OVER (ORDER BY :o)",
        o=exp.Tuple(expressions=order) if len(order) > 1 else order[0],
    )
    return exp.select(exp.alias_(seq, "seq"), *fields).from_(
        exp.Subquery(this=table.query, alias=exp.TableAlias(this=exp.to_identifier("r")))
    )


_STANDARD: Final = frozenset(
    {
        "id",
        "anonymous_id",
        "user_id",
        "group_id",
        "event",
        "event_text",
        "timestamp",
        "original_timestamp",
        "sent_at",
        "received_at",
        "uuid",
        "uuid_ts",
        "loaded_at",
        "channel",
        "context",
    }
)
"""Columns both layouts write on every table; every other column is a trait or property."""

_CALLS: Final = ("identifies", "groups", "tracks")
_OTHER: Final = frozenset({"users", "accounts", "pages", "screens", "aliases"})
"""Tables of the layouts that hold no message pqlsdk scores, nor an event's properties."""


def _custom(table: _Table) -> list[str]:
    return [
        name
        for name in table.types
        if name.lower() not in _STANDARD and not name.lower().startswith("context_")
    ]


def _object(table: _Table, names: Sequence[str]) -> exp.Expr:
    """Gather columns ``names`` in one JSON object, leaving out NULL (it was not sent)."""
    if not names:
        return template("CAST('{}' AS JSON)")
    pairs: list[exp.Expr] = []
    for name in names:
        pairs += [literal(name), _column(name)]
    built = exp.Anonymous(this="json_object", expressions=pairs)
    # Patching {} drops the members whose value is null: a column is NULL where the
    # message had no such trait or property (the layouts keep no other trace of it).
    return template("json_merge_patch(CAST('{}' AS JSON), :o)", o=built)


def _layout(tables: _Tables) -> exp.Expr:
    """Segment's (or RudderStack's) tables as one relation of messages, in arrival order."""
    names = tables.names()
    lowered = {name.lower(): name for name in names}
    calls = {call: tables.table(lowered[call], names) for call in _CALLS if call in lowered}
    if not calls:
        raise ConfigError(
            f"{tables.source.path} has none of the tables {', '.join(_CALLS)} of a "
            f"{tables.source.layout} layout (its tables: {', '.join(names) or 'none'})"
        )
    parts: list[exp.Select] = []
    for rank, (call, table) in enumerate(calls.items()):
        kind = {"identifies": "identify", "groups": "group", "tracks": "track"}[call]
        parts.append(_calls(tables, table, kind, rank, names))
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    seq = template("ROW_NUMBER() OVER (ORDER BY __received NULLS LAST, __rank, __pqlsdk_order)")
    return exp.select(
        exp.alias_(seq, "seq"), *(exp.column(f, quoted=True) for f in FIELDS[1:])
    ).from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("calls"))))


def _calls(
    tables: _Tables, table: _Table, kind: str, rank: int, names: Sequence[str]
) -> exp.Select:
    """One layout table's rows as messages of type ``kind``, with their arrival time."""
    lower = {name.lower(): name for name in table.types}

    def text(name: str) -> exp.Expr:
        found = lower.get(name)
        return exp.Null() if found is None else _text(found, table.types[found])

    def instant(name: str) -> exp.Expr:
        found = lower.get(name)
        if found is None:
            return exp.Null()
        return _instant(found, table.types[found], naive_is_utc=True)

    custom = _object(table, _custom(table))
    properties: exp.Expr = exp.Null()
    traits: exp.Expr = custom
    event: exp.Expr = exp.Null()
    joined = None
    if kind == "track":
        traits = exp.Null()
        event = exp.func("COALESCE", text("event_text"), text("event"))
        properties = custom
        if "id" in lower and "event" in lower:
            joined = _event_properties(tables, names)
        if joined is not None:
            properties = template(
                "json_merge_patch(:own, COALESCE(p.__properties, CAST('{}' AS JSON)))", own=custom
            )
    values: dict[str, exp.Expr] = {
        "type": literal(kind),
        "userId": text("user_id"),
        "anonymousId": text("anonymous_id"),
        "messageId": text("id"),
        "groupId": text("group_id") if kind == "group" else exp.Null(),
        "event": event,
        "timestamp": instant("timestamp"),
        "properties": properties,
        "traits": traits,
    }
    columns = [
        exp.alias_(
            exp.cast(value, "JSON" if field in _JSON_FIELDS else "VARCHAR"), field, quoted=True
        )
        for field, value in values.items()
    ]
    received = instant("received_at")
    extra = [
        exp.alias_(template("TRY_CAST(:r AS TIMESTAMPTZ)", r=received), "__received"),
        exp.alias_(literal(rank), "__rank"),
        exp.alias_(exp.column(_ORDER, table="r"), _ORDER),
    ]
    query = exp.select(*columns, *extra).from_(
        exp.Subquery(this=table.query, alias=exp.TableAlias(this=exp.to_identifier("r")))
    )
    if joined is not None:
        on = template("p.__event = :event AND p.__id = :id", event=text("event"), id=text("id"))
        query = query.join(
            exp.Subquery(this=joined, alias=exp.TableAlias(this=exp.to_identifier("p"))),
            on=on,
            join_type="left",
        )
    return query


def _event_properties(tables: _Tables, names: Sequence[str]) -> exp.Expr | None:
    """Every event table's properties by (table name, id): each track's custom columns.

    The ``tracks`` table holds the columns common to all events; each event's
    properties are columns of the table named after it (``order_completed``),
    whose ``event`` column names that table and whose ``id`` is the message's.
    """
    parts: list[exp.Expr] = []
    for name in names:
        if name.lower() in _CALLS or name.lower() in _OTHER:
            continue
        table = tables.table(name, names)
        lower = {column.lower(): column for column in table.types}
        if "id" not in lower or "event" not in lower:
            continue  # not an event table: some other table kept beside them
        parts.append(
            exp.select(
                exp.alias_(literal(name), "__event"),
                exp.alias_(_text(lower["id"], table.types[lower["id"]]), "__id"),
                exp.alias_(_object(table, _custom(table)), "__properties"),
            ).from_(_aliased(table.query, "e"))
        )
    if not parts:
        return None
    union: exp.Expr = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    # One row per message: a table written twice (a retried load) repeats ids.
    return (
        exp.select("*")
        .from_(_aliased(union, "u"))
        .qualify(template("ROW_NUMBER() OVER (PARTITION BY __event, __id) = 1"))
    )


def _aliased(query: exp.Expr, name: str) -> exp.Subquery:
    return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(name)))
