"""Tier checks: a subject no model moved is told apart without scoring it model by model."""

from __future__ import annotations

from typing import Any

import pytest

import pqlsdk
from pqlsdk import _tiers, rules
from pqlsdk._clock import micros
from pqlsdk._scoring import facts_from
from pqlsdk._tiers import detect_crossings
from pqlsdk.rules._model import Rules
from pqlsdk.stores import AccountState, MemoryStore, UserState, Written

from .conftest import ROOT
from .rules.test_inline import NOW, SHAPES, subjects

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"

# test_inline's shapes (a gate, a multiplier), less those without a template (they read a
# facts object), and arithmetic: every model of them scores users.
UNTEMPLATED = ("inside = ", "traits = ")
TEMPLATED = "\n".join(line for line in SHAPES.splitlines() if not line.startswith(UNTEMPLATED))
TEMPLATED += """
[model.sums]
tiers = { none = 0, some = 1, many = 3 }
[model.sums.signals]
gap = { value = 'count("x") - count("y") + -user.seats', points = 1 }
share = { value = 'user.seats / account.seats', points = 2 }
"""


def tiers_of(loaded: Rules, user: UserState, account: AccountState | None) -> dict[str, str]:
    """Each model's tier as the crossing loop computes it: a standing over facts."""
    facts = facts_from(user, account, NOW, {"user_id": user.user_id})
    return {name: model._standing(facts)[1] for name, model in loaded.models.items()}


def test_unmoved_is_true_exactly_when_every_model_keeps_its_remembered_tier() -> None:
    """Over every mix of value kinds, with and without an account, the check is the loop's."""
    loaded = rules.loads(TEMPLATED)
    unmoved = _tiers._unmoved(loaded)
    assert unmoved is not _tiers._moved
    checked = 0
    for user, account in subjects(dict(loaded.models)):
        for team in (account, None):
            placed = tiers_of(loaded, user, team)
            assert unmoved(user, team, NOW, placed) is True
            for name in placed:  # one model remembered elsewhere, or never placed
                for other in ("elsewhere", None):
                    remembered: dict[str, Any] = {**placed, name: other}
                    assert unmoved(user, team, NOW, remembered) is False
                    checked += 1
    assert checked == len(subjects(dict(loaded.models))) * 2 * len(loaded.models) * 2


def test_a_standing_that_raises_is_left_to_the_loop() -> None:
    """A value no score can hold (an int past a float) raises where the loop meets it."""
    loaded = rules.loads(
        "[model.m]\ntiers = { low = 0 }\n[model.m.signals]\nbig = { value = 'user.x', points = 1 }"
    )
    user = UserState(user_id="u", traits={"x": 10**400}, tiers={"m": "low"})
    assert _tiers._unmoved(loaded)(user, None, NOW, user.tiers) is False
    written = Written()
    written.users["u"] = user
    with pytest.raises(OverflowError):
        detect_crossings(
            MemoryStore(), loaded, ["u"], NOW, joined=set(), report=print, written=written
        )


@pytest.mark.parametrize(
    "text",
    [
        "[model.t]\nsubject = 'account'\ntiers = { a = 0 }\n"
        "[model.t.signals]\nn = { value = 'count(\"x\")', points = 1 }",
        "[model.m]\ntiers = { a = 0 }\n"
        "[model.m.signals]\nin = { when = 'user.plan in account.plans', points = 1 }",
    ],
    ids=["account model", "closure without a template"],
)
def test_rules_the_check_cannot_read_take_the_loop(text: str) -> None:
    """An account model, or an expression that reads a facts object: every subject is scored."""
    assert _tiers._unmoved(rules.loads(text)) is _tiers._moved
    assert _tiers._moved(UserState(user_id="u"), None, NOW, {}) is False


def test_each_rules_compile_their_check_once() -> None:
    """Kept by the rules' id while they live; a new object at an old id gets its own."""
    loaded, other = rules.loads(TEMPLATED), rules.loads(TEMPLATED)
    assert _tiers._unmoved(loaded) is _tiers._unmoved(loaded)
    _tiers._CHECKS[id(other)] = (loaded, _tiers._moved)  # as if ``loaded`` had had its id
    assert _tiers._unmoved(other) is not _tiers._moved
    many = [rules.loads(TEMPLATED) for _ in range(_tiers._MAX_CHECKS + 1)]
    for each in many:
        _tiers._unmoved(each)
    assert 0 < len(_tiers._CHECKS) <= _tiers._MAX_CHECKS


def test_subjects_no_model_moved_are_not_scored_again(
    clock: pqlsdk.FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tracks that move nobody build no facts; the crossing they lead to is reported as before."""
    built: list[Any] = []

    def counted(*args: Any) -> Any:
        built.append(args)
        return facts_from(*args)

    monkeypatch.setattr(_tiers, "facts_from", counted)
    changes: list[pqlsdk.TierChange] = []
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=PLAYBOOK, on_tier_change=changes.append, strict=True
    ) as client:
        client.identify("u", {"plan": "trial"})  # placed: cold, fine
        built.clear()
        for _ in range(3):
            client.track("u", "feature_used", {"feature": "reports"})
        assert built == []
        client.track("u", "core_workflow_completed")
        client.track("u", "checkout_started")  # 40 points: warm
    assert [(c.model, c.previous, c.tier) for c in changes] == [("playbook", "cold", "warm")]
    assert len(built) == 1
    assert micros(changes[0].at) == micros(clock.now())
