"""The report's every count and interval, against an independent computation.

The history comes from a real Client with a fixed clock and conversion rates
planted per arm (``cohort.build``); the expected numbers are counted from the
plan and the client's answers, and the interval is computed here from the
textbook formulas, without calling pqlsdk.lift's math.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pqlsdk import rules
from pqlsdk._history import History
from pqlsdk.lift import measure
from pqlsdk.lift._sources import ordered

from .cohort import RULES, Truth, build

Z = 1.959963984540054


def wilson_by_quadratic(k: int, n: int) -> tuple[float, float]:
    """The Wilson bounds as the roots of (p - x)^2 = z^2 x (1 - x) / n, solved for x."""
    p = k / n
    a = 1 + Z * Z / n
    b = -(2 * p + Z * Z / n)
    c = p * p
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def expected(truth: Truth, kind: str) -> dict[str, object]:
    shown, held = truth.arms[kind]["shown"], truth.arms[kind]["held_out"]
    k1, k2 = len(shown & truth.converted), len(held & truth.converted)
    p1, p2 = k1 / len(shown), k2 / len(held)
    (l1, u1), (l2, u2) = wilson_by_quadratic(k1, len(shown)), wilson_by_quadratic(k2, len(held))
    return {
        "shown": len(shown),
        "held_out": len(held),
        "clicked": len(truth.clicked.get(kind, set())),
        "dismissed": len(truth.dismissed.get(kind, set())),
        "converted_shown": k1,
        "converted_held_out": k2,
        "rate_shown": p1,
        "rate_held_out": p2,
        "lift": p1 - p2,
        "lift_low": p1 - p2 - math.hypot(p1 - l1, u2 - p2),
        "lift_high": p1 - p2 + math.hypot(u1 - p1, p2 - l2),
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    path = tmp_path_factory.mktemp("lift") / "history.jsonl"
    return path, build(path)


@pytest.mark.parametrize("kind", ["nudge", "wall"])
def test_every_count_and_the_interval_match_an_independent_computation(
    cohort: tuple[Path, Truth], kind: str
) -> None:
    """Shown, held out, clicked, dismissed, converted per arm, rates, lift and its interval."""
    path, truth = cohort
    history = History()
    with ordered(str(path), history) as pairs:
        report = measure(rules.loads(RULES), pairs, history=history)
    found = report.as_json()["moments"][kind]  # type: ignore[index]
    wanted = expected(truth, kind)
    assert {k: found[k] for k in wanted} == pytest.approx(wanted, abs=1e-12)


def test_the_planted_lift_is_found(cohort: tuple[Path, Truth]) -> None:
    """Planted 30 % against 10 %: the shown arm converts better, and the interval says so."""
    path, _ = cohort
    with ordered(str(path), History()) as pairs:
        nudge = measure(rules.loads(RULES), pairs).moments["nudge"]
    assert nudge.lift_low is not None
    assert nudge.lift_low > 0
    assert nudge.verdict == "shown converts better"
    assert nudge.relative_lift == pytest.approx(nudge.lift / nudge.rate_held_out)  # type: ignore[operator]
