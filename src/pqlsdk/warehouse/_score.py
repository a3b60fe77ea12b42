"""Scores from the SQL backend, as the in-process engine's own objects.

The rows the queries return become ``Score`` and ``AccountScore``: the command
line prints them with the same code whichever engine computed them, so the two
engines' output can only differ where their numbers do (and the tests check
they do not).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import msgspec
from sqlglot import exp

from .._clock import from_micros
from .._scoring import AccountScore, Measured, Reason, Score, encodable
from ..rules._model import Model, Rules
from . import _duckdb
from ._compile import compile_plan
from ._output_sql import EXACT, OUTPUT
from ._run import Rows, Steps

__all__ = ["Scored", "Scoring", "score_file", "score_relation", "scored_rows", "scoring"]


@attrs.frozen
class Scored:
    """What scoring a file gave: users under the model, accounts and their members.

    Added in version 0.1.0.
    """

    users: list[Score]
    accounts: list[AccountScore]
    members: dict[str, list[str]]
    """Each account's members (by their latest group), sorted."""
    refused: int = 0
    """How many messages were refused (no identity, no zoned timestamp...)."""
    entries: list[tuple[str, bytes]] | None = None
    """Asked for (``entries``): each user's ``--json`` entry, by id, in place of ``users``."""


def _value(wrapped: Mapping[str, Any]) -> Any:
    """Undo ``_values.wrapped``: ``{"v": value}`` or ``{"x": "inf"}``."""
    return float(wrapped["x"]) if "x" in wrapped else wrapped["v"]


def _json(value: Any) -> Any:
    return _decode(value) if isinstance(value, str) else value


_decode = msgspec.json.Decoder().decode


def _score(row: Mapping[str, Any], model: Model, now: int, prefix: str = "") -> Score:
    """Read a query's row (columns named ``prefix`` + the ``Score`` field) as a ``Score``."""

    def get(name: str) -> Any:
        return row[prefix + name]

    reasons = tuple(
        Reason(
            r["signal"],
            r["label"],
            # Floats in Python; an engine's JSON may print 30.0 as 30.
            float(r["points"]),
            float(r["earned"]),
            r["fired"],
            _value(r["observed"]),
            r["needs"],
        )
        for r in _json(get("reasons"))
    )
    measured: dict[str, Measured | None] = {}
    for part, expression in (("gate", model.gate), ("multiplier", model.multiplier)):
        values = get(f"{part}_measured")
        measured[part] = None
        if expression is not None and values is not None:
            items = _json(values)
            pairs = tuple((item["text"], _value(item["value"])) for item in items)
            measured[part] = Measured(expression.source, pairs)
    return Score(
        subject=model.subject,
        id=row["id"],
        model=model.name,
        score=get("score"),
        tier=get("tier"),
        route=get("route"),
        gate_passed=get("gate_passed"),
        multiplier=get("multiplier"),
        raw=get("raw"),
        reasons=reasons,
        at=from_micros(now),
        gate_measured=measured["gate"],
        multiplier_measured=measured["multiplier"],
    )


def score_file(rules: Rules, path: Path, *, now: int, model: str | None = None) -> Scored:
    """Score every user under ``model`` and every account of the messages in ``path``.

    ``now`` is the evaluation time in µs.

    Added in version 0.1.0.
    """
    with _duckdb.source(path) as (relation, _):
        return score_relation(rules, rules.model(model).name, relation, now=now)


def score_relation(
    rules: Rules,
    model: str,
    relation: exp.Expr,
    *,
    now: int,
    connection: Any = None,
    entries: bool = False,
) -> Scored:
    """Score every user under ``model`` and every account of ``relation``'s messages.

    ``connection`` is the one ``relation`` reads through (a source attached to
    it); without one, a connection of its own, closed after. ``entries``: the
    users as their ``--json`` entries (``Scored.entries``), not as ``Score``.
    """
    with scoring(rules, model, relation, now=now, connection=connection, entries=entries) as run:
        return run.scored()


class Scoring:
    """A relation being scored (``scoring``): the users' scores first, the accounts' after.

    The engine computes the accounts' roll-up once the users' rows are
    fetched: ``pqlsdk score`` formats the users meanwhile.
    """

    def __init__(self, rules: Rules, model: str, steps: Steps, *, now: int, entries: bool) -> None:
        self._rules = rules
        self._steps = steps
        self._now = now
        refused, rows = steps.users()
        self.refused = refused
        """How many messages were refused."""
        self.users, self.entries = _users(rules.model(model), rows, now=now, entries=entries)
        """The users' scores; with ``entries``, their ``--json`` entries in place (``Scored``)."""

    def scored(self) -> Scored:
        """Wait for the accounts; return everything scored."""
        accounts, members = _accounts(self._rules, self._steps.rows().accounts, now=self._now)
        return Scored(self.users, accounts, members, self.refused, self.entries)


@contextmanager
def scoring(
    rules: Rules,
    model: str,
    relation: exp.Expr,
    *,
    now: int,
    connection: Any = None,
    entries: bool = False,
) -> Iterator[Scoring]:
    """Score ``relation``'s messages as ``score_relation`` does, the users given first.

    The plan's steps run on a thread as they are compiled (``_run.Steps``): the
    messages are read while the models compile. On leaving, the thread is ended
    and the connection of its own (no ``connection``) closed.
    """
    chosen = rules.model(model)
    own_connection = connection is None
    if own_connection:
        connection = _duckdb.Opening()  # opened as the rules compile
    steps = _duckdb.steps(connection, relation, once=True, threaded=True)  # the plan is this run's
    try:
        plan = compile_plan(rules, chosen.name, now=now, output=entries, started=steps.add)
        steps.queue(plan)
        del plan  # written: its trees are garbage
        if not gc.isenabled():
            # The collector paused (``pqlsdk score``): the trees' cycles are freed while
            # the engine runs, not once it is over (25,000 nodes: 10 ms).
            gc.collect(0)
        yield Scoring(rules, chosen.name, steps, now=now, entries=entries)
    finally:
        steps.close()
        if own_connection:
            connection.close()


def scored_rows(rules: Rules, model: str, ran: Rows, *, now: int, entries: bool = False) -> Scored:
    """Read the rows a plan gave (any engine's) as ``Score`` and ``AccountScore`` objects.

    ``entries``: the users as their ``--json`` entries instead: the engine's
    own where it wrote them exactly (``_output_sql``), else encoded here.
    """
    users, encoded = _users(rules.model(model), ran.users, now=now, entries=entries)
    accounts, members = _accounts(rules, ran.accounts, now=now)
    return Scored(users, accounts, members, ran.refused, encoded)


def _users(
    chosen: Model, rows: list[dict[str, Any]], *, now: int, entries: bool
) -> tuple[list[Score], list[tuple[str, bytes]] | None]:
    """Read the users' rows as ``Score`` objects, or (``entries``) as their entries."""
    if entries:
        return [], [(row["id"], _entry(row, chosen, now)) for row in rows]
    return [_score(row, chosen, now) for row in rows], None


def _accounts(
    rules: Rules, rows: list[dict[str, Any]], *, now: int
) -> tuple[list[AccountScore], dict[str, list[str]]]:
    """Read the accounts' rows as ``AccountScore`` objects, and each account's members."""
    own = next((m for m in rules.models.values() if m.subject == "account"), None)
    accounts = []
    members: dict[str, list[str]] = {}
    for row in rows:
        members[row["id"]] = _json(row["member_ids"])
        score = None
        if own is not None:
            score = _score(row, own, now, prefix="own_")
        accounts.append(
            AccountScore(
                id=row["id"],
                pqa=row["pqa"],
                pql_users=row["pql_users"],
                members=_json(row["members"]),
                score=score,
            )
        )
    return accounts, members


def _entry(row: Mapping[str, Any], model: Model, now: int) -> bytes:
    """Return a user's ``--json`` entry: the engine's text when exact, else the ``Score``'s."""
    if row.get(EXACT):
        written: bytes = row[OUTPUT]  # UTF-8, as DuckDB encoded it (``compile_plan``)
        return written
    return _encode(encodable(_score(row, model, now)))


_encode = msgspec.json.encode
