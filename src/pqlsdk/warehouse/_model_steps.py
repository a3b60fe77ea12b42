"""One model's scoring steps in SQL: gate, signals and reasons, multiplier, score, tier, route.

Each step is a CTE over the model's facts (``user_facts`` or ``account_facts``),
doing what ``pqlsdk._scoring.score_subject`` does for one subject, for every
subject at once. A construct SQL cannot run fails here, at compile time, placed
at its ``file:line:col`` in the rules file (``_located``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

from sqlglot import exp

from .._exceptions import RulesError
from .._scoring import _measured_sides
from ..rules._compiler import Compiled
from ..rules._lexer import ExpressionError
from ..rules._model import Model, Signal
from ._dialects import Dialect
from ._engines import DIALECTS
from ._expressions import SqlExpressions, Unsupported
from ._output_sql import entry
from ._values import Value, aliased, literal, number_of, select, template, truth, wrapped

__all__ = ["ROW_COLUMNS", "tiered_step"]

_ALL_ENGINES: Final = "the python engine (pqlsdk score --engine python)"


ROW_COLUMNS: Final = (
    "id",
    "account_id",
    "score",
    "tier",
    "route",
    "gate_passed",
    "multiplier",
    "raw",
    "reasons",
    "gate_measured",
    "multiplier_measured",
)
"""A model's rows (``compile_model``); the reasons and what was measured last."""


class _ModelSteps:
    """One model's scoring steps, compiled up front (so unknown facts are collected)."""

    def __init__(
        self, model: Model, expressions: SqlExpressions, origin: str, dialect: Dialect
    ) -> None:
        self.model = model
        self.origin = origin
        self.dialect = dialect
        self.inexact: exp.Select | None = None
        """With the entries (``ctes``): each subject's row, reasons included (``Plan.inexact``)."""
        where = ("model", model.name)

        def compile_(source: str, path: Sequence[str | int]) -> Value:
            try:
                return expressions.compile_source(source)
            except Unsupported as exc:
                raise _located(origin, (*where, *path), source, exc, dialect) from None

        self.gate = None if model.gate is None else compile_(model.gate.source, ("gate",))
        self.multiplier = (
            None if model.multiplier is None else compile_(model.multiplier.source, ("multiplier",))
        )
        self.signals = []
        for signal in model.signals:
            key = "when" if signal.when is not None else "value"
            expression = cast(Compiled, signal.when or signal.value)  # one is set
            held = compile_(expression.source, ("signals", signal.name, key))
            observed = None
            if signal.when is not None and signal.observe is not None:
                observed = compile_(signal.observe.source, ("signals", signal.name, key))
            self.signals.append((signal, held, observed))
        self.measured = {
            part: [
                (text, compile_(text, (part,)))
                for text, _ in _measured_sides(compiled.source, model.subject)
            ]
            for part, compiled in (("gate", model.gate), ("multiplier", model.multiplier))
            if compiled is not None
        }
        self.dnc = (
            None
            if model.do_not_contact is None
            else compile_(model.do_not_contact.source, ("do_not_contact",))
        )
        self.routes = [
            (route.route, compile_(route.when.source, ("routes", index, "when")))
            for index, route in enumerate(model.routes)
        ]

    def _signal(
        self, index: int, signal: Signal, held: Value, observed: Value | None
    ) -> tuple[exp.Expr, exp.Expr, exp.Expr, Value | None]:
        """Compile one signal: its earned points (column ``e_<index>``) and its reason.

        Also whether it fired and what it observed (None: whether it fired), for
        the command's entry (``_output_sql``).
        """
        dialect = self.dialect
        earned_name = f"e_{index}"
        if signal.when is not None:
            fired = truth(held, dialect)
            earned: exp.Expr = exp.Case(
                ifs=[exp.If(this=fired, true=literal(float(signal.points)))],
                default=literal(0.0),
            )
            seen = (
                wrapped(observed, dialect)
                if observed is not None
                else dialect.json_object([("v", fired)])
            )
        else:
            fired = None
            # The rules' checker makes a value a number or a trait: it reads as a number.
            number = cast(exp.Expr, number_of(held, dialect))
            earned = exp.Case(
                ifs=[
                    exp.If(
                        this=exp.and_(
                            template(":x IS NOT NULL", x=number), dialect.is_finite(number)
                        ),
                        true=template(
                            "CAST(:p AS DOUBLE) * :x", p=literal(float(signal.points)), x=number
                        ),
                    )
                ],
                default=literal(0.0),
            )
            seen = wrapped(held, dialect)
            observed = held
        fired_sql = fired if fired is not None else template(f"{earned_name} <> 0")
        reason = dialect.json_object(
            [
                ("signal", literal(signal.name)),
                ("label", literal(signal.label)),
                ("points", literal(float(signal.points))),
                ("earned", exp.column(earned_name)),
                ("fired", fired_sql),
                ("observed", seen),
                ("needs", literal(signal.needs)),
            ]
        )
        return aliased(earned, earned_name), reason, fired_sql, observed

    def ctes(self, name: str, source: str, *, output: bool = False) -> list[tuple[str, exp.Expr]]:
        """Return the model's steps over ``source``, the last named ``name``.

        ``output``: the last step also writes each subject's ``--json`` entry
        (``_output_sql``), in an engine that can (``Dialect.writes_entries``).
        """
        dialect = self.dialect
        gate = exp.true() if self.gate is None else truth(self.gate, dialect)
        columns: list[exp.Expr] = [aliased(gate, "gate_passed")]
        reasons = []
        entries = []
        for index, (signal, held, observed) in enumerate(self.signals):
            earned, reason, fired, seen = self._signal(index, signal, held, observed)
            columns.append(earned)
            reasons.append(reason)
            entries.append(
                (
                    signal.name,
                    signal.label,
                    float(signal.points),
                    signal.needs,
                    fired,
                    seen,
                    exp.column(f"e_{index}"),
                )
            )
        multiplier: exp.Expr = literal(1.0)
        if self.multiplier is not None:  # a number or a trait, as the checker allows
            number = cast(exp.Expr, number_of(self.multiplier, dialect))
            multiplier = exp.Case(
                ifs=[
                    exp.If(
                        this=exp.and_(
                            template(":x IS NOT NULL", x=number), dialect.is_finite(number)
                        ),
                        true=template("CAST(:x AS DOUBLE)", x=number),
                    )
                ],
                default=template("CAST(1.0 AS DOUBLE)"),
            )
        columns.append(aliased(multiplier, "multiplier"))
        for part in ("gate", "multiplier"):
            if part in self.measured:
                values = [
                    dialect.json_object(
                        [("text", literal(text)), ("value", wrapped(value, dialect))]
                    )
                    for text, value in self.measured[part]
                ]
                columns.append(aliased(dialect.json_array(values), f"{part}_measured"))
            else:
                columns.append(aliased(exp.Null(), f"{part}_measured"))
        signals = select(f"SELECT * FROM {source}")  # noqa: S608 - the compiler's own CTE name
        signals = signals.select(*columns, copy=False)
        raw = literal(0.0)
        for index in range(len(self.signals)):
            raw = exp.Add(this=raw, expression=exp.column(f"e_{index}"))
        raw = exp.paren(raw)
        # The reasons read the earned columns: a step after the one that names them.
        # One JSON array: the reader decodes one document a row, not one a reason.
        # Where the engine writes the entries, a subject whose entry is exact needs
        # no reasons: they are written last, for the others only (``written``).
        written = output and dialect.writes_entries
        reasons_json = dialect.json_array(reasons)
        totals = template(
            "SELECT *, :reasons AS reasons, :rounded AS raw, CASE WHEN gate_passed "
            "THEN :scored + CAST(0.0 AS DOUBLE) "
            "ELSE CAST(0.0 AS DOUBLE) END AS score FROM signals_",
            reasons=template("CAST(NULL AS JSON)") if written else reasons_json,
            rounded=dialect.round9(raw),
            scored=dialect.round9(template(":raw * multiplier", raw=raw)),
        )
        tiers = self.model.tiers
        tier = exp.Case(
            ifs=[
                exp.If(
                    this=template("score >= :t", t=literal(float(threshold))),
                    true=literal(tier_name),
                )
                for threshold, tier_name in reversed(tiers)
            ],
            default=literal(tiers[0][1]),
        )
        tiered = template("SELECT *, :tier AS tier FROM totals_", tier=tier)
        route_ifs = []
        if self.dnc is not None:
            route_ifs.append(exp.If(this=truth(self.dnc, dialect), true=literal("do_not_contact")))
        route_ifs += [
            exp.If(this=truth(when, dialect), true=literal(route)) for route, when in self.routes
        ]
        route = (
            exp.Case(ifs=route_ifs, default=literal(self.model.default_route))
            if route_ifs
            else literal(self.model.default_route)
        )
        # The route in a step of its own: the last step reads it as a column, once
        # for the row and again for the entry and its exactness (an engine binds
        # every copy of an expression, and the route's tests read traits).
        with_route = template("SELECT *, :route AS route FROM tiered_", route=route)
        routed = exp.select(*ROW_COLUMNS).from_("routed_")
        if written:
            routed = routed.select(*entry(self.model, dialect, self.measured, entries), copy=False)
            # The rows of the subjects whose entry is not exact, reasons included, asked
            # by id once the entries show which (``Plan.inexact``): the last step holds
            # no reasons, so an engine that binds it (twice: as a view, then read) binds
            # none of them.
            self.inexact = exp.select(
                *(aliased(reasons_json, c) if c == "reasons" else c for c in ROW_COLUMNS)
            ).from_(f"{name}_routed")
        renames = {
            "signals_": f"{name}_signals",
            "totals_": f"{name}_totals",
            "tiered_": tiered_step(name),
            "routed_": f"{name}_routed",
        }
        steps = [
            (f"{name}_signals", signals),
            (f"{name}_totals", totals),
            (tiered_step(name), tiered),
            (f"{name}_routed", with_route),
            (name, routed),
        ]
        for _, body in steps:
            for table in body.find_all(exp.Table):
                if table.name in renames:
                    table.set("this", exp.to_identifier(renames[table.name]))
        return steps


def tiered_step(name: str) -> str:
    """Name the step of model ``name`` that gives each subject's score and tier (and ids).

    What reads only those (the accounts' roll-up) reads this step, not the
    model's last: an engine binds each view it reads, and the last step's
    route, entry and exactness make most of the model's SQL.
    """
    return f"{name}_tiered"


def _located(
    origin: str, path: Sequence[str | int], source: str, error: Unsupported, dialect: Dialect
) -> RulesError:
    """Place a ``RulesError`` at the construct, in the rules file when it can be read again.

    The message says which engines can run it: the python engine always, and
    the SQL engines that do not refuse the construct.
    """
    if error.construct is None:
        message = f"{error} (runs on {_ALL_ENGINES}, not in SQL)"
    else:
        able = [d.engine for d in DIALECTS.values() if error.construct not in d.refuses]
        engines = " and ".join([_ALL_ENGINES, *(f"--engine {name}" for name in able)])
        message = f"{error} (runs on {engines}; not on --engine {dialect.engine})"
    try:
        from ..rules._loader import _decode  # noqa: PLC0415 - only to place an error

        text = Path(origin).read_text(encoding="utf-8")
        where, _ = _decode(text, origin, "json" if origin.endswith(".json") else "toml")
        return where.in_value(tuple(path), _as_expression_error(message, error))
    except (OSError, RulesError, KeyError):
        return RulesError(f"{message}: {source!r}", path=origin, line=0, column=0)


def _as_expression_error(message: str, error: Unsupported) -> ExpressionError:
    return ExpressionError(message, error.offset, error.length)
