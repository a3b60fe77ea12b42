"""PostgreSQL: the compiled queries run in the database that holds the messages.

Two layouts of a table of messages are read as they are (``relation``):

- the collector's own (``pqlsdk collector``'s ``messages``: ``message_id``,
  ``type``, ``user_id``, ``received_at``, the message as JSON in ``body``),
  in arrival order: ``received_at``, then ``message_id``;
- a table with one column per field of a Segment message: ``type``,
  ``userId``, ``anonymousId``, ``messageId``, ``groupId``, ``event``,
  ``timestamp`` (text, or ``timestamptz``), ``properties`` and ``traits``
  (``json``, ``jsonb`` or text), and an optional ``seq`` (the arrival order;
  without it, ``timestamp`` then ``messageId``). A missing column is NULL.

Scoring runs in one transaction that is rolled back: its temporary tables
leave nothing behind. ``write_scores`` replaces a table of scores in one
transaction, so a reader (a CRM sync) sees the old rows or the new, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, cast

import msgspec
from sqlglot import exp

from .._exceptions import ConfigError
from .._scoring import AccountScore, Score
from ..rules._model import Rules
from ._compile import compile_plan
from ._dialect_postgres import POSTGRES
from ._run import run
from ._score import Scored, scored_rows
from ._sinks import rows
from ._values import template

__all__ = ["SCORE_COLUMNS", "connect", "relation", "score_table", "write_scores"]

SCORE_COLUMNS: Final = (
    ("subject", "TEXT"),
    ("id", "TEXT"),
    ("model", "TEXT"),
    ("score", "DOUBLE PRECISION"),
    ("tier", "TEXT"),
    ("route", "TEXT"),
    ("reasons", "JSON"),
    ("scored_at", "TIMESTAMPTZ"),
)
"""The columns ``--into`` writes: one row per subject and model."""

_TEXT_FIELDS: Final = ("type", "userId", "anonymousId", "messageId", "groupId", "event")
_JSON_FIELDS: Final = ("properties", "traits")
_encode: Final = msgspec.json.Encoder().encode


def connect(dsn: str) -> Any:
    """Connect to ``dsn`` (a libpq URL); ``ConfigError`` naming the extra if psycopg is missing."""
    try:
        import psycopg  # noqa: PLC0415 - the postgres extra, loaded on use
        from psycopg.types.string import TextLoader  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise ConfigError(
            "the postgres engine needs psycopg: pip install 'pqlsdk[warehouse,postgres]'"
        ) from exc
    try:
        connection = psycopg.connect(dsn, connect_timeout=10)
    except psycopg.Error as exc:
        # libpq's primary message names the bad option or host, never the password.
        message = exc.diag.message_primary or str(exc)
        raise ConfigError(f"postgres: cannot connect: {message.strip()}") from exc
    # JSON as text: msgspec decodes it, as it decodes DuckDB's.
    connection.adapters.register_loader("json", TextLoader)
    return connection


def _table(name: str) -> exp.Table:
    """Read ``table`` or ``schema.table`` as PostgreSQL reads a name (never as SQL).

    A part that is a plain identifier folds to lower case, as unquoted; any
    other part is one quoted identifier, whatever it holds.
    """
    parts = name.split(".")
    if len(parts) > 2 or not all(parts):  # a schema and a table at most
        raise ConfigError(f"postgres: {name!r} is not a table name (TABLE or SCHEMA.TABLE)")
    *schema, table = parts
    return exp.Table(
        this=exp.to_identifier(table),
        db=exp.to_identifier(schema[0]) if schema else None,
    )


def relation(connection: Any, table: str = "messages") -> exp.Select:
    """Select the messages of ``table`` as rows of relation ``messages``, in arrival order."""
    target = _table(table)
    rows = connection.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (target.sql("postgres"),),
    ).fetchall()
    columns: dict[str, tuple[str, str]] = {name.lower(): (name, kind) for name, kind in rows}
    if not columns:
        raise ConfigError(f"postgres: no table {table!r} in the database's search path")
    if {"message_id", "received_at", "body"} <= columns.keys():
        return _collector(target)
    return _segment(target, columns)


def _collector(target: exp.Table) -> exp.Select:
    """Select the collector's ``messages``: each message's JSON ``body``, in arrival order."""
    select = template(
        """
        SELECT ROW_NUMBER() OVER (ORDER BY received_at, message_id COLLATE "C") AS seq,
            type, user_id AS "userId", anonymous_id AS "anonymousId",
            message_id AS "messageId", CAST(body AS JSON) ->> 'groupId' AS "groupId", event,
            CAST(body AS JSON) ->> 'timestamp' AS "timestamp",
            CAST(body AS JSON) -> 'properties' AS properties,
            CAST(body AS JSON) -> 'traits' AS traits
        FROM stored
        """,
        read="postgres",
    )
    return _from(select, target)


def _segment(target: exp.Table, columns: dict[str, tuple[str, str]]) -> exp.Select:
    """Select a table with a column per field of a Segment message (names in any case)."""

    def column(name: str) -> exp.Expr | None:
        found = columns.get(name.lower())
        return None if found is None else exp.column(found[0], quoted=True)

    def typed(name: str, kind: str) -> exp.Expr:
        found = column(name)
        return template(f"CAST(:c AS {kind})", c=found if found else exp.Null(), read="postgres")

    fields = [exp.alias_(typed(name, "TEXT"), name, quoted=True) for name in _TEXT_FIELDS]
    timestamp = column("timestamp")
    if timestamp is not None and columns["timestamp"][1] == "timestamp with time zone":
        # As the SDK writes it: RFC 3339 in UTC, to the microsecond.
        text = template(
            """to_char(:t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
            t=timestamp,
            read="postgres",
        )
    else:
        text = typed("timestamp", "TEXT")
    fields.append(exp.alias_(text, "timestamp", quoted=True))
    fields += [exp.alias_(typed(name, "JSON"), name) for name in _JSON_FIELDS]
    seq = column("seq")
    if seq is None:
        order = [timestamp or exp.Null(), column("messageId") or exp.Null()]
        seq = template(
            'ROW_NUMBER() OVER (ORDER BY :t, :m COLLATE "C")',
            t=order[0],
            m=order[1],
            read="postgres",
        )
    select = exp.select(exp.alias_(template("CAST(:s AS BIGINT)", s=seq), "seq"), *fields)
    return _from(select.from_("stored"), target)


def _from(select: exp.Expr, target: exp.Table) -> exp.Select:
    """``select`` reading ``target`` where it says ``stored``."""
    cast(exp.Table, select.find(exp.Table)).replace(target.copy())  # the only table
    return cast(exp.Select, select)


def score_table(
    rules: Rules, model: str, connection: Any, table: str = "messages", *, now: int
) -> Scored:
    """Score every user under ``model`` and every account of the messages in ``table``."""
    plan = compile_plan(rules, model, now=now, dialect=POSTGRES)
    # Rolled back: the temporary tables go with it.
    with connection.transaction(force_rollback=True):
        # Floats as their shortest exact text, whatever the server's default.
        connection.execute("SET LOCAL extra_float_digits = 1")
        ran = run(connection, plan, relation(connection, table), once=True)  # this run's plan
    return scored_rows(rules, model, ran, now=now)


def write_scores(
    connection: Any, into: str, users: Iterable[Score], accounts: Iterable[AccountScore]
) -> int:
    """Replace table ``into`` with one row per score (``_sinks.rows``), in one transaction.

    The table is created when missing (``SCORE_COLUMNS``, keyed by subject, id
    and model); its rows are deleted and written again before the commit.
    Return how many rows were written.
    """
    target = _table(into).sql("postgres")
    definition = ", ".join(f"{name} {kind} NOT NULL" for name, kind in SCORE_COLUMNS)
    names = [name for name, _ in SCORE_COLUMNS]
    written = 0
    with connection.transaction():
        # The names are the compiler's and a parsed table name: no value is pasted.
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {target} ({definition}, PRIMARY KEY (subject, id, model))"
        )
        connection.execute(f"DELETE FROM {target}")  # noqa: S608
        copied = f"COPY {target} ({', '.join(names)}) FROM STDIN"
        with connection.cursor().copy(copied) as copy:
            for row in rows(users, accounts):
                row["reasons"] = _encode(row["reasons"]).decode()
                copy.write_row([row[name] for name in names])
                written += 1
    return written
