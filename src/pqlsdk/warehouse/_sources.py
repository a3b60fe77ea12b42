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

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import attrs
from sqlglot import exp

from .._exceptions import ConfigError
from .._formats import sniff
from . import _duckdb
from ._layouts import _layout
from ._tables import (
    _JSON_FIELDS,
    _ORDER,
    FIELDS,
    _column,
    _instant,
    _json,
    _Table,
    _Tables,
    _text,
)
from ._values import template

__all__ = ["FIELDS", "LAYOUTS", "Source", "columns_option", "messages"]

_ALSO: Final = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "messageId": "message_id",
    "groupId": "group_id",
}
"""A field's column when the source writes names in snake_case (warehouse exports do)."""

LAYOUTS: Final = ("segment", "rudderstack")
"""Warehouse layouts read as they are: both write the same tables and columns."""


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
