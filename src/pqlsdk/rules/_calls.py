"""Function calls: what an expression may call, and the aggregates its calls collect.

``count``, ``distinct`` and ``active_days`` become ``Aggregate`` definitions
(known at compile time: names are quoted strings, filters literals, windows
durations) that the compiler collects, so a store keeps exactly those up to
date; the fact functions read ``Facts`` attributes; ``min``, ``max``,
``clamp`` and ``abs`` compute on numbers. Arity and keywords are refused the
way Python words it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any, Final, cast

import attrs

from .._aggregates import Aggregate, Kind, Scalar, Scope, aggregate_value
from ._closures import _AGGREGATES, _Code, _derived, _of
from ._errors import _error, did_you_mean
from ._facts import Facts
from ._inline import Inline, template
from ._lexer import ExpressionError
from ._parser import Call, Duration, Keyword, ListLiteral, Node
from ._reads import TALLY_READS
from ._types import _NUMBERS, _NUMERIC, Type

__all__: list[str] = []


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


class _Calls:
    """The compiler's part that compiles calls, collecting the aggregates they read."""

    _scope: Scope
    aggregates: set[Aggregate]

    def compile(self, node: Node) -> _Code:
        """Compile a sub-expression (the compiler's own)."""
        raise NotImplementedError

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

        # Every argument read, in order, before any is checked (``&``, not ``and``).
        places = range(len(codes))
        checks = " & ".join(f"(type({{t{i}}} := {{a{i}}}) in {{numbers}})" for i in places)
        inline = template(
            f"{{function}}({', '.join(f'{{t{i}}}' for i in places)}) if {checks} else None",
            function=function,
            numbers=_NUMBERS,
            **{f"a{i}": _of(code) for i, code in zip(places, codes, strict=True)},
        )
        exact = all(code.exact for code in codes)
        return _derived(Type.NUMBER, run, codes, exact=exact, inline=inline)

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
