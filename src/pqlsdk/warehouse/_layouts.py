"""Segment's and RudderStack's warehouse layouts, read as they are, as one relation of messages.

``identifies``, ``groups`` and ``tracks`` (one column per trait or property),
and one table per event holding that event's properties: each row becomes the
message it was, in the order Segment or RudderStack received them
(``received_at``). Both write the same tables and columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlglot import exp

from .._exceptions import ConfigError
from ._tables import _JSON_FIELDS, _ORDER, FIELDS, _column, _instant, _Table, _Tables, _text
from ._values import literal, template

__all__: list[str] = []


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
