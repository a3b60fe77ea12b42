r"""A subject's ``pqlsdk score --json`` entry, written by DuckDB as the command would write it.

Building a ``Score`` per subject in Python, then its reasons, then encoding them
again costs more than all the SQL after reading the messages (10,000 users of a
playbook: 110,000 reasons). So the plan the command runs (``compile_plan`` with
``output``) also writes, for each subject, the compact JSON that
``msgspec.json.encode(encodable(score))`` gives; the command only indents it.

DuckDB's JSON writer and msgspec agree on every value the entry holds except a
few, which ``pqlsdk_exact`` flags (the command then builds that subject's
``Score`` as before): a float below 1e-4 or from 1e16 on (DuckDB writes ``1e-05``,
msgspec ``0.00001``), a string with a control character other than
``\b \f \n \r \t`` (DuckDB writes ``\u001B``, msgspec ``\u001b``), and a
trait holding an object or an array (msgspec keeps the last of repeated keys).
Constants (names, labels, expressions, points) are encoded by msgspec here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import msgspec
from sqlglot import exp

from ..rules._model import Model
from ..rules._types import Type
from ._dialect_duckdb import TEXT, as_json
from ._dialects import Dialect
from ._values import Value, template

__all__ = ["EXACT", "OUTPUT", "entry"]

OUTPUT: Final = "pqlsdk_output"
"""The column holding a subject's entry (text)."""
EXACT: Final = "pqlsdk_exact"
"""The column telling whether that entry is exactly the command's (else NULL or FALSE)."""

_Piece = exp.Expr | str


def _encoded(value: object) -> str:
    return msgspec.json.encode(value).decode()


_ESCAPE: Final = "\\u00"
"""How DuckDB writes a control character in a string; msgspec may write it otherwise."""

_SAFE: Final = ":x IS NULL OR NOT isfinite(:x) OR :x = 0 OR (abs(:x) >= 1e-4 AND abs(:x) < 1e16)"
"""Where DuckDB writes a number (``CAST(x AS VARCHAR)``, non-finite as null) as msgspec does."""


class _Entry:
    """Collects an entry's pieces of text and the tests that each reads as msgspec's.

    Values are written by ``CAST(... AS VARCHAR)``, not ``to_json``, wherever
    the two agree (numbers, bools, JSON): ``to_json`` makes a document a call.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.pieces: list[_Piece] = []
        self.tests: list[exp.Expr] = []

    def constant(self, text: str) -> None:
        self.pieces.append(text)

    def _cast(self, sql: exp.Expr) -> None:
        self.pieces.append(template("COALESCE(CAST(:x AS VARCHAR), 'null')", x=sql))

    def number(self, sql: exp.Expr, whole: exp.Expr | None = None) -> None:
        """Write a number: exact when 0 or of a size between 1e-4 and 1e16, or not finite.

        msgspec writes a non-finite float as null, as ``plain`` makes it.
        ``whole``: when it holds, the number is Python's int (``json_of``).
        """
        double = template("CAST(:v AS DOUBLE)", v=sql)
        written: exp.Expr = template("CAST(:x AS VARCHAR)", x=sql)
        if whole is not None:
            written = exp.Case(
                ifs=[
                    exp.If(this=whole, true=template("CAST(CAST(:x AS BIGINT) AS VARCHAR)", x=sql))
                ],
                default=written,
            )
        self.pieces.append(
            template("CASE WHEN isfinite(:d) THEN :w ELSE 'null' END", d=double, w=written)
        )
        self.tests.append(template(_SAFE, x=double))

    def name(self, sql: exp.Expr) -> None:
        """Write a tier or a route: always exact.

        Each is one of the model's names, which the rules' schema (``Name``)
        makes of letters, digits, ``_`` and ``-``: nothing either writer escapes.
        So no test, which would read (and make the engine bind) the route's tests again.
        """
        json = template("CAST(to_json(:x) AS VARCHAR)", x=sql)
        self.pieces.append(template("COALESCE(:j, 'null')", j=json))

    def flag(self, sql: exp.Expr) -> None:
        """Write a bool: always exact."""
        self._cast(sql)

    def text(self, sql: exp.Expr) -> None:
        r"""Write a string: exact unless DuckDB escaped a control character as ``\u00XX``."""
        json = template("CAST(to_json(:x) AS VARCHAR)", x=sql)
        self.pieces.append(template("COALESCE(:j, 'null')", j=json))
        self.tests.append(
            template("NOT COALESCE(contains(:j, :e), FALSE)", j=json, e=exp.Literal.string(_ESCAPE))
        )

    def json(self, sql: exp.Expr) -> None:
        """Write a JSON value as DuckDB holds it: exact unless an object or array, or as above."""
        text = template("CAST(:j AS VARCHAR)", j=sql)
        self.pieces.append(template("COALESCE(:t, 'null')", t=text))
        self.tests.append(
            template(
                "CASE WHEN :t IS NULL THEN TRUE "
                "WHEN starts_with(:t, '\"') THEN NOT contains(:t, :e) "
                "WHEN starts_with(:t, '{') OR starts_with(:t, '[') THEN FALSE "
                "WHEN contains(:t, '.') OR contains(:t, 'e') OR contains(:t, 'E') "
                "THEN COALESCE(:safe, FALSE) ELSE TRUE END",
                t=text,
                e=exp.Literal.string(_ESCAPE),
                safe=template(_SAFE, x=template("TRY_CAST(:t AS DOUBLE)", t=text)),
            )
        )

    def value(self, value: Value) -> None:
        """Write a measured or observed value as ``json_of`` gives it."""
        if value.type is Type.NUMBER:
            self.number(value.sql, value.whole)
        elif value.type is Type.BOOL:
            self.flag(value.sql)
        elif value.type is Type.STRING:
            self.text(value.sql)
        elif value.type is Type.ANY:
            self.json(value.sql)
        elif value.type is Type.NULL:
            self.constant("null")
        else:  # a list or a duration: the command's own path
            self.constant("null")
            self.tests.append(exp.false())

    def measured(self, expression: str, values: Sequence[tuple[str, Value]]) -> None:
        """Write ``"expression": ..., "measured": {...}`` as ``Measured.to_dict`` does."""
        latest = dict(values)  # a dict: a text keeps its first place and its last value
        self.constant(f'"expression":{_encoded(expression)},"measured":{{')
        for index, (text, value) in enumerate(latest.items()):
            self.constant(("," if index else "") + _encoded(text) + ":")
            self.value(value)
        self.constant("}")

    def written(self) -> tuple[exp.Expr, exp.Expr]:
        """Return the entry's text and its exactness test."""
        text = cast(exp.Expr, as_json(self.pieces).meta[TEXT])
        # The tests are this entry's own: joined as they are, not copied (``_values._owned``).
        tests = (exp.paren(test, copy=False) for test in self.tests)
        exact = exp.and_(*tests, copy=False) if self.tests else exp.true()
        return text, exact


def entry(
    model: Model,
    dialect: Dialect,
    measured: dict[str, list[tuple[str, Value]]],
    reasons: Sequence[tuple[str, str, float, str | None, exp.Expr, Value | None, exp.Expr]],
) -> list[exp.Expr]:
    """Select the entry (``OUTPUT``) and whether it is exact (``EXACT``), over the routed step.

    ``reasons``: each signal's name, label, points, needs, whether it fired,
    what it observed (None: whether it fired) and its earned column.
    """
    out = _Entry(dialect)
    out.constant('{"score":')
    out.number(exp.column("score"))
    out.constant(',"tier":')
    out.name(exp.column("tier"))
    out.constant(',"route":')
    out.name(exp.column("route"))
    out.constant(',"gate_passed":')
    out.flag(exp.column("gate_passed"))
    out.constant(',"multiplier":')
    out.number(exp.column("multiplier"))
    out.constant(',"raw":')
    out.number(exp.column("raw"))
    if model.gate is not None:
        out.constant(',"gate":{"passed":')
        out.flag(exp.column("gate_passed"))
        out.constant(",")
        out.measured(model.gate.source, measured.get("gate", []))
        out.constant("}")
    if model.multiplier is not None:
        out.constant(',"multiplier_reason":{')
        out.measured(model.multiplier.source, measured.get("multiplier", []))
        out.constant("}")
    out.constant(',"reasons":[')
    for index, (name, label, points, needs, fired, observed, earned) in enumerate(reasons):
        out.constant(
            ("," if index else "")
            + f'{{"signal":{_encoded(name)},"label":{_encoded(label)},'
            + f'"points":{_encoded(points)},"earned":'
        )
        out.number(earned)
        out.constant(',"fired":')
        out.flag(fired)
        out.constant(',"observed":')
        if observed is None:
            out.flag(fired)
        else:
            out.value(observed)
        out.constant(f',"needs":{_encoded(needs)}}}')
    out.constant("]}")
    text, exact = out.written()
    return [exp.alias_(text, OUTPUT, copy=False), exp.alias_(exact, EXACT, copy=False)]
