"""The moments report's counts in SQL: ``pqlsdk moments --engine duckdb``.

``pqlsdk.lift`` folds a history in time order and evaluates the rules file's
``[moments] conversion`` after each message of a user who was shown or held
out of a kind. Here the same happens as set operations over the messages,
each step a syntax tree (names and values from the rules and the history enter
as literals):

- ``kept``: the accepted messages up to ``now``, each ``messageId`` once (the
  first in time order, ties by arrival, as the in-process fold meets them);
- ``decisions``: each user's first ``pqlsdk_moment_shown`` or
  ``pqlsdk_moment_held_out`` per kind: the arm and the exposure ``(ts, seq)``;
- ``outcomes``: whether a shown user clicked or dismissed the kind after it;
- ``marked`` and ``facts``: every message of a decided user with the facts the
  conversion reads as they stood right after it (running counts and the
  latest traits, over the user's messages in ``(ts, seq)`` order), and
  ``checks``: whether the conversion held there;
- ``arms``: per decision, whether it held at the exposure (then it is not
  credited) and whether it held after a later message within the window;
- the counts per kind, which ``pqlsdk.lift.counted`` turns into the report with
  the same interval and verdict code as the python engine.

The conversion may read what only the user's own messages change: their
traits and unwindowed ``count``, ``distinct`` and ``active_days``. A fact that
moves with time alone (a window, ``days_since_*``) or with other users
(``account.*``, ``team_size``) would need the instants of other members'
messages too; it is refused at its place in the rules file (a ``RulesError``),
and ``--engine python`` computes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from sqlglot import exp

from .._aggregates import Aggregate, Scope
from .._moments import MOMENT_HELD_OUT_EVENT, MOMENT_OUTCOME_EVENT, MOMENT_SHOWN_EVENT
from ..lift._funnel import KindReport, conversion_of
from ..rules._model import Rules
from ..rules._parser import Call, Conditional, ListLiteral, Node, Trait, parse
from . import _duckdb
from ._aggregates_sql import _matching
from ._compile import Plan
from ._dialect_duckdb import DUCKDB
from ._expressions import SqlExpressions, Unsupported, _aggregate
from ._message_steps import _Reads, message_steps
from ._model_steps import _located
from ._values import Value, literal, select, template, truth

__all__ = ["Counts", "compile_moments", "count_moments"]

_ROWS: Final = "PARTITION BY uid ORDER BY ts, seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
"""The frame of a running fact: the user's messages so far, in the order they are folded."""
_MOVING: Final = frozenset({"days_since_last_active", "days_since_first_seen", "team_size"})
_COUNTED: Final = KindReport.__struct_fields__[:6]
"""The counts ``counted`` takes, in its order: shown, held out ... converted held out."""

Counts = tuple[dict[str, list[int]], int, int]
"""Each kind's six counts (``pqlsdk.lift.counted``), the latest instant read, refused messages."""


class _Running:
    """The fact columns of ``facts``: each trait and aggregate as it stood after a message."""

    def __init__(self, reads: _Reads) -> None:
        self.reads = reads
        self.traits: dict[str, str] = {}
        self.aggregates: dict[Aggregate, str] = {}

    def trait(self, scope: Scope, name: str) -> exp.Expr:  # ``_refuse`` let only user's through
        self.reads.trait(name)
        return exp.column(self.traits.setdefault(name, f"t_{len(self.traits)}"))

    def aggregate(self, aggregate: Aggregate) -> exp.Expr:
        return exp.column(self.aggregates.setdefault(aggregate, f"g_{len(self.aggregates)}"))

    def fact(self, name: str) -> Value:  # pragma: no cover - ``_refuse`` stops them first
        raise AssertionError(name)

    def variable(self, name: str) -> Value:  # pragma: no cover - a conversion has none
        raise AssertionError(name)

    def marks(self) -> list[exp.Expr]:
        """Columns of ``marked``: each trait where an identify sets it, each aggregate's step."""
        columns: list[exp.Expr] = [
            exp.alias_(
                template(
                    "CASE WHEN type = 'identify' AND :v IS NOT NULL THEN :v END",
                    v=self.reads.trait(name),
                ),
                column,
            )
            for name, column in self.traits.items()
        ]
        for aggregate, column in self.aggregates.items():
            feeds = template("COALESCE(:c, FALSE)", c=_matching(aggregate, self.reads))
            if aggregate.kind != "count":  # a value counts the first time it is seen
                key = (
                    self.reads.dialect.distinct_key(self.reads.property(aggregate.field))
                    if aggregate.field is not None
                    else template("CAST(floor(ts / CAST(86400000000 AS DOUBLE)) AS BIGINT)")
                )
                feeds = template(
                    ":f AND :k IS NOT NULL AND ROW_NUMBER() OVER "
                    "(PARTITION BY uid, :f, :k ORDER BY ts, seq) = 1",
                    f=feeds,
                    k=key,
                )
            columns.append(exp.alias_(feeds, column))
        return columns

    def running(self) -> list[exp.Expr]:
        """Columns of ``facts``: the latest trait set, and the running count of each step."""
        frame = f"OVER ({_ROWS})"
        return [
            *(
                exp.alias_(template(f"LAST_VALUE(:c IGNORE NULLS) {frame}", c=exp.column(c)), c)
                for c in self.traits.values()
            ),
            *(
                exp.alias_(template(f"COUNT(CASE WHEN :c THEN 1 END) {frame}", c=exp.column(c)), c)
                for c in self.aggregates.values()
            ),
        ]


def _nodes(node: Node) -> Iterator[Node]:
    """Every node of an expression's tree, ``node`` first."""
    yield node
    children: tuple[Any, ...] = ()
    if isinstance(node, ListLiteral):
        children = node.items
    elif isinstance(node, Call):
        children = (*node.args, *(keyword.value for keyword in node.keywords))
    elif isinstance(node, Conditional):
        children = (node.then, node.condition, node.otherwise)
    else:
        children = tuple(
            getattr(node, name) for name in ("operand", "left", "right") if hasattr(node, name)
        )
    for child in children:
        yield from _nodes(child)


def _refuse(source: str) -> None:
    """Raise ``Unsupported`` at the first fact the running columns cannot follow exactly."""
    for node in _nodes(parse(source)):
        why = None
        if isinstance(node, Trait) and node.scope == "account":
            why = "an account's trait changes with other users' messages"
        elif isinstance(node, Call) and node.name in _MOVING:
            why = f"{node.name}() changes with time or with other users' messages"
        elif (
            isinstance(node, Call)
            and node.name in ("count", "distinct", "active_days")
            and _aggregate(source, node, "user").window is not None
        ):
            why = f"a windowed {node.name}() changes with time alone"
        if why is not None:
            raise Unsupported(
                f"the moments report in SQL evaluates the conversion at each of the user's "
                f"own messages: {why}; use pqlsdk moments --engine python",
                node.offset,
                node.length,
            )


def compile_moments(rules: Rules, *, now: int | None = None) -> Plan:
    """Compile the steps that count each moment kind's arms; ``now`` (µs) ends the history.

    The plan's ``users`` query gives a row per kind (``kind`` and the six
    counts of ``pqlsdk.lift.counted``), its ``accounts`` query one row: the
    latest instant read (``at``). Raise ``RulesError`` at the conversion's
    construct the SQL cannot follow, ``ConfigError`` when there is nothing to
    measure (as the python engine does).

    Added in version 0.1.0.
    """
    conversion, window, _ = conversion_of(rules)
    dialect = DUCKDB
    reads = _Reads(dialect)
    running = _Running(reads)
    source = conversion.source
    try:
        _refuse(source)
        holds = truth(SqlExpressions(running, "user", dialect).compile_source(source), dialect)
    except Unsupported as exc:
        raise _located(rules.origin, ("moments", "conversion"), source, exc, dialect) from None
    kind, outcome = reads.property("kind"), reads.property("outcome")
    marks = running.marks()  # before ``parsed``: they name the properties and traits it reads
    (_, parsed), *_ = message_steps(reads)
    upto = exp.true() if now is None else template("ts <= :n", n=literal(now))
    kept = select(
        """
        SELECT * FROM parsed WHERE type IS NOT NULL AND :upto
        QUALIFY mid IS NULL OR ROW_NUMBER() OVER (PARTITION BY mid ORDER BY ts, seq) = 1
        """,
        upto=upto,
    )
    tracks = select(
        """
        SELECT uid, ts, seq, event,
            CASE WHEN :kind_is_text THEN :kind_text END AS kind,
            CASE WHEN :outcome_is_text THEN :outcome_text END AS outcome
        FROM kept WHERE type = 'track' AND event IN (:shown, :held, :outcome_event)
        """,
        kind_is_text=dialect.json_is(kind, "string"),
        kind_text=dialect.json_text(kind),
        outcome_is_text=dialect.json_is(outcome, "string"),
        outcome_text=dialect.json_text(outcome),
        shown=literal(MOMENT_SHOWN_EVENT),
        held=literal(MOMENT_HELD_OUT_EVENT),
        outcome_event=literal(MOMENT_OUTCOME_EVENT),
    )
    decisions = select(
        """
        SELECT uid, kind, ts, seq, event = :held AS held FROM moment_tracks
        WHERE kind IS NOT NULL AND event IN (:shown, :held)
        QUALIFY ROW_NUMBER() OVER (PARTITION BY uid, kind ORDER BY ts, seq) = 1
        """,
        shown=literal(MOMENT_SHOWN_EVENT),
        held=literal(MOMENT_HELD_OUT_EVENT),
    )
    outcomes = select(
        """
        SELECT d.uid, d.kind, COALESCE(BOOL_OR(o.outcome = 'clicked'), FALSE) AS clicked,
            COALESCE(BOOL_OR(o.outcome = 'dismissed'), FALSE) AS dismissed
        FROM decisions AS d JOIN moment_tracks AS o
            ON o.uid = d.uid AND o.kind = d.kind AND o.event = :outcome_event
            AND (o.ts > d.ts OR (o.ts = d.ts AND o.seq > d.seq))
        WHERE NOT d.held GROUP BY d.uid, d.kind
        """,
        outcome_event=literal(MOMENT_OUTCOME_EVENT),
    )
    marked = select(
        "SELECT uid, ts, seq FROM kept WHERE uid IN (SELECT uid FROM decisions)"
    ).select(*marks, copy=False)
    facts = select("SELECT uid, ts, seq FROM marked").select(*running.running(), copy=False)
    checks = select("SELECT uid, ts, seq, :holds AS holds FROM facts", holds=holds)
    arms = select(
        """
        SELECT d.uid, d.kind, d.held,
            COALESCE(BOOL_OR(c.holds) FILTER (WHERE c.ts = d.ts AND c.seq = d.seq), FALSE)
                AS before_,
            COALESCE(BOOL_OR(c.holds) FILTER (WHERE c.ts > d.ts OR c.seq > d.seq), FALSE)
                AS later
        FROM decisions AS d JOIN checks AS c
            ON c.uid = d.uid AND c.ts >= d.ts AND c.ts - d.ts <= :window
        GROUP BY d.uid, d.kind, d.held
        """,
        window=literal(window),
    )
    per_kind = select(
        """
        SELECT a.kind, COUNT(*) FILTER (WHERE NOT a.held) AS shown,
            COUNT(*) FILTER (WHERE a.held) AS held_out,
            COUNT(*) FILTER (WHERE NOT a.held AND o.clicked) AS clicked,
            COUNT(*) FILTER (WHERE NOT a.held AND o.dismissed) AS dismissed,
            COUNT(*) FILTER (WHERE NOT a.held AND NOT a.before_ AND a.later) AS converted_shown,
            COUNT(*) FILTER (WHERE a.held AND NOT a.before_ AND a.later) AS converted_held_out
        FROM arms AS a LEFT JOIN outcomes AS o ON o.uid = a.uid AND o.kind = a.kind
        GROUP BY a.kind ORDER BY a.kind
        """
    )
    latest = select(
        "SELECT COALESCE(MAX(ts), -1) AS at FROM parsed WHERE type IS NOT NULL AND :upto",
        upto=upto,
    )
    steps: list[tuple[str, exp.Expr]] = [
        ("parsed", parsed),
        ("kept", kept),
        ("moment_tracks", tracks),
        ("decisions", decisions),
        ("outcomes", outcomes),
        ("marked", marked),
        ("facts", facts),
        ("checks", checks),
        ("arms", arms),
    ]
    return Plan(steps, per_kind, latest, dialect)


def count_moments(plan: Plan, relation: exp.Expr, connection: Any) -> Counts:
    """Run ``plan`` (``compile_moments``) over ``relation``'s messages, read through ``connection``.

    Return the counts per kind, the latest instant read (µs, -1 when none)
    and how many messages were refused. ``_duckdb.UnreadableError`` when DuckDB
    cannot read the messages.

    Added in version 0.1.0.
    """
    ran = _duckdb.run(connection, plan, relation)
    counts = {row["kind"]: [int(row[name]) for name in _COUNTED] for row in ran.users}
    return counts, int(ran.accounts[0]["at"]), ran.refused
