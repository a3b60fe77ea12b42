"""Rule expressions as SQL: the same parsed tree the in-process compiler reads.

``SqlExpressions.compile`` turns one expression's syntax tree into a ``Value``
whose SQL computes, for one subject's row of facts, exactly what the closure
``rules._compiler`` builds would return for that subject. The facts (traits,
aggregates, times, variables) are columns that ``FactColumns`` names and the
model's query computes; this module only decides how an operator reads them.

A construct the SQL cannot compute to the same answer raises ``Unsupported``
with its place in the expression, which the caller turns into a located
``RulesError``: a query is never built that could answer differently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from sqlglot import exp

from .._aggregates import Aggregate, Scope
from ..rules._compiler import Type, compile_expression
from ..rules._parser import (
    Binary,
    Call,
    Conditional,
    Constant,
    ListLiteral,
    Name,
    Node,
    Trait,
    Unary,
    parse,
)
from ._values import (
    Value,
    coalesce_false,
    dynamic,
    flag_of,
    grouped,
    is_null,
    json_of,
    literal,
    not_nan,
    number_of,
    template,
    text_of,
    truth,
    whole_of,
)

if TYPE_CHECKING:
    from ._dialects import Construct, Dialect

__all__ = ["FactColumns", "SqlExpressions", "Unsupported"]


class Unsupported(Exception):  # noqa: N818 - becomes a RulesError with its place
    """A construct the SQL backend cannot compute to the in-process answer.

    ``construct`` names what some engines can compute (``Dialect.refuses``);
    None when no SQL engine can.
    """

    def __init__(
        self, message: str, offset: int, length: int, construct: Construct | None = None
    ) -> None:
        super().__init__(message)
        self.offset = offset
        self.length = length
        self.construct = construct


class FactColumns(Protocol):
    """Where a model's query keeps each fact an expression may read."""

    def trait(self, scope: Scope, name: str) -> exp.Expr:
        """Return the JSON column of a user's or account's trait (NULL when missing)."""
        ...

    def aggregate(self, aggregate: Aggregate) -> exp.Expr:
        """Return the BIGINT column of an aggregate's value."""
        ...

    def fact(self, name: str) -> Value:
        """``days_since_last_active``, ``days_since_first_seen`` or ``team_size``."""
        ...

    def variable(self, name: str) -> Value:
        """Return a route variable (``score``, ``tier``, ``gate_passed``, ``user_id``...)."""
        ...


_KINDS = (Type.NUMBER, Type.STRING, Type.BOOL)
_READERS: dict[Type, Callable[[Value, Dialect], exp.Expr | None]] = {
    Type.NUMBER: number_of,
    Type.STRING: text_of,
    Type.BOOL: flag_of,
}
_OPERATORS: dict[str, type[exp.Binary]] = {
    "==": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}
_ARITHMETIC: dict[str, type[exp.Binary]] = {
    "+": exp.Add,
    "-": exp.Sub,
    "*": exp.Mul,
}


class SqlExpressions:
    """Compiles expressions of one model (one scope) against its fact columns."""

    def __init__(self, columns: FactColumns, scope: Scope, dialect: Dialect) -> None:
        self._columns = columns
        self._scope = scope
        self._dialect = dialect
        self._source = ""

    def compile_source(self, source: str) -> Value:
        """Parse and compile ``source`` (it compiled in process, so it parses)."""
        self._source = source
        return self.compile(parse(source))

    def compile(self, node: Node) -> Value:  # noqa: PLR0911 - one return per node type
        if isinstance(node, Constant):
            return _constant(node.value)
        if isinstance(node, Trait):
            return Value(Type.ANY, self._columns.trait(node.scope, node.name))
        if isinstance(node, Name):
            return self._columns.variable(node.name)
        if isinstance(node, Unary):
            return self._unary(node)
        if isinstance(node, Binary):
            return self._binary(node)
        if isinstance(node, Conditional):
            return self._conditional(node)
        # Durations and lists only appear inside calls and ``in``: what is left is a call.
        return self._call(cast(Call, node))

    def _unary(self, node: Unary) -> Value:
        operand = self.compile(node.operand)
        if node.op == "not":
            return Value(
                Type.BOOL, exp.Not(this=exp.paren(truth(operand, self._dialect))), nullable=False
            )
        return self._arithmetic("-", _constant(0), operand, node)

    def _binary(self, node: Binary) -> Value:
        if node.op in ("and", "or"):
            left, right = self.compile(node.left), self.compile(node.right)
            joined = exp.and_ if node.op == "and" else exp.or_
            d = self._dialect
            sql = exp.paren(joined(exp.paren(truth(left, d)), exp.paren(truth(right, d))))
            return Value(Type.BOOL, sql, nullable=False)
        if node.op in ("in", "not in"):
            return self._membership(node)
        left, right = self.compile(node.left), self.compile(node.right)
        if node.op in _OPERATORS:
            return Value(Type.BOOL, _compare(node.op, left, right, self._dialect), nullable=False)
        return self._arithmetic(node.op, left, right, node)

    def _arithmetic(self, op: str, left: Value, right: Value, node: Node) -> Value:
        dialect = self._dialect
        a, b = _as_number(left, dialect).sql, _as_number(right, dialect).sql
        nonfinite = left.nonfinite or right.nonfinite
        integer = left.integer and right.integer
        whole = None
        if op != "/" and (dynamic(left) or dynamic(right)):
            whole = exp.and_(whole_of(left, dialect), whole_of(right, dialect))
        if op in _ARITHMETIC:
            sql: exp.Expr = exp.paren(_ARITHMETIC[op](this=grouped(a), expression=grouped(b)))
        elif op == "/":
            # Division by zero is null, not infinity; Python's true division of ints
            # is a float.
            sql = dialect.divide(a, b)
            integer = False
        else:
            if not integer and "float_modulo" in dialect.refuses:
                raise Unsupported(
                    f"'%' on a number that may not be an int has no exact form in "
                    f"{dialect.engine} (Python's % on floats is C's fmod)",
                    node.offset,
                    node.length,
                    "float_modulo",
                )
            sql = dialect.modulo(a, b, integer=integer)
        return Value(Type.NUMBER, sql, integer=integer, nonfinite=nonfinite, whole=whole)

    def _membership(self, node: Binary) -> Value:
        dialect = self._dialect
        left = self.compile(node.left)
        negated = node.op == "not in"
        if isinstance(node.right, ListLiteral):
            members: dict[Type, list[exp.Expr]] = {kind: [] for kind in _KINDS}
            for item in node.right.items:
                value = self.compile(item)
                if value.type in members:
                    members[value.type].append(value.sql)
            tests = []
            for kind, items in members.items():
                read = _READERS[kind](left, dialect)
                if read is None:
                    continue
                found = (
                    coalesce_false(exp.In(this=grouped(read), expressions=items)) if items else None
                )
                if negated:
                    present = template(":x IS NOT NULL", x=read)
                    tests.append(present if found is None else exp.and_(present, exp.not_(found)))
                elif found is not None:
                    tests.append(found)
            return Value(Type.BOOL, _any(tests), nullable=False)
        right = self.compile(node.right)
        element_json = Value(Type.ANY, exp.column("item"))
        tests = []
        for kind in _KINDS:
            read = _READERS[kind](left, dialect)
            if read is None:
                continue
            element = cast(exp.Expr, _READERS[kind](element_json, dialect))  # JSON: every kind
            equal: exp.Expr = exp.EQ(this=grouped(element), expression=grouped(read))
            if kind is Type.NUMBER and left.nonfinite:
                equal = exp.and_(equal, not_nan(read, dialect))
            found = dialect.any_element(right.sql, equal)
            tests.append(exp.and_(template(":x IS NOT NULL", x=read), _negate(found, negated)))
        # Not a list literal: the checker leaves a trait (JSON), which may hold a list.
        is_list = dialect.json_is(right.sql, "array")
        return Value(Type.BOOL, coalesce_false(exp.and_(is_list, _any(tests))), nullable=False)

    def _conditional(self, node: Conditional) -> Value:
        then, condition = self.compile(node.then), self.compile(node.condition)
        otherwise = self.compile(node.otherwise)
        branches = [then, otherwise]
        kinds = {b.type for b in branches} - {Type.NULL}
        if len(kinds) > 1 or Type.ANY in kinds:  # a trait on one side: the result is JSON
            if any(b.nonfinite for b in branches):
                raise Unsupported(
                    "an 'if' that mixes a trait with a number that may be infinite "
                    "(days_since_*()) has no SQL form: JSON cannot hold infinity",
                    node.offset,
                    node.length,
                )
            then_sql, else_sql = json_of(then, self._dialect), json_of(otherwise, self._dialect)
            result = Type.ANY
        else:
            then_sql, else_sql = then.sql, otherwise.sql
            result = kinds.pop() if kinds else Type.NULL
        test = truth(condition, self._dialect)
        sql = exp.Case(ifs=[exp.If(this=test, true=then_sql)], default=else_sql)
        whole = None
        if result is Type.NUMBER and (
            dynamic(then) or dynamic(otherwise) or then.integer != otherwise.integer
        ):
            whole = exp.Case(
                ifs=[exp.If(this=test, true=whole_of(then, self._dialect))],
                default=whole_of(otherwise, self._dialect),
            )
        return Value(
            result,
            sql,
            integer=then.integer and otherwise.integer,
            nonfinite=then.nonfinite or otherwise.nonfinite,
            nullable=then.nullable or otherwise.nullable,
            whole=whole,
        )

    def _call(self, node: Call) -> Value:
        if node.name in ("count", "distinct", "active_days"):
            aggregate = _aggregate(self._source, node, self._scope)
            column = self._columns.aggregate(aggregate)
            return Value(Type.NUMBER, column, integer=True, nullable=False)
        if node.name in ("days_since_last_active", "days_since_first_seen", "team_size"):
            return self._columns.fact(node.name)
        values = [self.compile(arg) for arg in node.args]
        if node.name == "abs":
            return self._abs(values[0])
        if node.name == "clamp":
            low = self._minmax("max", values[:2])
            return self._minmax("min", [low, values[2]])
        return self._minmax(node.name, values)

    def _abs(self, value: Value) -> Value:
        # The rules' checker lets only numbers (and traits) reach abs(): it reads as one.
        return Value(
            Type.NUMBER,
            exp.Abs(this=_as_number(value, self._dialect).sql),
            integer=value.integer,
            nonfinite=value.nonfinite,
            nullable=value.nullable,
            whole=whole_of(value, self._dialect) if dynamic(value) else None,
        )

    def _minmax(self, name: str, values: Sequence[Value]) -> Value:
        """Python's ``min``/``max``: the first of the best by ``<``, null if any is null.

        The dialect walks the arguments in order as Python does, so a NaN
        argument gives what Python gives (kept first, skipped later). Python
        returns the winning argument itself, an int or a float: when the
        arguments are not all of one kind, each carries whether it is an int
        (``whole``), and the winner's says what a reason shows.
        """
        dialect = self._dialect
        integer = all(v.integer for v in values)
        track = not integer and any(dynamic(v) or v.integer for v in values)
        number, whole = dialect.best(
            name,
            [
                (_as_number(v, dialect).sql, whole_of(v, dialect) if track else exp.false())
                for v in values
            ],
        )
        return Value(
            Type.NUMBER,
            exp.cast(number, exp.DataType.build("BIGINT")) if integer else number,
            integer=integer,
            nonfinite=any(v.nonfinite for v in values),
            nullable=any(v.nullable for v in values),
            whole=whole if track else None,
        )


def _constant(value: object) -> Value:
    if value is None:
        return Value(Type.NULL, exp.Null())
    if isinstance(value, bool):
        return Value(Type.BOOL, literal(value), nullable=False)
    if isinstance(value, str):
        return Value(Type.STRING, literal(value), nullable=False)
    # The parser's constants are None, bool, str, int or float: a number here.
    return Value(Type.NUMBER, literal(value), integer=isinstance(value, int), nullable=False)


def _as_number(value: Value, dialect: Dialect) -> Value:
    """Read a number operand as a typed SQL number (a trait read as one, NULL otherwise).

    The rules' checker lets only numbers, traits and null reach arithmetic and
    the math functions: null reads as a NULL number.
    """
    number = number_of(value, dialect)
    return Value(Type.NUMBER, exp.Null() if number is None else number, integer=value.integer)


def _negate(condition: exp.Expr, negated: bool) -> exp.Expr:
    return exp.not_(condition) if negated else condition


def _any(tests: Sequence[exp.Expr]) -> exp.Expr:
    if not tests:
        return exp.false()
    return exp.paren(exp.or_(*(exp.paren(test) for test in tests)))


def _compare(op: str, left: Value, right: Value, dialect: Dialect) -> exp.Expr:
    """``left op right`` as Python's closures decide it: same kind, then compare."""
    if Type.NULL in (left.type, right.type):
        other = right if left.type is Type.NULL else left
        null = is_null(other, dialect)
        return null if op == "==" else exp.paren(exp.not_(null))
    kinds = _KINDS if op in ("==", "!=") else (Type.NUMBER, Type.STRING)
    tests = []
    for kind in kinds:
        a, b = _READERS[kind](left, dialect), _READERS[kind](right, dialect)
        if a is None or b is None:
            continue
        if kind is Type.STRING and op not in ("==", "!="):  # Python orders by code point
            a, b = dialect.collated(grouped(a)), dialect.collated(grouped(b))
        test: exp.Expr = _OPERATORS[op](this=grouped(a), expression=grouped(b))
        if kind is Type.NUMBER and (left.nonfinite or right.nonfinite):
            nan = exp.or_(exp.not_(not_nan(a, dialect)), exp.not_(not_nan(b, dialect)))
            if op == "!=":  # NaN differs from everything, as in Python
                both = exp.and_(template(":a IS NOT NULL", a=a), template(":b IS NOT NULL", b=b))
                test = exp.and_(both, exp.paren(exp.or_(test, nan)))
            else:
                test = exp.and_(test, exp.not_(exp.paren(nan)))
        tests.append(coalesce_false(test))
    return _any(tests)


def _aggregate(source: str, node: Call, scope: Scope) -> Aggregate:
    """Return the ``Aggregate`` the in-process compiler makes for this call: the same object."""
    text = source[node.offset : node.offset + node.length]
    (aggregate,) = compile_expression(text, scope=scope).aggregates
    return aggregate
