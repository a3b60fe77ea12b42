"""Values in SQL: how each static type of the rules language is held, and read back.

The in-process engine checks run-time types on every operation: a trait may hold
anything the host sent, a comparison needs two values of one kind, arithmetic
needs two numbers. The SQL keeps the same information in the shape each static
type allows:

- a number, a string or a bool is a typed SQL value, ``NULL`` for null;
- a trait (or anything typed ``any``) stays JSON, as sent, and is read through
  accessors that give the typed value when the JSON holds that kind and
  ``NULL`` otherwise (``number_of``, ``text_of``, ``flag_of``).

Every comparison is then "the kinds match and the values compare", one kind at a
time, and ``COALESCE(..., FALSE)`` makes a comparison with null false, as in
Python. NaN (``inf - inf`` when a ``days_since_*`` is infinite) is guarded where
it can occur: DuckDB orders NaN above every number, Python compares it false.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final, cast

import attrs
import sqlglot
from sqlglot import exp

from ..rules._compiler import Type

__all__ = [
    "NUMBER_TYPES",
    "Value",
    "coalesce_false",
    "dynamic",
    "flag_of",
    "grouped",
    "is_null",
    "json_of",
    "literal",
    "not_nan",
    "number_of",
    "select",
    "template",
    "text_of",
    "truth",
    "whole_of",
    "wrapped",
]

NUMBER_TYPES: Final = ("BIGINT", "UBIGINT", "DOUBLE")
"""What DuckDB's ``json_type`` says for a JSON number."""


_PLACEHOLDER: Final = re.compile(r"(?<![:\w]):([a-z_]\w*)")
_SLOT: Final = "__slot_"


@functools.lru_cache(maxsize=512)
def _parsed(text: str) -> exp.Expr:
    # DuckDB's dialect reads ``:name`` as an alias; the slots are columns until filled.
    return sqlglot.parse_one(_PLACEHOLDER.sub(_SLOT + r"\1", text), read="duckdb")


def template(text: str, **parts: exp.Expr) -> exp.Expr:
    """Build ``text`` (constant SQL, never data) with ``:name`` placeholders filled.

    Every value from a rules file or a history enters as an ``exp.Literal`` (or
    another syntax node) through ``parts``: nothing is pasted into SQL text.
    """

    def fill(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.startswith(_SLOT):
            return grouped(parts[node.name[len(_SLOT) :]].copy())
        return node

    return _parsed(text).transform(fill)


def select(text: str, **parts: exp.Expr) -> exp.Select:
    """Build a ``SELECT`` from ``text`` as ``template`` does (``text`` is one)."""
    return cast(exp.Select, template(text, **parts))


def literal(value: Any) -> exp.Expr:
    """Return a SQL literal for a Python scalar: quoted and escaped by the syntax tree."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    return template("CAST(:v AS DOUBLE)", v=exp.Literal.number(repr(float(value))))


_ATOMS: Final = (
    exp.Column,
    exp.Literal,
    exp.Null,
    exp.Boolean,
    exp.Func,
    exp.Paren,
    exp.Case,
    exp.Cast,
    exp.Array,
    exp.Tuple,
)


def grouped(node: exp.Expr) -> exp.Expr:
    """``node`` in parentheses unless it is atomic: a tree put inside another keeps its meaning."""
    return node if isinstance(node, _ATOMS) else exp.Paren(this=node)


@attrs.frozen
class Value:
    """A compiled expression: its static type and its SQL.

    ``integer``: a number that Python holds as an int (counts, int literals).
    ``nonfinite``: a number that may be infinite or NaN (``days_since_*``).
    ``nullable``: the SQL may be NULL.
    ``whole``: for a number whose kind is only known at run time (it comes from a
    trait, or from branches of both kinds), the SQL that tells whether Python
    holds it as an int: a reason shows ``3``, not ``3.0``, as Python's does.
    """

    type: Type
    sql: exp.Expr
    integer: bool = False
    nonfinite: bool = False
    nullable: bool = True
    whole: exp.Expr | None = None


def whole_of(value: Value) -> exp.Expr:
    """Tell whether ``value`` is a number that Python holds as an int."""
    if value.type is Type.ANY:
        return template("COALESCE(json_type(:j) IN ('BIGINT', 'UBIGINT'), FALSE)", j=value.sql)
    if value.whole is not None:
        return value.whole
    return exp.Boolean(this=value.integer)


def dynamic(value: Value) -> bool:
    """Tell whether ``value``'s kind of number (int or float) is only known at run time."""
    return value.type is Type.ANY or value.whole is not None


def number_of(value: Value) -> exp.Expr | None:
    """Read the value as a SQL number, NULL unless it is one; None if it never is."""
    if value.type is Type.NUMBER:
        return value.sql
    if value.type is Type.ANY:
        return template(
            "CASE WHEN json_type(:j) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
            "THEN CAST(:j AS DOUBLE) END",
            j=value.sql,
        )
    return None


def text_of(value: Value) -> exp.Expr | None:
    """Read the value as a SQL string, NULL unless it is one; None if it never is."""
    if value.type is Type.STRING:
        return value.sql
    if value.type is Type.ANY:
        return template("CASE WHEN json_type(:j) = 'VARCHAR' THEN :j ->> '$' END", j=value.sql)
    return None


def flag_of(value: Value) -> exp.Expr | None:
    """Read the value as a SQL boolean, NULL unless it is one; None if it never is."""
    if value.type is Type.BOOL:
        return value.sql
    if value.type is Type.ANY:
        return template(
            "CASE WHEN json_type(:j) = 'BOOLEAN' THEN CAST(:j AS BOOLEAN) END", j=value.sql
        )
    return None


def coalesce_false(condition: exp.Expr) -> exp.Expr:
    """``condition``, false where it is NULL: what Python's checks give."""
    return template("COALESCE(:c, FALSE)", c=condition)


def truth(value: Value) -> exp.Expr:
    """Whether ``value`` is exactly true (what ``is True`` tests in Python)."""
    if value.type is Type.BOOL and not value.nullable:
        return value.sql
    flag = flag_of(value)
    return exp.false() if flag is None else coalesce_false(flag)


def is_null(value: Value) -> exp.Expr:
    """Whether ``value`` is null (a missing trait, JSON null, a null result)."""
    if value.type is Type.NULL:
        return exp.true()
    if value.type is Type.ANY:
        return template("(:j IS NULL OR json_type(:j) = 'NULL')", j=value.sql)
    if not value.nullable:
        return exp.false()
    return template(":x IS NULL", x=value.sql)


def not_nan(number: exp.Expr) -> exp.Expr:
    """Test that ``number`` is not NaN (NULL stays NULL)."""
    return template("NOT isnan(CAST(:x AS DOUBLE))", x=number)


def json_of(value: Value) -> exp.Expr:
    """Return the value as JSON, for results typed ``any``."""
    if value.type is Type.ANY:
        return value.sql
    if value.type is Type.NULL:
        return template("CAST('null' AS JSON)")
    if value.whole is not None:
        return template(
            "COALESCE(CASE WHEN :w THEN to_json(CAST(:x AS BIGINT)) ELSE to_json(:x) END, "
            "CAST('null' AS JSON))",
            w=value.whole,
            x=value.sql,
        )
    return template("COALESCE(to_json(:x), CAST('null' AS JSON))", x=value.sql)


def wrapped(value: Value) -> exp.Expr:
    """Wrap the value for a reason: ``{"v": value}``, or ``{"x": "inf"}`` for a non-finite number.

    JSON has no infinity; the reader turns ``x`` back into a float, so a reason
    still says ``inf`` the way the in-process engine does.
    """
    if value.type is Type.NUMBER and value.nonfinite:
        return template(
            "CASE WHEN :x IS NULL OR isfinite(:x) THEN json_object('v', :j) "
            "ELSE json_object('x', CAST(:x AS VARCHAR)) END",
            x=value.sql,
            j=json_of(value),
        )
    return template("json_object('v', :j)", j=json_of(value))
