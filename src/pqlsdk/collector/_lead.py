"""Leads: the latest tier crossing of each (subject, subject_id, model).

The SDK reports every tier crossing as a ``pqlsdk_tier_changed`` track message
(see CONTRACT.md). ``lead_from`` checks such a message's properties and turns
it into a ``Lead``, the record the collector keeps per key and hands to
``on_crossing``. Properties the contract added after the first SDKs
(``reasons``, ``top_features``, ``team_size``, ``moments_seen``, ``multiplier``,
``members``, ``moment_titles``) default to empty so that older senders are still
accepted; unknown properties are ignored. ``contacted_by`` and ``contacted_at``
are not part of a crossing: a rep sets them on the feed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from .._exceptions import InvalidMessageError
from .._tiers import TIER_CHANGED_EVENT
from ..messages import Message, Track

__all__ = ["DEFAULT_TIERS", "Lead", "lead_from"]

DEFAULT_TIERS: Final = ("burning", "hot", "warm", "cold")
"""Tiers from most to least urgent: how lead lists are ranked unless told otherwise."""

_json_encode: Final = msgspec.json.Encoder().encode
_json_decode: Final = msgspec.json.Decoder().decode
_Name = Annotated[str, msgspec.Meta(min_length=1)]


class _Crossing(msgspec.Struct, kw_only=True, frozen=True):
    """The properties of a ``pqlsdk_tier_changed`` message, as CONTRACT.md lists them."""

    subject: Literal["user", "account"]
    subject_id: _Name
    model: _Name
    previous_tier: str | None = None
    tier: _Name
    direction: Literal["up", "down"]
    score: float
    route: str
    reasons: tuple[dict[str, Any], ...] = ()
    top_features: tuple[str, ...] = ()
    team_size: int = 1
    moments_seen: tuple[str, ...] = ()
    multiplier: float = 1.0
    members: tuple[dict[str, Any], ...] = ()
    moment_titles: tuple[str, ...] = ()


class Lead(msgspec.Struct, kw_only=True, frozen=True):
    """The latest tier crossing of a user or account for one rules model.

    The fields are the crossing's properties (CONTRACT.md) plus ``crossed_at``
    (the message's timestamp, UTC), ``user_id`` (the user whose event caused the
    crossing) and ``message_id`` (the message the lead came from).

    Added in version 0.1.0.
    """

    subject: Literal["user", "account"]
    subject_id: str
    model: str
    previous_tier: str | None
    tier: str
    direction: Literal["up", "down"]
    score: float
    route: str
    reasons: tuple[dict[str, Any], ...]
    top_features: tuple[str, ...]
    team_size: int
    moments_seen: tuple[str, ...]
    crossed_at: datetime
    user_id: str | None
    message_id: str
    multiplier: float = 1.0
    """What the points were multiplied by (recency, say): ``score`` is their sum times this."""
    members: tuple[dict[str, Any], ...] = ()
    """For an account that crossed into (or out of) being a PQA: its qualifying members,
    best first, each ``{"user_id", "tier", "score", "route", "reasons"}``."""
    moment_titles: tuple[str, ...] = ()
    """The titles of ``moments_seen`` as the user last saw them, in the same order."""
    contacted_by: str | None = None
    """The rep who marked the lead contacted on the feed, if one did."""
    contacted_at: datetime | None = None
    """When they did (the collector's clock, UTC)."""

    @property
    def key(self) -> tuple[str, str, str]:
        """What a lead is kept per: ``(subject, subject_id, model)``.

        Added in version 0.1.0.
        """
        return (self.subject, self.subject_id, self.model)

    def to_dict(self) -> dict[str, Any]:
        """Return the lead as JSON values: lists, and ``crossed_at`` as ISO-8601 UTC (``Z``).

        Added in version 0.1.0.
        """
        data: dict[str, Any] = _json_decode(_json_encode(self))
        return data


def lead_from(message: Message) -> Lead | None:
    """Return the lead a crossing message carries, or None for any other message.

    Raise ``InvalidMessageError`` naming the property when a
    ``pqlsdk_tier_changed`` message's properties are not a crossing.
    """
    if not (isinstance(message, Track) and message.event == TIER_CHANGED_EVENT):
        return None
    try:
        crossing = msgspec.convert(message.properties, _Crossing)
    except msgspec.ValidationError as exc:
        detail = str(exc)
        # msgspec writes the path from the root ($); ours is the message's properties.
        if " - at `$" in detail:
            detail = detail.replace(" - at `$", " - at `properties", 1)
        else:
            detail += " - at `properties`"
        raise InvalidMessageError(f"{TIER_CHANGED_EVENT} message: {detail}") from exc
    return Lead(
        **msgspec.structs.asdict(crossing),
        crossed_at=message.timestamp,
        user_id=message.user_id,
        message_id=message.message_id,
    )
