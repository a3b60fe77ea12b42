"""Running a compiled plan on a DB-API connection: each step held as a temporary table.

DuckDB and PostgreSQL both take the plan this way (their connections'
``execute`` returns a cursor): the messages are read once, and the facts and
the PQA model computed once, for both the users' and the accounts' rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs
from sqlglot import exp

from .._exceptions import ConfigError
from ._compile import Plan
from ._dialects import Dialect
from ._values import copied, select

__all__ = ["IN_FILE_ORDER", "PARSED_ROWS", "Rows", "UnreadableError", "create", "rows", "run"]


IN_FILE_ORDER: Final = "pqlsdk_in_file_order"
"""The key, in a relation's ``meta``, that says: ``seq`` is the row's place (DuckDB).

Such a relation (``_duckdb.messages_relation``) reads its file without
numbering the rows (``WITH ORDINALITY`` makes DuckDB read on one thread), and
``parsed`` is written in file order (``PARSED_ROWS``): ``seq`` is the row's place there.
"""

PARSED_ROWS: Final = "parsed_rows"
"""The table ``parsed`` reads when written in file order: ``parsed`` is a view giving ``seq``."""


class UnreadableError(ConfigError):
    """The engine could not read the messages (a line that is not a JSON object, mostly)."""


@attrs.frozen
class Rows:
    """What running a plan gave: refused messages, users' rows, accounts' rows."""

    refused: int
    users: list[dict[str, Any]]
    accounts: list[dict[str, Any]]


def _execute(connection: Any, sql: str, engine: str, error: type[ConfigError] = ConfigError) -> Any:
    try:
        return connection.execute(sql)
    except ConfigError:  # a connection that could not open (``_duckdb.Opening``): its own words
        raise
    except Exception as exc:  # the driver's errors: a file that is not JSON Lines, mostly
        raise error(f"{engine} could not score the messages: {exc}") from exc


def run(
    connection: Any,
    plan: Plan,
    relation: exp.Expr,
    judge: Callable[[], None] | None = None,
    *,
    once: bool = False,
) -> Rows:
    """Run ``plan`` over ``relation`` (the messages): each step becomes a temporary table.

    ``m`` (the accepted messages less the repeated ones) is a view: a filter
    over ``parsed`` costs less than writing a million rows again. So are a
    model's steps (``model_*``): one row a subject, read once for the rows
    (and for the tiers alone by the accounts' roll-up, which the engine
    computes without the reasons), where a table would copy every reason at
    each step. ``judge``
    runs once ``parsed`` is written, to settle the doubtful messages there.
    Return how many messages were refused, the users' rows and the accounts'
    rows (as dicts). The temporary tables stay: the caller's connection (or
    transaction) ends them. ``once``: the plan is not run again (it was compiled
    for this run), so its trees are written as they are, not copied first
    (``_text``); sqlglot may change them as it writes them.
    """
    dialect = plan.dialect
    for name, body in plan.steps:
        create(
            connection,
            name,
            body,
            dialect,
            relation=relation if name == "parsed" else None,
            view=name.startswith("model_"),
            once=once,
        )
        if name == "parsed" and judge is not None:
            judge()
    refused = _execute(
        connection, "SELECT count(*) FROM parsed WHERE type IS NULL", dialect.engine
    ).fetchone()
    return Rows(
        int(refused[0]),
        _rows(connection, _text(plan.users, dialect, once=once), dialect.engine),
        _rows(connection, _text(plan.accounts, dialect, once=once), dialect.engine),
    )


def create(
    connection: Any,
    name: str,
    body: exp.Expr,
    dialect: Dialect,
    *,
    relation: exp.Expr | None = None,
    replace: bool = False,
    view: bool = False,
    once: bool = False,
) -> None:
    """Hold step ``name`` as a temporary table (``m``: a view); ``relation``: ``parsed``'s input.

    ``replace``: the step is run again (another instant of a replay, another rules file);
    ``view``: a view whatever its name (a filter read once costs less than a table);
    ``once``: ``body`` is not written again (``run``).
    A ``relation`` read in file order (``IN_FILE_ORDER``) is written to table
    ``PARSED_ROWS`` in that order, ``name`` being a view of it that adds ``seq``.
    """
    step = body
    if relation is not None:  # the first step (``parsed``) reads the messages: its CTE
        step = exp.select("*").from_(
            exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier("p")))
        )
        step = step.with_("messages", as_=relation)  # a copy: written once
        once = True
    error = UnreadableError if name == "parsed" else ConfigError
    kind = "VIEW" if view or name == "m" else "TABLE"
    if relation is None or not relation.meta.get(IN_FILE_ORDER):
        created = _create(name, kind, step, replace, dialect, once=once)
        _execute(connection, created, dialect.engine, error)
        return
    # DuckDB reads the file on every core and, told to keep insertion order, writes
    # the rows in file order: the row's place (``rowid``) is its arrival order.
    _execute(connection, "SET preserve_insertion_order = true", dialect.engine)
    try:
        table = _create(PARSED_ROWS, kind, step, replace, dialect, once=once)
        _execute(connection, table, dialect.engine, error)
    finally:
        _execute(connection, "SET preserve_insertion_order = false", dialect.engine)
    in_order = select("SELECT rowid + 1 AS seq, * EXCLUDE (seq)").from_(PARSED_ROWS)
    _execute(connection, _create(name, "VIEW", in_order, replace, dialect), dialect.engine)


def _create(
    name: str, kind: str, query: exp.Expr, replace: bool, dialect: Dialect, *, once: bool = False
) -> str:
    """``CREATE [OR REPLACE] TEMPORARY kind name AS query``, in ``dialect``'s SQL."""
    statement = exp.Create(
        this=exp.to_table(name),
        kind=kind,
        expression=query,
        replace=replace,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )
    return _text(statement, dialect, once=once)


def _text(statement: exp.Expr, dialect: Dialect, *, once: bool) -> str:
    """Write ``statement`` in ``dialect``'s SQL; ``once``: it is not written again.

    sqlglot writes a copy of a tree, as it may change what it writes. Copying
    costs more than writing (twice, for a plan's steps), and a tree written
    once need not stay as it was: it is written as it is, when every node is
    where its links say (``_settled``), as in its copy; else its copy is.
    """
    written = statement if once and _settled(statement) else copied(statement)
    return written.sql(dialect.name, copy=False)


def _settled(tree: exp.Expr) -> bool:
    """Tell whether each node of ``tree`` is once in it, where its parent, key and index say.

    A copy of the tree is: a node put in two places (a builder does not copy
    what it is given) is not, and sqlglot reads a node's parent as it writes.
    """
    for node in tree.walk():
        for key, value in node.args.items():
            if isinstance(value, exp.Expr):
                if value.parent is not node or value.arg_key != key or value.index is not None:
                    return False
            elif type(value) is list:
                for index, item in enumerate(value):
                    if isinstance(item, exp.Expr) and (
                        item.parent is not node or item.arg_key != key or item.index != index
                    ):
                        return False
    return True


def rows(connection: Any, final: exp.Select, dialect: Dialect) -> list[dict[str, Any]]:
    """Run ``final``; return its rows as dicts."""
    return _rows(connection, copied(final).sql(dialect.name, copy=False), dialect.engine)


def _rows(connection: Any, sql: str, engine: str) -> list[dict[str, Any]]:
    cursor = _execute(connection, sql, engine)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
