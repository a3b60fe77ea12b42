"""Running a compiled plan on a DB-API connection: each step held as a temporary table.

DuckDB and PostgreSQL both take the plan this way (their connections'
``execute`` returns a cursor): the messages are read once, and the facts and
the PQA model computed once, for both the users' and the accounts' rows.
"""

from __future__ import annotations

from typing import Any

import attrs
from sqlglot import exp

from .._exceptions import ConfigError
from ._compile import Plan

__all__ = ["Rows", "UnreadableError", "run"]


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
    except Exception as exc:  # the driver's errors: a file that is not JSON Lines, mostly
        raise error(f"{engine} could not score the messages: {exc}") from exc


def run(connection: Any, plan: Plan, relation: exp.Expr) -> Rows:
    """Run ``plan`` over ``relation`` (the messages): each step becomes a temporary table.

    Return how many messages were refused, the users' rows and the accounts'
    rows (as dicts). The temporary tables stay: the caller's connection (or
    transaction) ends them.
    """
    dialect = plan.dialect
    for name, body in plan.steps:
        step = body
        if name == "parsed":  # the first step reads the messages: they are its CTE
            step = exp.select("*").from_(
                exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier("p")))
            )
            step = step.with_("messages", as_=relation)
        create = exp.Create(
            this=exp.to_table(name),
            kind="TABLE",
            expression=step,
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        _execute(
            connection,
            create.sql(dialect.name),
            dialect.engine,
            UnreadableError if name == "parsed" else ConfigError,
        )
    refused = _execute(
        connection, "SELECT count(*) FROM parsed WHERE NOT ok", dialect.engine
    ).fetchone()
    return Rows(
        int(refused[0]),
        _rows(connection, plan.users, dialect.name, dialect.engine),
        _rows(connection, plan.accounts, dialect.name, dialect.engine),
    )


def _rows(connection: Any, final: exp.Select, name: str, engine: str) -> list[dict[str, Any]]:
    cursor = _execute(connection, final.sql(name), engine)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
