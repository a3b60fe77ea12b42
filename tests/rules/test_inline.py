"""A model's standing as one compiled function gives exactly what its closures give."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from pqlsdk import rules
from pqlsdk._aggregates import Aggregate
from pqlsdk._scoring import _points, facts_from
from pqlsdk.rules._inline import function
from pqlsdk.rules._model import Model
from pqlsdk.stores import AccountState, UserState

NOW = 40 * 86_400_000_000

# Every shape with a template, and some without (arithmetic, min(), a trait list),
# each read by a signal so that the joined function computes it.
SHAPES = """
[model.shapes]
gate = 'user.beta != true or count("x") >= 1'
multiplier = '1.0 if not (days_since_last_active() > 7) else user.boost if user.boost > 1 else 0.1'
tiers = { low = 0, mid = 5, high = 20 }
[model.shapes.signals]
tally = { when = 'count("x") >= 2', points = 1.5 }
windowless = { when = 'distinct("x", "k") >= 2', points = 1 }
windowed = { when = 'count("x", within=7d) >= 1', points = 0.1 }
team = { when = 'team_size() >= 2', points = 0.2 }
trait = { when = 'user.plan == "pro"', points = 2 }
reflected = { when = '3 <= account.seats', points = 3 }
missing = { when = 'user.plan == null', points = 0.7 }
present = { when = 'account.seats != null', points = 0.3 }
negated = { when = 'not user.flag', points = 4 }
exact_not = { when = 'not (team_size() > 3)', points = 0.05 }
either = { when = 'user.flag or account.flag', points = 5 }
both = { when = 'team_size() >= 1 and count("x") >= 1', points = 0.25 }
listed = { when = 'user.plan in ["pro", 1, true]', points = 6 }
unlisted = { when = 'account.tier not in ["gold"]', points = 0.5 }
inside = { when = 'user.plan in account.plans', points = 7 }
arithmetic = { when = 'count("x") - count("y") >= 1', points = 8 }
traits = { when = 'user.seats < account.seats', points = 9 }
fact_trait = { when = 'team_size() <= account.seats', points = 0.125 }
sum = { value = 'user.seats + 1', points = 0.5 }
smallest = { value = 'min(user.seats, account.seats)', points = 1 }
conditional = { value = 'user.seats if user.flag == true else account.seats', points = 2 }
choose = { value = '1 if user.flag else 2', points = 0.75 }
folded = { value = '2 * 3', points = 1 }

[model.plain]
tiers = { only = 0 }
[model.plain.signals]
seats = { value = 'user.seats', points = 1 }
size = { value = 'team_size()', points = 0.5 }
"""

VALUES: tuple[Any, ...] = (None, True, False, 0, 2, 3.5, math.nan, math.inf, "pro", [1, "pro"])


def reference(model: Model, facts: Any) -> tuple[float, str, bool]:
    """The standing as the closures compute it: the gate, then every signal and the multiplier."""
    if model.gate is not None and model.gate.evaluate(facts) is not True:
        return 0.0, model.tier_for(0.0), False
    total = _points(model, facts, gate_passed=True)[5]
    return total, model.tier_for(total), True


def same(a: tuple[float, str, bool], b: tuple[float, str, bool]) -> bool:
    """Equal, and of the same types (0.0 is not -0.0 here, nor 1 1.0)."""
    return [(type(x), repr(x)) for x in a] == [(type(x), repr(x)) for x in b]


@pytest.fixture(scope="module")
def models() -> dict[str, Model]:
    return dict(rules.loads(SHAPES).models)


def state(aggregate: Aggregate, value: int) -> Any:
    """A stored state whose value at NOW is ``value``, shaped as the store keeps it."""
    if aggregate.tally:
        return value
    if aggregate.window is None:
        return list(range(value))  # the values seen
    return [NOW] * value  # the times, inside the window


def subjects(models: dict[str, Model]) -> list[tuple[UserState, AccountState]]:
    """Users and accounts whose traits and tallies take every value kind, mixed."""
    needed = frozenset().union(*(model.aggregates for model in models.values()))
    found = []
    for index, (first, second) in enumerate(itertools.product(VALUES, repeat=2)):
        user = UserState(
            user_id="u",
            traits={"plan": first, "flag": second, "seats": first, "beta": second, "boost": second},
            aggregates={a.key: state(a, (index + len(a.key)) % 4) for a in needed if index % 3},
            last_active=NOW - index * 3_600_000_000 * 9,
        )
        account = AccountState(
            account_id="a",
            traits={"seats": second, "flag": first, "tier": first, "plans": second},
            active_members=index % 5,
        )
        found.append((user, account))
    return found


def test_every_shape_gives_what_its_closures_give(models: dict[str, Model]) -> None:
    """Over every mix of value kinds, the joined function and the closures agree exactly."""
    checked = 0
    for user, account in subjects(models):
        for model in models.values():
            facts = facts_from(user, account, NOW, {"user_id": "u"})
            assert same(model._standing(facts), reference(model, facts)), (model.name, user)
            checked += 1
    assert checked == 2 * len(VALUES) ** 2


def test_a_missing_subject_scores_as_the_closures_do(models: dict[str, Model]) -> None:
    """No user and no account: empty traits, infinite recency, a team of one."""
    for model in models.values():
        facts = facts_from(None, None, NOW, {"user_id": None})
        assert same(model._standing(facts), reference(model, facts))


def test_the_function_is_compiled_once_per_model(models: dict[str, Model]) -> None:
    """Rules load once and score many times: the function is made on first use and kept."""
    model = models["shapes"]
    assert model._standing is model._standing


def test_each_expression_as_one_function_gives_what_its_closures_give(
    models: dict[str, Model],
) -> None:
    """Each templated expression compiled alone (literals folded in) gives what its closure does."""
    expressions = [
        expression
        for model in models.values()
        for signal in model.signals
        for expression in (signal.when, signal.value)
        if expression is not None
    ]
    assert any(e.inline is None for e in expressions)  # (user.plan in account.plans)
    functions = [
        (function("<test>", [f"return {e.inline.text}"], e.inline.names), e.evaluate)
        for e in expressions
        if e.inline is not None
    ]
    for user, account in subjects(models):
        facts = facts_from(user, account, NOW, {"user_id": "u"})
        for joined, closure in functions:
            a, b = joined(facts), closure(facts)
            assert (type(a), repr(a)) == (type(b), repr(b))


ARITHMETIC = """
[model.arithmetic]
tiers = { only = 0 }
[model.arithmetic.signals]
add = { value = 'user.x + account.y', points = 1 }
subtract = { value = 'user.x - account.y', points = 1 }
multiply = { value = 'user.x * account.y', points = 1 }
divide = { value = 'user.x / account.y', points = 1 }
remainder = { value = 'user.x % account.y', points = 1 }
negate = { value = '-user.x', points = 1 }
tallies = { when = 'count("a") - count("b") >= 2', points = 1 }
smallest = { value = 'min(user.x, account.y, 3)', points = 1 }
largest = { value = 'max(user.x, account.y)', points = 1 }
clamped = { value = 'clamp(user.x, 0, account.y)', points = 1 }
absolute = { value = 'abs(user.x)', points = 1 }

[model.compared]
tiers = { low = 0, high = 2 }
[model.compared.signals]
add = { when = 'user.x + account.y > 1', points = 1 }
divide = { when = '-(user.x / account.y) >= 1', points = 1 }
tallies = { when = 'count("a") - count("b") >= 2', points = 1 }
bounded = { when = 'clamp(user.x, 0, account.y) >= min(count("a"), count("b"))', points = 1 }
"""

# Operands where an operation raises (zero divisors, an int too large for a float) or
# has no number (a bool, a string, null), beside plain ints and floats of both signs.
OPERANDS: tuple[Any, ...] = (
    *VALUES,
    -7,
    0.0,
    -0.0,
    2.5e-300,
    1e308,
    -math.inf,
    10**400,
    -(10**400),
)


def test_arithmetic_in_one_function_gives_what_its_closures_give() -> None:
    """Arithmetic and numeric functions are written out in the model's function, nulls kept.

    Each operator and negation is computed in place where its operands' types say it
    cannot raise, and by the checked function otherwise; a function (min, max, clamp,
    abs) is called once every argument is read and is a number: over every pair of
    operands (zero divisors, overflowing ints, non-numbers) each gives exactly the
    closure's value.
    """
    loaded = rules.loads(ARITHMETIC)
    model, compared = loaded.models["arithmetic"], loaded.models["compared"]
    expressions = [signal.when or signal.value for signal in model.signals]
    assert all(e is not None and e.inline is not None for e in expressions)
    functions = [
        (function("<test>", [f"return {e.inline.text}"], e.inline.names), e.evaluate)
        for e in expressions
        if e is not None and e.inline is not None
    ]
    a, b = (Aggregate(kind="count", event=event).key for event in ("a", "b"))
    for x, y in itertools.product(OPERANDS, repeat=2):
        user = UserState(user_id="u", traits={"x": x}, aggregates={a: x, b: y})
        account = AccountState(account_id="a", traits={"y": y})
        facts = facts_from(user, account, NOW, {"user_id": "u"})
        for joined, closure in functions:
            assert (type(got := joined(facts)), repr(got)) == (
                type(want := closure(facts)),
                repr(want),
            ), (x, y)
        assert same(compared._standing(facts), reference(compared, facts)), (x, y)
