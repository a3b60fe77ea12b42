"""Meaning: type checking rule expressions and compiling them into closures over ``Facts``.

Every decision that does not depend on data is made here, once: names and
functions are resolved, types are checked, aggregates are built, constants are
folded and each operator picks the closure that fits what is known about its
operands. What is left for evaluation is a tree of small closures that read
``Facts`` data and compare plain values; nothing is looked up by node type. The
commonest shape, a trait or a count compared with a literal, is one closure that
reads and compares inline: a signal costs one call.

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

import difflib
import enum
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, cast

import attrs

from .._aggregates import Aggregate, Kind, Scalar, Scope, aggregate_value
from ._facts import Facts
from ._inline import Inline, bound, called, template
from ._lexer import ExpressionError
from ._parser import (
    Binary,
    Call,
    Conditional,
    Constant,
    Duration,
    Keyword,
    ListLiteral,
    Name,
    Node,
    Trait,
    Unary,
    parse,
)
from ._reads import TALLY_READS, TALLY_TESTS, TRAIT_READS, TRAIT_TESTS

__all__ = [
    "Choices",
    "Compiled",
    "ExpressionError",
    "TraitLiteral",
    "Type",
    "compile_expression",
    "did_you_mean",
]


class Type(enum.Enum):
    """The static type of an expression; ``ANY`` (a trait) checks against every type."""

    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"
    DURATION = "duration"
    LIST = "list"
    ANY = "any"
    NULL = "null"


_Run = Callable[[Facts], Any]
_States = Callable[[Facts], Mapping[str, Any]]


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


@attrs.frozen
class _Code:
    """A compiled sub-expression: its type, its closure, and what is known before run time."""

    type: Type
    run: _Run
    # The value is never null and always of ``type``: its users can skip run-time checks.
    exact: bool = False
    # ``run`` ignores the facts and returns ``value``: its users can specialise on it.
    constant: bool = False
    value: Any = None
    # ``run`` reads one trait or tally, given as (scope, key): a comparison with a
    # constant reads it inline, one call fewer. Exact for a tally, not for a trait.
    lookup: tuple[Scope, str] | None = None
    # ``run``'s computation as text (``_inline``), where the shape has a template.
    inline: Inline | None = None


def _of(code: _Code) -> Inline:
    """``code``'s text: its template, or a call of its closure."""
    return called(code.run) if code.inline is None else code.inline


_NUMBERS: Final = frozenset({int, float})
_SEQUENCES: Final = frozenset({list, tuple})
# What run-time values ``==`` (and ``in``) and ``<`` accept, keyed by exact Python
# type: bool is its own kind, so true is never equal to 1.
_EQUALITY_KINDS: Final[Mapping[type, Type]] = MappingProxyType(
    {int: Type.NUMBER, float: Type.NUMBER, str: Type.STRING, bool: Type.BOOL}
)
_ORDER_KINDS: Final[Mapping[type, Type]] = MappingProxyType(
    {int: Type.NUMBER, float: Type.NUMBER, str: Type.STRING}
)
_PYTHON_TYPES: Final[Mapping[Type, frozenset[type]]] = MappingProxyType(
    {Type.NUMBER: _NUMBERS, Type.STRING: frozenset({str}), Type.BOOL: frozenset({bool})}
)
_NUMERIC: Final = frozenset({Type.NUMBER, Type.ANY})
_BOOLEAN: Final = frozenset({Type.BOOL, Type.ANY})

_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = MappingProxyType(
    {
        "==": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }
)
# ``c < x`` is ``x > c``: lets a constant always sit on the right.
_REFLECTED: Final = MappingProxyType(
    {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
)
_ORDERED: Final = MappingProxyType({op: _COMPARE[op] for op in ("<", "<=", ">", ">=")})
_ARITHMETIC: Final[Mapping[str, Callable[[Any, Any], Any]]] = MappingProxyType(
    {
        "+": operator.add,
        "-": operator.sub,
        "*": operator.mul,
        "/": operator.truediv,
        "%": operator.mod,
    }
)


def _clamp(x: Any, low: Any, high: Any) -> Any:
    return min(max(x, low), high)


@attrs.frozen
class _Math:
    """A numeric function: what it computes and how many arguments it takes."""

    function: Callable[..., Any]
    minimum: int
    maximum: int | None


_MATH: Final = MappingProxyType(
    {
        "min": _Math(min, 2, None),
        "max": _Math(max, 2, None),
        "clamp": _Math(_clamp, 3, 3),
        "abs": _Math(abs, 1, 1),
    }
)


@attrs.frozen
class _AggregateFunction:
    """An aggregate function: its positional arguments, and whether it takes filters."""

    kind: Kind
    positional: tuple[str, ...]
    required: int
    filters: bool


_AGGREGATE_FUNCTIONS: Final = MappingProxyType(
    {
        "count": _AggregateFunction("count", ("event name",), 0, filters=True),
        "distinct": _AggregateFunction(
            "distinct", ("event name", "property name"), 2, filters=True
        ),
        "active_days": _AggregateFunction("active_days", (), 0, filters=False),
    }
)
# Functions answered by the ``Facts`` attribute of the same name.
_FACT_FUNCTIONS: Final = ("days_since_last_active", "days_since_first_seen", "team_size")
_FUNCTIONS: Final = (*_AGGREGATE_FUNCTIONS, *_FACT_FUNCTIONS, *_MATH)

# Closures folded at compile time only have constant operands and never read facts.
_NO_FACTS: Final = cast(Facts, None)
# Where a trait or an aggregate state is found, by scope.
_TRAITS: Final[Mapping[str, _States]] = MappingProxyType(
    {scope: operator.attrgetter(f"{scope}_traits") for scope in ("user", "account")}
)
_AGGREGATES: Final[Mapping[str, _States]] = MappingProxyType(
    {scope: operator.attrgetter(f"{scope}_aggregates") for scope in ("user", "account")}
)


class _Compiler:
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
            # -x is 0 - x, so negation shares arithmetic's run-time checks.
            run = _arithmetic_run(operator.sub, _constant(Type.NUMBER, 0).run, inner)
            return _derived(Type.NUMBER, run, [operand], exact=operand.exact)
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
        run = _arithmetic_run(_ARITHMETIC[node.op], left.run, right.run)
        # Not exact: division by zero, and overflow, give null.
        return _derived(Type.NUMBER, run, [left, right])

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

    def _call(self, node: Call) -> _Code:
        if node.name in _AGGREGATE_FUNCTIONS:
            return self._aggregate(node, _AGGREGATE_FUNCTIONS[node.name])
        if node.name in _MATH:
            return self._math(node, _MATH[node.name])
        if node.name in _FACT_FUNCTIONS:
            _check_arity(node, 0, 0)
            _check_keywords(node, ())
            inline = Inline(f"F_{node.name}", {})
            return _Code(Type.NUMBER, operator.attrgetter(node.name), exact=True, inline=inline)
        raise ExpressionError(
            f"unknown function '{node.name}'{did_you_mean(node.name, _FUNCTIONS)}",
            node.offset,
            len(node.name),
        )

    def _math(self, node: Call, math: _Math) -> _Code:
        _check_arity(node, math.minimum, math.maximum)
        _check_keywords(node, ())
        codes = [self.compile(arg) for arg in node.args]
        for code, arg in zip(codes, node.args, strict=True):
            if code.type not in _NUMERIC:
                raise _error(f"{node.name}() needs numbers, got {code.type.value}", arg)
        runs = tuple(code.run for code in codes)
        function = math.function

        def run(facts: Facts) -> Any:
            values = [each(facts) for each in runs]
            for value in values:
                if type(value) not in _NUMBERS:
                    return None
            return function(*values)

        return _derived(Type.NUMBER, run, codes, exact=all(code.exact for code in codes))

    def _aggregate(self, node: Call, function: _AggregateFunction) -> _Code:
        _check_arity(node, function.required, len(function.positional))
        if not function.filters:
            _check_keywords(node, ("within",))
        names = [
            self._name_argument(node, what, arg)
            for what, arg in zip(function.positional, node.args, strict=False)
        ]
        window = None
        where: dict[str, Scalar] = {}
        for keyword in node.keywords:
            if keyword.name == "within":
                window = self._window(keyword)
            else:
                where[keyword.name] = self._filter(keyword)
        aggregate = Aggregate(
            kind=function.kind,
            event=names[0] if names else None,
            where=tuple((name, where[name]) for name in sorted(where)),
            field=names[1] if len(names) > 1 else None,
            window=window,
            scope=self._scope,
        )
        self.aggregates.add(aggregate)
        states, key = _AGGREGATES[aggregate.scope], aggregate.key
        state = f"F_{aggregate.scope}_aggregates.get({{key}})"
        if aggregate.tally:  # the state is the count (None before the first event)
            run = TALLY_READS[aggregate.scope](key)
            inline = template(f"{state} or 0", key=key)
            return _Code(Type.NUMBER, run, exact=True, lookup=(aggregate.scope, key), inline=inline)
        if aggregate.window is None:  # the state lists the values (or days) seen
            inline = template(f"len({state} or ())", key=key)
            run = lambda facts: len(states(facts).get(key) or ())  # noqa: E731
            return _Code(Type.NUMBER, run, exact=True, inline=inline)
        inline = template(
            f"{{value}}({{aggregate}}, {state}, F_now)",
            value=aggregate_value,
            aggregate=aggregate,
            key=key,
        )
        return _Code(
            Type.NUMBER,
            lambda facts: aggregate_value(aggregate, states(facts).get(key), facts.now),
            exact=True,
            inline=inline,
        )

    def _name_argument(self, node: Call, what: str, arg: Node) -> str:
        """Return an event or property name: a non-empty string known at compile time."""
        code = self.compile(arg)
        if code.constant and type(code.value) is str and code.value:
            return code.value
        got = "an empty string" if code.value == "" else code.type.value
        raise _error(f"{node.name}() needs the {what} as a quoted string, got {got}", arg)

    def _window(self, keyword: Keyword) -> int:
        value = keyword.value
        if not isinstance(value, Duration):
            raise _error(f"within= needs a duration like 7d, got {self._describe(value)}", value)
        if value.seconds <= 0:
            raise _error("within= needs a duration longer than zero", value)
        return value.seconds

    def _filter(self, keyword: Keyword) -> Scalar:
        """Return a filter's value: a string, number or bool known at compile time."""
        value = keyword.value
        if isinstance(value, Duration | ListLiteral):
            got = self._describe(value)
        else:
            code = self.compile(value)
            if code.constant and code.value is not None:
                return cast("Scalar", code.value)
            got = code.type.value
        hint = did_you_mean(keyword.name, ("within",)) if got == "duration" else ""
        raise _error(
            f"{keyword.name}= needs a string, number or bool literal, got {got}{hint}", value
        )

    def _describe(self, node: Node) -> str:
        """Name the type of ``node`` for a message, durations and lists included."""
        if isinstance(node, Duration):
            return Type.DURATION.value
        if isinstance(node, ListLiteral):
            return Type.LIST.value
        return self.compile(node).type.value


def _check_arity(node: Call, minimum: int, maximum: int | None) -> None:
    """Refuse too many or too few positional arguments, the way Python words it."""
    given = len(node.args)
    if maximum is not None and given > maximum:
        bound = "" if minimum == maximum else "at most "
        raise _error(
            f"{node.name}() takes {bound}{_arguments(maximum)} ({given} given)",
            node.args[maximum],
        )
    if given < minimum:
        message = (
            f"{node.name}() needs at least {minimum} arguments"
            if maximum is None
            else f"{node.name}() takes {_arguments(minimum)} ({given} given)"
        )
        raise _error(message, node)


def _arguments(count: int) -> str:
    return f"{count} positional argument{'' if count == 1 else 's'}"


def _check_keywords(node: Call, allowed: Sequence[str]) -> None:
    """Refuse keywords a function without property filters does not take."""
    for keyword in node.keywords:
        if keyword.name not in allowed:
            raise _error(
                f"{node.name}() got an unexpected keyword argument '{keyword.name}'"
                f"{did_you_mean(keyword.name, allowed)}",
                keyword,
            )


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the candidate closest to ``word``, or ``""``."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean '{matches[0]}'?" if matches else ""


def _error(message: str, node: Node | Keyword) -> ExpressionError:
    return ExpressionError(message, node.offset, node.length)


def _type_of(value: Scalar) -> Type:
    if value is None:
        return Type.NULL
    if isinstance(value, bool):
        return Type.BOOL
    if isinstance(value, str):
        return Type.STRING
    return Type.NUMBER


def _unify(then: Type, otherwise: Type) -> Type | None:
    """Return the type of ``a if c else b``: null fits either side, any fits all."""
    if then is otherwise or otherwise is Type.NULL:
        return then
    if then is Type.NULL:
        return otherwise
    if Type.ANY in (then, otherwise):
        return Type.ANY
    return None


def _constant(type_: Type, value: Any) -> _Code:
    return _Code(
        type_,
        lambda _facts: value,
        exact=value is not None,
        constant=True,
        value=value,
        inline=bound(value),
    )


def _derived(
    type_: Type,
    run: _Run,
    operands: Sequence[_Code],
    *,
    exact: bool = False,
    inline: Inline | None = None,
) -> _Code:
    """Build an operation's code, folded to a constant when every operand is one."""
    if all(operand.constant for operand in operands):
        return _constant(type_, run(_NO_FACTS))
    return _Code(type_, run, exact=exact, inline=inline)


def _conditional_run(then: _Code, condition: _Code, otherwise: _Code) -> tuple[_Run, Inline]:
    """Pick ``a if c else b``'s closure; a constant ``a`` (a multiplier's 1.0) is not called."""
    yes, test, no, value = then.run, condition.run, otherwise.run, then.value
    parts = {"a": _of(then), "c": _of(condition), "b": _of(otherwise)}
    if not condition.exact:
        inline = template("{a} if {c} is True else {b}", **parts)
        return lambda facts: yes(facts) if test(facts) is True else no(facts), inline
    inline = template("{a} if {c} else {b}", **parts)
    if then.constant:
        return lambda facts: value if test(facts) else no(facts), inline
    return lambda facts: yes(facts) if test(facts) else no(facts), inline


def _arithmetic_run(op: Callable[[Any, Any], Any], left: _Run, right: _Run) -> _Run:
    def run(facts: Facts) -> Any:
        a = left(facts)
        b = right(facts)
        if type(a) not in _NUMBERS or type(b) not in _NUMBERS:
            return None
        try:
            return op(a, b)
        except ArithmeticError:  # x / 0, x % 0, or an int too large for a float
            return None

    return run


def _comparison_run(
    op: str, kinds: Mapping[type, Type], left: _Code, right: _Code
) -> tuple[_Run, Inline | None]:
    """Pick the cheapest closure for ``left op right`` that is safe for their values."""
    if (left.exact and not right.exact) or left.constant:
        left, right, op = right, left, _REFLECTED[op]
    compare = _COMPARE[op]
    first, second, value = left.run, right.run, right.value
    parts = {"a": _of(left), "b": _of(right)}
    exact = template(f"{{a}} {op} {{b}}", **parts)
    if right.exact:
        types = _PYTHON_TYPES[right.type]
        checked = template(
            f"type({{t}} := {{a}}) in {{types}} and {{t}} {op} {{b}}", types=types, **parts
        )
    if right.constant and right.exact:
        inline = exact if left.exact else checked
        if left.lookup is not None:  # the usual signal: a count or a trait against a literal
            return _lookup_comparison(left.lookup, left.exact, compare, right), inline
        if left.exact:
            return lambda facts: compare(first(facts), value), inline
        return lambda facts: type(item := first(facts)) in types and compare(item, value), inline
    if left.exact and right.exact:
        return lambda facts: compare(first(facts), second(facts)), exact
    if right.exact:
        run_checked: _Run = lambda facts: (  # noqa: E731
            type(item := first(facts)) in types and compare(item, second(facts))
        )
        return run_checked, checked

    def run(facts: Facts) -> bool:
        a = first(facts)
        b = second(facts)
        kind = kinds.get(type(a))
        return kind is not None and kind is kinds.get(type(b)) and compare(a, b)

    return run, None


def _lookup_comparison(
    lookup: tuple[Scope, str], tally: bool, compare: Callable[[Any, Any], bool], right: _Code
) -> _Run:
    """``left op constant`` where ``left`` is a trait or a tally, read inline."""
    scope, key = lookup
    if tally:
        return TALLY_TESTS[scope](key, compare, right.value)
    return TRAIT_TESTS[scope](key, _PYTHON_TYPES[right.type], compare, right.value)


def _literal_membership(
    left: _Code, members: Mapping[Type, frozenset[Scalar]], negated: bool
) -> tuple[_Run, Inline]:
    """``x in [literals]``: the items of ``x``'s exact Python type, looked up by that type."""
    by_type = {python: members[kind] for python, kind in _EQUALITY_KINDS.items()}
    inline = template(
        "({tf} := {by}.get(type({t} := {a}))) is not None and ({t} in {tf}) is not {negated}",
        by=by_type,
        a=_of(left),
        negated=negated,
    )
    if left.lookup is not None and not left.exact:  # a trait, read inline
        states, key = _TRAITS[left.lookup[0]], left.lookup[1]

        def run(facts: Facts) -> bool:
            found = by_type.get(type(value := states(facts).get(key)))
            return found is not None and (value in found) is not negated

        return run, inline
    first = left.run

    def run_any(facts: Facts) -> bool:
        found = by_type.get(type(value := first(facts)))
        return found is not None and (value in found) is not negated

    return run_any, inline


def _value_membership(left: _Run, right: _Run, negated: bool) -> _Run:
    """``x in y`` where ``y`` is only known at run time (a trait or a list variable)."""

    def run(facts: Facts) -> bool:
        value = left(facts)
        items = right(facts)
        kind = _EQUALITY_KINDS.get(type(value))
        if kind is None or type(items) not in _SEQUENCES:
            return False
        found = any(_EQUALITY_KINDS.get(type(item)) is kind and item == value for item in items)
        return found is not negated

    return run
