"""Meaning: type checking rule expressions and compiling them into closures over ``Facts``.

Every decision that does not depend on data is made here, once: names and
functions are resolved, types are checked, aggregates are built, constants are
folded and each operator picks the closure that fits what is known about its
operands. What is left for evaluation is a tree of small closures that read
``Facts`` data and compare plain values; nothing is looked up by node type. The
commonest shape, a trait or a count compared with a literal, is one closure that
reads and compares inline: a signal costs one call. This module walks the tree
and checks it; the closures are built in ``_closures``, function calls and the
aggregates they collect are compiled in ``_calls``.

Closures never raise for data problems. A missing trait is ``null``; an operation
whose operands have the wrong run-time type gives ``null`` (arithmetic) or false
(comparisons, ``in``), and ``and`` / ``or`` / ``not`` / ``if`` only count exactly
``true`` as true. ``x == null`` and ``x != null`` are the only comparisons that
are true for a ``null``.

Two kinds of mistake type-check yet can never be meant, so they are caught here
too: comparing a trait whose type the file declares with a literal of another
type (``account.employees >= "lots"``), and naming a value a variable cannot take
(``tier == "burnin"``). Comparisons of undeclared traits with literals are
listed in ``Compiled.literals``, so the loader can warn when one file compares a
trait with literals of two types.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._aggregates import Aggregate, Scalar, Scope
from ._calls import _FUNCTIONS, _Calls
from ._closures import (
    _ARITHMETIC,
    _COMPARE,
    _ORDERED,
    _REFLECTED,
    _arithmetic_run,
    _Code,
    _comparison_run,
    _conditional_run,
    _constant,
    _derived,
    _literal_membership,
    _negation_run,
    _of,
    _Run,
    _value_membership,
)
from ._errors import _error, did_you_mean
from ._inline import Inline, template
from ._lexer import ExpressionError
from ._parser import (
    Binary,
    Call,
    Conditional,
    Constant,
    Duration,
    ListLiteral,
    Name,
    Node,
    Trait,
    Unary,
    parse,
)
from ._reads import TRAIT_READS
from ._types import _BOOLEAN, _EQUALITY_KINDS, _NUMERIC, _ORDER_KINDS, Type, _type_of, _unify

__all__ = [
    "Choices",
    "Compiled",
    "ExpressionError",
    "TraitLiteral",
    "Type",
    "compile_expression",
    "did_you_mean",
]


@attrs.frozen
class TraitLiteral:
    """An undeclared trait compared with a literal.

    ``trait`` is spelled as in expressions (``"user.plan"``); ``type``, ``offset``
    and ``length`` are the literal's type and place in the expression.
    """

    trait: str
    type: Type
    offset: int
    length: int


@attrs.frozen
class Choices:
    """The only values a string variable takes, so a literal can be checked.

    ``tier`` is one of its model's tiers: ``noun`` is ``"tier"``, ``owner`` says
    whose (``"model 'playbook'"``) and ``values`` lists them lowest first.
    """

    noun: str
    owner: str
    values: tuple[str, ...]


@attrs.frozen
class Compiled:
    """A compiled expression: call ``evaluate(facts)`` to get its value.

    ``aggregates`` lists every aggregate the expression reads, so a store can keep
    exactly those up to date; ``literals`` every literal an undeclared trait is
    compared with.
    """

    source: str
    type: Type
    aggregates: frozenset[Aggregate]
    evaluate: _Run
    literals: tuple[TraitLiteral, ...] = ()
    inline: Inline | None = None
    """The same computation as text, for a model's one function (``_inline``)."""


_NO_VARIABLES: Final[Mapping[str, Type]] = MappingProxyType({})
_NO_CHOICES: Final[Mapping[str, Choices]] = MappingProxyType({})


def compile_expression(
    source: str,
    *,
    variables: Mapping[str, Type] = _NO_VARIABLES,
    expect: Type | None = None,
    scope: Scope = "user",
    traits: Mapping[str, Type] = _NO_VARIABLES,
    choices: Mapping[str, Choices] = _NO_CHOICES,
) -> Compiled:
    """Check ``source`` and compile it into a closure over ``Facts``.

    ``variables`` declares the bare names the expression may use (read with
    ``Facts.variable``); ``expect`` is the type the result must have, where an
    ``ANY`` result is accepted; ``scope`` is written into every ``Aggregate``.
    ``traits`` gives declared trait types (keyed ``"account.employees"``) and
    ``choices`` the values some variables can take (``tier``).
    Raises ``ExpressionError`` pointing at the offending part of ``source``.
    """
    tree = parse(source)
    compiler = _Compiler(variables, scope, source=source, traits=traits, choices=choices)
    code = compiler.compile(tree)
    if expect not in (None, Type.ANY) and code.type not in (expect, Type.ANY):
        raise _error(f"expected a {expect.value} expression, got {code.type.value}", tree)
    return Compiled(
        source,
        code.type,
        frozenset(compiler.aggregates),
        code.run,
        tuple(compiler.literals),
        code.inline,
    )


class _Compiler(_Calls):
    """Compiles one expression's tree, collecting the aggregates it reads."""

    def __init__(
        self,
        variables: Mapping[str, Type],
        scope: Scope,
        *,
        source: str,
        traits: Mapping[str, Type],
        choices: Mapping[str, Choices],
    ) -> None:
        self._variables = variables
        self._scope = scope
        self._source = source
        self._traits = traits
        self._choices = choices
        self.aggregates: set[Aggregate] = set()
        self.literals: list[TraitLiteral] = []
        self._nodes: Mapping[type, Callable[[Any], _Code]] = {
            Constant: self._constant,
            Duration: self._duration,
            ListLiteral: self._list,
            Name: self._name,
            Trait: self._trait,
            Unary: self._unary,
            Binary: self._binary,
            Conditional: self._conditional,
            Call: self._call,
        }
        self._binaries: Mapping[str, Callable[[Binary], _Code]] = {
            "and": self._logic,
            "or": self._logic,
            "in": self._membership,
            "not in": self._membership,
            **dict.fromkeys(_COMPARE, self._comparison),
            **dict.fromkeys(_ARITHMETIC, self._arithmetic),
        }

    def compile(self, node: Node) -> _Code:
        return self._nodes[type(node)](node)

    def _constant(self, node: Constant) -> _Code:
        return _constant(_type_of(node.value), node.value)

    def _duration(self, node: Duration) -> _Code:
        raise _error("a duration like 7d can only be a within= value", node)

    def _list(self, node: ListLiteral) -> _Code:
        raise _error("a list can only be used after 'in'", node)

    def _name(self, node: Name) -> _Code:
        if node.name in self._variables:
            name = node.name
            inline = template("f.variable({name})", name=name)
            return _Code(
                self._variables[name], operator.methodcaller("variable", name), inline=inline
            )
        if node.name in _FUNCTIONS:
            raise _error(f"'{node.name}' is a function; call it like {node.name}(...)", node)
        known = (*self._variables, "true", "false", "null")
        raise _error(f"unknown name '{node.name}'{did_you_mean(node.name, known)}", node)

    def _trait(self, node: Trait) -> _Code:
        scope: Scope = "user" if node.scope == "user" else "account"
        # A declared type is checked here; the value is still checked at run time
        # (not exact), since the host may send anything.
        declared = self._traits.get(f"{scope}.{node.name}", Type.ANY)
        run = TRAIT_READS[scope](node.name)
        inline = template(f"F_{scope}_traits.get({{key}})", key=node.name)
        return _Code(declared, run, lookup=(scope, node.name), inline=inline)

    def _literal(self, subject: Node, op: str, literal: Node, code: _Code) -> None:
        """Check a literal compared with a trait or a variable that has choices."""
        if not code.constant or code.value is None:
            return
        if isinstance(subject, Trait):
            trait = f"{subject.scope}.{subject.name}"
            declared = self._traits.get(trait)
            if declared is None:
                self.literals.append(TraitLiteral(trait, code.type, literal.offset, literal.length))
            elif declared is not code.type:
                raise _error(
                    f"{trait} is declared {declared.value} in [traits], "
                    f"but {self._text(literal)} is a {code.type.value}",
                    literal,
                )
        elif isinstance(subject, Name) and subject.name in self._choices:
            self._choice(subject.name, self._choices[subject.name], op, literal, code.value)

    def _choice(self, name: str, choices: Choices, op: str, literal: Node, value: Any) -> None:
        """Refuse a value ``name`` never takes, and ordering by the values' spelling."""
        if value not in choices.values:
            spelled = f"'{value}'" if isinstance(value, str) else self._text(literal)
            hint = did_you_mean(str(value), choices.values)
            raise _error(
                f"unknown {choices.noun} {spelled} "
                f"({choices.owner} has {', '.join(choices.values)}){hint}",
                literal,
            )
        if op in _ORDERED:
            rank = choices.values.index(value)
            kept = [v for i, v in enumerate(choices.values) if _ORDERED[op](i, rank)]
            listed = ", ".join(f'"{v}"' for v in kept)
            raise _error(
                f"{choices.noun} names would compare alphabetically, not by rank; "
                f"list them: {name} in [{listed}]",
                literal,
            )

    def _text(self, node: Node) -> str:
        return self._source[node.offset : node.offset + node.length]

    def _unary(self, node: Unary) -> _Code:
        operand = self.compile(node.operand)
        inner = operand.run
        if node.op == "-":
            if operand.type not in _NUMERIC:
                raise _error(f"'-' needs a number, got {operand.type.value}", node.operand)
            run, inline = _negation_run(operand)
            return _derived(Type.NUMBER, run, [operand], exact=operand.exact, inline=inline)
        if operand.type not in _BOOLEAN:
            raise _error(f"'not' needs a boolean, got {operand.type.value}", node.operand)
        if operand.exact:
            inline = template("not {a}", a=_of(operand))
            negation: _Run = lambda facts: not inner(facts)  # noqa: E731
        else:
            inline = template("{a} is not True", a=_of(operand))
            negation = lambda facts: inner(facts) is not True  # noqa: E731
        return _derived(Type.BOOL, negation, [operand], exact=True, inline=inline)

    def _binary(self, node: Binary) -> _Code:
        return self._binaries[node.op](node)

    def _logic(self, node: Binary) -> _Code:
        left, right = self.compile(node.left), self.compile(node.right)
        for code, child in ((left, node.left), (right, node.right)):
            if code.type not in _BOOLEAN:
                raise _error(f"'{node.op}' needs booleans, got {code.type.value}", child)
        first, second = left.run, right.run
        exact = left.exact and right.exact
        # Inexact operands may be any value: only exactly true counts as true.
        if node.op == "and":
            run: _Run = (
                (lambda facts: first(facts) and second(facts))
                if exact
                else (lambda facts: first(facts) is True and second(facts) is True)
            )
        else:
            run = (
                (lambda facts: first(facts) or second(facts))
                if exact
                else (lambda facts: first(facts) is True or second(facts) is True)
            )
        pattern = f"{{a}} {node.op} {{b}}" if exact else f"{{a}} is True {node.op} {{b}} is True"
        inline = template(pattern, a=_of(left), b=_of(right))
        return _derived(Type.BOOL, run, [left, right], exact=True, inline=inline)

    def _arithmetic(self, node: Binary) -> _Code:
        left, right = self.compile(node.left), self.compile(node.right)
        if left.type not in _NUMERIC or right.type not in _NUMERIC:
            raise _error(
                f"'{node.op}' needs numbers, got {left.type.value} and {right.type.value}", node
            )
        run, inline = _arithmetic_run(node.op, left, right)
        # Not exact: division by zero, and overflow, give null.
        return _derived(Type.NUMBER, run, [left, right], inline=inline)

    def _comparison(self, node: Binary) -> _Code:
        left, right = self.compile(node.left), self.compile(node.right)
        self._literal(node.left, node.op, node.right, right)
        self._literal(node.right, _REFLECTED[node.op], node.left, left)
        if Type.NULL in (left.type, right.type):
            if node.op not in ("==", "!="):
                raise _error("null can only be compared with == or !=", node)
            code = right if left.type is Type.NULL else left
            other = code.run
            equal = node.op == "=="
            run: _Run = (
                (lambda facts: other(facts) is None)
                if equal
                else (lambda facts: other(facts) is not None)
            )
            inline = template("{a} is None" if equal else "{a} is not None", a=_of(code))
            return _derived(Type.BOOL, run, [left, right], exact=True, inline=inline)
        equality = node.op in ("==", "!=")
        kinds = _EQUALITY_KINDS if equality else _ORDER_KINDS
        allowed = {*kinds.values(), Type.ANY}
        for code in (left, right):
            if not equality and code.type not in allowed:
                raise _error(f"'{node.op}' needs numbers or strings, got {code.type.value}", node)
        if not {left.type, right.type} <= allowed or (
            Type.ANY not in (left.type, right.type) and left.type is not right.type
        ):
            raise _error(f"cannot compare {left.type.value} with {right.type.value}", node)
        run, compared = _comparison_run(node.op, kinds, left, right)
        return _derived(Type.BOOL, run, [left, right], exact=True, inline=compared)

    def _membership(self, node: Binary) -> _Code:
        left = self.compile(node.left)
        if left.type not in {*_EQUALITY_KINDS.values(), Type.ANY, Type.NULL}:
            raise _error(
                f"'{node.op}' needs a number, string or bool on the left, got {left.type.value}",
                node.left,
            )
        negated = node.op == "not in"
        if isinstance(node.right, ListLiteral):
            members = self._members(node.right, node.left)
            run, inline = _literal_membership(left, members, negated)
            return _derived(Type.BOOL, run, [left], exact=True, inline=inline)
        right = self.compile(node.right)
        if right.type not in (Type.LIST, Type.ANY):
            raise _error(
                f"'{node.op}' needs a list on the right, got {right.type.value}", node.right
            )
        run = _value_membership(left.run, right.run, negated)
        return _derived(Type.BOOL, run, [left, right], exact=True)

    def _members(self, node: ListLiteral, subject: Node) -> Mapping[Type, frozenset[Scalar]]:
        """Group a list literal's items by run-time kind, so true never finds 1."""
        groups: dict[Type, set[Scalar]] = {kind: set() for kind in _EQUALITY_KINDS.values()}
        for item in node.items:
            code = self.compile(item)
            if not code.constant:
                raise _error("list items must be literals", item)
            self._literal(subject, "in", item, code)
            kind = _EQUALITY_KINDS.get(type(code.value))
            # A null item is dropped: a missing value is in no list.
            if kind is not None:
                groups[kind].add(code.value)
        return {kind: frozenset(values) for kind, values in groups.items()}

    def _conditional(self, node: Conditional) -> _Code:
        then = self.compile(node.then)
        condition = self.compile(node.condition)
        otherwise = self.compile(node.otherwise)
        if condition.type not in _BOOLEAN:
            raise _error(
                f"'if' needs a boolean condition, got {condition.type.value}", node.condition
            )
        result = _unify(then.type, otherwise.type)
        if result is None:
            raise _error(
                "both branches of 'if' must have the same type, "
                f"got {then.type.value} and {otherwise.type.value}",
                node,
            )
        run, inline = _conditional_run(then, condition, otherwise)
        exact = then.exact and otherwise.exact
        return _derived(result, run, [then, condition, otherwise], exact=exact, inline=inline)
