"""Calibration: thresholds suggested by outcomes, and what moving a threshold would do.

Two suggestions, each for one tier's lower threshold (the PQL tier: the rules'
``[pqa]`` tier, else the second-highest tier; ``--tier`` picks another):

- **target rate**: the lowest band edge whose band converts at ``--target-rate``
  or better (rate >= target, over the fixed score bands); the band's lower edge
  becomes the threshold. None when no band reaches the target.
- **best separation**: the cut maximising Youden's J = sensitivity + specificity
  - 1, where a subject is flagged when its score >= cut. Candidate cuts are the
  observed scores; among equal J the higher cut wins (fewer subjects to contact
  for the same separation). None without both converters and non-converters.

For each, the number of subjects whose tier would change (up and down) if that
tier's threshold were set to the suggestion, the other thresholds unchanged.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import attrs

from ..rules._model import Model
from ._bands import Row

__all__ = ["Moves", "Suggestion", "best_separation", "moves", "pql_tier", "target_threshold"]


@attrs.frozen
class Moves:
    """Subjects whose tier a new threshold would change."""

    up: int
    down: int


@attrs.frozen
class Suggestion:
    """A suggested threshold for ``tier`` and its effect."""

    method: str
    """``"target_rate"`` or ``"youden"``."""
    tier: str
    current: float
    threshold: float
    detail: dict[str, float]
    """What backs it: the band's rate, or J with its sensitivity and specificity."""
    moves: Moves

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON output."""
        return {
            "method": self.method,
            "tier": self.tier,
            "current": self.current,
            "threshold": self.threshold,
            **self.detail,
            "moves_up": self.moves.up,
            "moves_down": self.moves.down,
        }


def pql_tier(model: Model, named: str | None) -> str:
    """Return the tier whose threshold is tuned: ``named``, else the second-highest tier."""
    names = [name for _, name in model.tiers]
    if named is not None:
        model.rank(named)  # ValueError for an unknown tier: the caller words it
        return named
    return names[max(len(names) - 2, 0)]


def target_threshold(rows: Sequence[Row], target: float) -> tuple[float, float] | None:
    """Return the lowest band edge whose band converts at ``target`` or better, and its rate.

    Added in version 0.1.0.
    """
    for row in rows:
        if row.rate is not None and row.rate >= target:
            return row.low, row.rate
    return None


def best_separation(scored: Sequence[tuple[float, bool]]) -> tuple[float, float, float, float]:
    """Return the cut with the highest Youden's J: (cut, J, sensitivity, specificity).

    ``scored`` holds (score, converted) for every subject; it must contain both
    converters and non-converters.

    Added in version 0.1.0.
    """
    positives = sum(converted for _, converted in scored)
    negatives = len(scored) - positives
    ranked = sorted(scored, key=lambda item: -item[0])
    best = (ranked[0][0], -2.0, 0.0, 0.0)
    flagged_pos = flagged_neg = 0
    for index, (score, converted) in enumerate(ranked):
        flagged_pos += converted
        flagged_neg += not converted
        if index + 1 < len(ranked) and ranked[index + 1][0] == score:
            continue  # a cut flags every subject at its score: wait for the last of them
        sensitivity = flagged_pos / positives
        specificity = 1 - flagged_neg / negatives
        j = sensitivity + specificity - 1
        if j > best[1] + 1e-12:
            best = (score, j, sensitivity, specificity)
    return best


def moves(model: Model, tier: str, threshold: float, scores: Sequence[float]) -> Moves:
    """Count the subjects whose tier changes when ``tier`` starts at ``threshold``.

    Added in version 0.1.0.
    """
    old = [t for t, _ in model.tiers]
    names = [name for _, name in model.tiers]
    new = sorted(
        (threshold if name == tier else low, name) for low, name in zip(old, names, strict=True)
    )
    new_lows = [low for low, _ in new]
    rank = {name: index for index, name in enumerate(names)}
    up = down = 0
    for score in scores:
        before = rank[model.tier_for(score)]
        after = rank[new[max(bisect.bisect_right(new_lows, score) - 1, 0)][1]]
        up += after > before
        down += after < before
    return Moves(up, down)
