"""Closure building: the run-time closures over ``Facts`` that a compiled expression is made of.

The compiler has already checked types; here each operation picks the cheapest
closure that is safe for what is known about its operands (exact, constant, a
single trait or tally read), folds constants, and keeps the same computation as
text for a model's one function (``_inline``). Closures never raise for data
problems: a wrong run-time type gives ``null`` (arithmetic) or false
(comparisons, ``in``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, cast

import attrs

from .._aggregates import Scalar, Scope
from ._facts import Facts
from ._inline import Inline, bound, called, template
from ._reads import TALLY_TESTS, TRAIT_TESTS
from ._types import _EQUALITY_KINDS, _NUMBERS, _PYTHON_TYPES, _SEQUENCES, Type

__all__: list[str] = []

_Run = Callable[[Facts], Any]
_States = Callable[[Facts], Mapping[str, Any]]


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

# Closures folded at compile time only have constant operands and never read facts.
_NO_FACTS: Final = cast(Facts, None)
# Where a trait or an aggregate state is found, by scope.
_TRAITS: Final[Mapping[str, _States]] = MappingProxyType(
    {scope: operator.attrgetter(f"{scope}_traits") for scope in ("user", "account")}
)
_AGGREGATES: Final[Mapping[str, _States]] = MappingProxyType(
    {scope: operator.attrgetter(f"{scope}_aggregates") for scope in ("user", "account")}
)


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


def _arithmetic_value(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Return ``a op b`` of two values: null for a non-number, a division by zero or an overflow."""

    def value(a: Any, b: Any) -> Any:
        if type(a) not in _NUMBERS or type(b) not in _NUMBERS:
            return None
        try:
            return op(a, b)
        except ArithmeticError:  # x / 0, x % 0, or an int too large for a float
            return None

    return value


# Each operator's inline form: computed in place when the operands' types say it cannot
# raise, else by the checked function (``{slow}``), so the two give identical values.
# ``+ - *`` of two ints, or of two floats, never raise (a float overflows to inf); an
# int with a float may (an int too large for a float). ``%`` of two ints or two floats
# raises only for a zero divisor; ``/`` of two floats too, of two ints also on overflow.
_SAME: Final = "type({t1} := {a}) is type({t2} := {b})"
_FAST: Final = MappingProxyType(
    {
        **{op: f"{{t1}} {op} {{t2}} if {_SAME} in {{numbers}}" for op in ("+", "-", "*")},
        "%": f"{{t1}} % {{t2}} if {_SAME} in {{numbers}} and {{t2}}",
        "/": f"{{t1}} / {{t2}} if {_SAME} is {{real}} and {{t2}}",
    }
)


def _arithmetic_run(op: str, left: _Code, right: _Code) -> tuple[_Run, Inline]:
    """``left op right``: null unless both are numbers and the operation has a value."""
    value, first, second = _arithmetic_value(_ARITHMETIC[op]), left.run, right.run
    inline = template(
        _FAST[op] + " else {slow}({t1}, {t2})",
        a=_of(left),
        b=_of(right),
        numbers=_NUMBERS,
        real=float,
        slow=value,
    )
    return lambda facts: value(first(facts), second(facts)), inline


def _negation_run(operand: _Code) -> tuple[_Run, Inline]:
    """``-x`` as ``0 - x``, so negation shares arithmetic's checks (0 - a number never raises)."""
    value, inner = _arithmetic_value(operator.sub), operand.run
    inline = template(
        "0 - {t} if type({t} := {a}) in {numbers} else {slow}(0, {t})",
        a=_of(operand),
        numbers=_NUMBERS,
        slow=value,
    )
    return lambda facts: value(0, inner(facts)), inline


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
