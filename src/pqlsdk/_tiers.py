"""Tier crossings: a subject moving up or down a model's tiers, reported once.

Crossings are detected when messages arrive: after a write, the client scores
the subjects it touched and compares each tier with the one the store remembers.
``swap_tier`` is a compare-and-set on the store's atomic update, so exactly one
process reports a crossing that several processes see at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from ._scoring import Score, plain
from .messages import Track
from .rules._model import Model
from .stores import AccountState, Store, Subject, UserState

__all__ = ["TIER_CHANGED_EVENT", "TierChange", "swap_tier"]

TIER_CHANGED_EVENT = "pqlsdk_tier_changed"
_MOMENTS_WINDOW = 30 * 86_400_000_000  # µs: the moments a crossing record lists
"""The event name of the record a crossing sends to the collector."""


class TierChange(msgspec.Struct, frozen=True, gc=False):
    """A user or account that moved to another tier of a model.

    Added in version 0.1.0.
    """

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
    top_features: tuple[str, ...] = ()
    """Up to five features the user used (values of the model's ``distinct`` aggregates)."""
    team_size: int = 1
    """Active members of the account (1 without an account)."""
    moments_seen: tuple[str, ...] = ()
    """Moment kinds the user was shown in the last 30 days."""

    @property
    def at(self) -> datetime:
        """When the crossing was detected (the score's instant).

        Added in version 0.1.0.
        """
        return self.score.at

    def to_message(self) -> Track:
        """Return the record the collector receives: a track with the context sales needs.

        Added in version 0.1.0.
        """
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
            "reasons": [
                {
                    "signal": r.signal,
                    "label": r.label,
                    "points": r.points,
                    "earned": r.earned,
                    "fired": r.fired,
                    "observed": plain(r.observed),
                    "needs": r.needs,
                }
                for r in self.score.reasons
            ],
            "top_features": list(self.top_features),
            "team_size": self.team_size,
            "moments_seen": list(self.moments_seen),
        }
        return Track(
            user_id=self.user_id,
            event=TIER_CHANGED_EVENT,
            properties=properties,
            timestamp=self.at,
        )


def crossing_context(
    model: Model, user: UserState, account: AccountState | None, now: int
) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
    """Return what sales needs beside the score: top features, team size, moments seen."""
    features: list[str] = []
    for aggregate in sorted(model.aggregates, key=lambda a: a.key):
        if aggregate.kind == "distinct" and aggregate.scope == "user" and aggregate.window is None:
            for value in user.aggregates.get(aggregate.key) or ():
                decoded = msgspec.json.decode(value)
                if isinstance(decoded, str) and decoded not in features:
                    features.append(decoded)
    team = 1 if account is None else max(account.active_members, 1)
    since = now - _MOMENTS_WINDOW
    seen = tuple(dict.fromkeys(r.kind for r in user.moments if r.at >= since and not r.held_out))
    return tuple(features[:5]), team, seen


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
