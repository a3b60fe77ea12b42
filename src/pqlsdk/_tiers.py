"""Tier crossings: a subject moving up or down a model's tiers, reported once.

Crossings are detected when messages arrive: after a write, the client scores
the subjects it touched and compares each tier with the one the store remembers.
``swap_tier`` is a compare-and-set on the store's atomic update, so exactly one
process reports a crossing that several processes see at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import attrs

from ._scoring import Score
from .messages import Track
from .stores import AccountState, Store, Subject, UserState

__all__ = ["TIER_CHANGED_EVENT", "TierChange", "swap_tier"]

TIER_CHANGED_EVENT = "pqlsdk_tier_changed"
"""The event name of the record a crossing sends to the collector."""


@attrs.frozen
class TierChange:
    """A user or account that moved to another tier of a model."""

    subject: str
    """``"user"`` or ``"account"``."""
    id: str
    model: str
    previous: str | None
    """The tier before, or None the first time the subject was placed."""
    tier: str
    direction: Literal["up", "down"]
    score: Score
    """The score that placed the subject, with its reasons."""
    user_id: str
    """The user whose message caused the crossing (the subject itself for users)."""

    @property
    def at(self) -> datetime:
        """When the crossing was detected (the score's instant)."""
        return self.score.at

    def to_message(self) -> Track:
        """Return the record the collector receives: a track with the context sales needs."""
        properties: dict[str, Any] = {
            "subject": self.subject,
            "subject_id": self.id,
            "model": self.model,
            "previous_tier": self.previous,
            "tier": self.tier,
            "direction": self.direction,
            "score": self.score.score,
            "route": self.score.route,
            "signals": [
                {"signal": r.signal, "points": r.earned} for r in self.score.reasons if r.fired
            ],
        }
        return Track(
            user_id=self.user_id,
            event=TIER_CHANGED_EVENT,
            properties=properties,
            timestamp=self.at,
        )


def swap_tier(
    store: Store, subject: Subject, subject_id: str, model: str, *, expected: str | None, tier: str
) -> bool:
    """Set the tier a subject is remembered at for ``model``, if it is still ``expected``."""

    def change(state: UserState | AccountState) -> bool:
        if state.tiers.get(model) != expected:
            return False
        state.tiers[model] = tier
        return True

    if subject == "user":
        return store.update_user(subject_id, change)
    return store.update_account(subject_id, change)
