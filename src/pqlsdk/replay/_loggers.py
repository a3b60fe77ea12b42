"""Single loggers: one intense day, a high score on totals, and what a sustained model says.

A single logger did a lot in one sitting and never came back: on a total-usage
model they look hot, yet they rarely buy. A user is listed when at least
``share`` (default 80 %) of their tracked events fall on one UTC calendar day and
their tier under the replayed model is the PQL tier or above. Each is shown with
their score under a sustained-usage model (one that rewards multi-day use), when
the replay has one, so the two views can be compared.
"""

from __future__ import annotations

from typing import Any

from ..rules._model import Model
from ._run import Replay

__all__ = ["single_loggers"]


def single_loggers(
    replay: Replay, *, share: float, tier: str, sustained: Model | None
) -> list[dict[str, Any]]:
    """Return the single loggers at or above ``tier``, highest score first."""
    model, ends = replay.models[0], replay.ends
    bar = model.rank(tier)
    found = []
    for user_id, (busiest, total) in replay.busiest_day.items():
        if busiest < share * total:
            continue
        score = ends.score(model, user_id)
        if model.rank(score.tier) < bar:
            continue
        entry: dict[str, Any] = {
            "user": user_id,
            "tracks": total,
            "busiest_day_tracks": busiest,
            "share": round(busiest / total, 4),
            "score": score.score,
            "tier": score.tier,
        }
        if sustained is not None:
            other = ends.score(sustained, user_id)
            entry["sustained"] = {
                "model": other.model,
                "score": other.score,
                "tier": other.tier,
                "reasons": [str(r) for r in other.reasons],
            }
        found.append(entry)
    found.sort(key=lambda entry: (-entry["score"], entry["user"]))
    return found
