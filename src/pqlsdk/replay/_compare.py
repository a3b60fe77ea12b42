"""What-if: the users whose tier differs between two rules files, with both sets of reasons.

Both models score the same folded state at the evaluation time, so a difference
is the rules' doing, never the data's. (The per-band tables place converters at
their conversion time; this list compares everyone at the evaluation time.)
"""

from __future__ import annotations

from typing import Any

from .._scoring import Score
from ._run import Replay

__all__ = ["tier_changes"]


def tier_changes(replay: Replay) -> list[dict[str, Any]]:
    """Return every user whose tier under the first model differs from the second's."""
    first, second, ends = replay.models[0], replay.models[1], replay.ends
    changed = []
    for user_id in sorted(ends.user_ids()):
        if ends.tier(first, user_id) == ends.tier(second, user_id):
            continue
        scores = [ends.score(m, user_id) for m in (first, second)]
        changed.append({"user": user_id, "under": [_side(score) for score in scores]})
    return changed


def _side(score: Score) -> dict[str, Any]:
    return {
        "model": score.model,
        "score": score.score,
        "tier": score.tier,
        "gate_passed": score.gate_passed,
        "raw": score.raw,
        "multiplier": score.multiplier,
        "reasons": [str(reason) for reason in score.reasons if reason.fired],
    }
