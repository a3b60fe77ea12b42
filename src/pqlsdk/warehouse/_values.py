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
it can occur: SQL engines order NaN above every number, Python compares it false.
What differs between engines (reading JSON, writing it) is asked of the query's
``Dialect``.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import deque
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import attrs
import sqlglot
import sqlglot.dialects.duckdb  # what every template is read as: loaded with the package
from sqlglot import exp

from ..rules._compiler import Type

if TYPE_CHECKING:
    from ._dialects import Dialect

__all__ = [
    "Value",
    "aliased",
    "coalesce_false",
    "copied",
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

_PLACEHOLDER: Final = re.compile(r"(?<![:\w]):([a-z_]\w*)")
_SLOT: Final = "__slot_"

_E = TypeVar("_E", bound=exp.Expr)


@functools.lru_cache(maxsize=512)
def _parsed(text: str, read: str) -> tuple[exp.Expr, frozenset[int]]:
    """Parse ``text`` once; return its tree and its slots' ids (by ``id``), for ``template``."""
    # DuckDB's dialect reads ``:name`` as an alias; the slots are columns until filled.
    tree = sqlglot.parse_one(_PLACEHOLDER.sub(_SLOT + r"\1", text), read=read)
    slots = frozenset(
        id(node)
        for node in tree.find_all(exp.Column)
        if not node.table and node.name.startswith(_SLOT)
    )
    return tree, slots


def template(text: str, *, read: str = "duckdb", **parts: exp.Expr) -> exp.Expr:
    """Build ``text`` (constant SQL, never data) with ``:name`` placeholders filled.

    ``text`` is read as SQL of dialect ``read``: the engine-neutral SQL the
    compiler writes itself reads as DuckDB's, and each ``Dialect`` reads its own.
    Every value from a rules file or a history enters as an ``exp.Literal`` (or
    another syntax node) through ``parts``: nothing is pasted into SQL text.
    """
    # The parsed text is kept for the next call: each call fills a copy, whose slots
    # are found as it is made (a search of the tree cost as much as the copy).
    tree, slots = _copy(*_parsed(text, read))
    for slot in slots:
        filled = grouped(_owned(parts[slot.name[len(_SLOT) :]]))
        if slot is tree:
            return filled
        slot.replace(filled)
    return tree


def _owned(part: exp.Expr) -> exp.Expr:
    """``part`` itself when no tree holds it yet, else a copy: a node has one place.

    The parts of a query are mostly built for the one place they fill (a
    template's result filling another template): copying each at every level of
    nesting made compiling a rules file cost more than the SQL it ran.
    """
    return part if part.parent is None else copied(part)


def aliased(node: exp.Expr, name: str) -> exp.Expr:
    """``node AS name``: ``node`` itself when no tree holds it yet, else a copy (``_owned``)."""
    return exp.alias_(_owned(node), name, copy=False)


def copied(tree: _E) -> _E:
    """Return a copy of ``tree``: what ``tree.copy()`` gives, in about half its time.

    sqlglot copies each node's ``meta`` (a parsed node's place in its text)
    and comments through ``copy.deepcopy``, whose dispatch costs more than the
    copy itself; here a value of those is copied as deepcopy would copy it,
    directly. A compiled query is copied node by node hundreds of times
    (``template``, and each statement before sqlglot writes it, ``_run``).
    """
    return _copy(tree, frozenset())[0]


def _copy(tree: _E, marked: frozenset[int]) -> tuple[_E, list[exp.Expr]]:
    """Copy ``tree`` (``copied``); also return the copies of its nodes whose ``id`` is marked.

    Breadth first, as ``find_all`` walks: the marked nodes' copies come in its order.
    """
    root = tree.__class__()
    found: list[exp.Expr] = []
    pending: deque[tuple[exp.Expr, exp.Expr]] = deque([(tree, root)])
    while pending:
        node, twin = pending.popleft()
        if marked and id(node) in marked:
            found.append(twin)
        _copy_extras(node, twin)
        args = twin.args
        for key, value in node.args.items():
            if isinstance(value, exp.Expr):
                child = value.__class__()
                child.parent, child.arg_key = twin, key
                args[key] = child
                pending.append((value, child))
            elif type(value) is list:
                items: list[Any] = []
                for index, item in enumerate(value):
                    if isinstance(item, exp.Expr):
                        child = item.__class__()
                        child.parent, child.arg_key, child.index = twin, key, index
                        pending.append((item, child))
                        items.append(child)
                    else:
                        items.append(item)
                args[key] = items
            else:
                args[key] = value
    return root, found


def _copy_extras(node: exp.Expr, twin: exp.Expr) -> None:
    """Copy to ``twin`` what ``node`` holds besides its children, as sqlglot's own copy does."""
    if node.comments is not None:
        twin.comments = list(node.comments)  # strings: deepcopy shares them too
    if node._type is not None:
        twin._type = copied(node._type)
    if node._meta is not None:
        twin._meta = {key: _meta_copy(value) for key, value in node._meta.items()}
    if node._hash is not None:
        twin._hash = node._hash


def _meta_copy(value: Any) -> Any:
    """Copy a ``meta`` value as ``copy.deepcopy`` would: a tree copied, a scalar shared."""
    if value is None or type(value) in (int, str, bool, float):
        return value
    if isinstance(value, exp.Expr):
        return copied(value)
    return copy.deepcopy(value)


def select(text: str, **parts: exp.Expr) -> exp.Select:
    """Build a ``SELECT`` from ``text`` as ``template`` does (``text`` is one)."""
    return cast(exp.Select, template(text, read="duckdb", **parts))


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


def whole_of(value: Value, dialect: Dialect) -> exp.Expr:
    """Tell whether ``value`` is a number that Python holds as an int."""
    if value.type is Type.ANY:
        return coalesce_false(dialect.json_is(value.sql, "integer"))
    if value.whole is not None:
        return value.whole
    return exp.Boolean(this=value.integer)


def dynamic(value: Value) -> bool:
    """Tell whether ``value``'s kind of number (int or float) is only known at run time."""
    return value.type is Type.ANY or value.whole is not None


def number_of(value: Value, dialect: Dialect) -> exp.Expr | None:
    """Read the value as a SQL number, NULL unless it is one; None if it never is."""
    if value.type is Type.NUMBER:
        return value.sql
    if value.type is Type.ANY:
        return _when(dialect.json_is(value.sql, "number"), dialect.json_number(value.sql))
    return None


def text_of(value: Value, dialect: Dialect) -> exp.Expr | None:
    """Read the value as a SQL string, NULL unless it is one; None if it never is."""
    if value.type is Type.STRING:
        return value.sql
    if value.type is Type.ANY:
        return _when(dialect.json_is(value.sql, "string"), dialect.json_text(value.sql))
    return None


def flag_of(value: Value, dialect: Dialect) -> exp.Expr | None:
    """Read the value as a SQL boolean, NULL unless it is one; None if it never is."""
    if value.type is Type.BOOL:
        return value.sql
    if value.type is Type.ANY:
        return _when(dialect.json_is(value.sql, "boolean"), dialect.json_flag(value.sql))
    return None


def _when(test: exp.Expr, then: exp.Expr) -> exp.Expr:
    """``CASE WHEN test THEN then END``: the read only runs on JSON of its kind."""
    return exp.Case(ifs=[exp.If(this=test, true=then)])


def coalesce_false(condition: exp.Expr) -> exp.Expr:
    """``condition``, false where it is NULL: what Python's checks give."""
    return template("COALESCE(:c, FALSE)", c=condition)


def truth(value: Value, dialect: Dialect) -> exp.Expr:
    """Whether ``value`` is exactly true (what ``is True`` tests in Python)."""
    if value.type is Type.BOOL and not value.nullable:
        return value.sql
    flag = flag_of(value, dialect)
    return exp.false() if flag is None else coalesce_false(flag)


def is_null(value: Value, dialect: Dialect) -> exp.Expr:
    """Whether ``value`` is null (a missing trait, JSON null, a null result)."""
    if value.type is Type.NULL:
        return exp.true()
    if value.type is Type.ANY:
        return exp.paren(
            exp.or_(template(":j IS NULL", j=value.sql), dialect.json_is(value.sql, "null"))
        )
    if not value.nullable:
        return exp.false()
    return template(":x IS NULL", x=value.sql)


def not_nan(number: exp.Expr, dialect: Dialect) -> exp.Expr:
    """Test that ``number`` is not NaN (NULL stays NULL)."""
    return exp.not_(dialect.is_nan(template("CAST(:x AS DOUBLE)", x=number)))


def json_of(value: Value, dialect: Dialect) -> exp.Expr:
    """Return the value as JSON, for results typed ``any``."""
    if value.type is Type.ANY:
        return value.sql
    if value.type is Type.NULL:
        return template("CAST('null' AS JSON)")
    double = value.type is Type.NUMBER and not value.integer
    if value.whole is not None:
        json = exp.Case(
            ifs=[
                exp.If(
                    this=value.whole,
                    true=dialect.json_of(template("CAST(:x AS BIGINT)", x=value.sql), double=False),
                )
            ],
            default=dialect.json_of(value.sql, double=True),
        )
        return template("COALESCE(:j, CAST('null' AS JSON))", j=json)
    return template(
        "COALESCE(:j, CAST('null' AS JSON))", j=dialect.json_of(value.sql, double=double)
    )


def wrapped(value: Value, dialect: Dialect) -> exp.Expr:
    """Wrap the value for a reason: ``{"v": value}``, or ``{"x": "inf"}`` for a non-finite number.

    JSON has no infinity; the reader turns ``x`` back into a float, so a reason
    still says ``inf`` the way the in-process engine does.
    """
    if value.type is Type.NUMBER and value.nonfinite:
        finite = exp.or_(template(":x IS NULL", x=value.sql), dialect.is_finite(value.sql))
        return exp.Case(
            ifs=[exp.If(this=finite, true=dialect.json_object([("v", json_of(value, dialect))]))],
            default=dialect.json_object([("x", template("CAST(:x AS VARCHAR)", x=value.sql))]),
        )
    return dialect.json_object([("v", json_of(value, dialect))])
