"""The rules file's shape, as typed structures: what a growth team may write.

TOML and JSON files decode into these ``msgspec`` structs, which reject unknown
keys and wrong types before any expression is compiled. A minimal file:

```toml
[model.playbook]
gate = 'count("core_workflow_completed") >= 1'
multiplier = '1.0 if days_since_last_active() <= 7 else 0.5'
tiers = { cold = 0, warm = 26, hot = 51, burning = 76 }

[model.playbook.signals]
hit_limit = { when = 'count("limit_hit") >= 1', points = 30 }
```
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "CapGroupSpec",
    "CapSpec",
    "CooldownSpec",
    "EntitlementsSpec",
    "ModelSpec",
    "MomentSpec",
    "MomentsSpec",
    "Outcome",
    "PQASpec",
    "RouteSpec",
    "RulesSpec",
    "SignalSpec",
    "TraitType",
    "TraitsSpec",
]

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=64)]
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
DurationText = Annotated[str, msgspec.Meta(min_length=2, max_length=20)]
Content = Annotated[str, msgspec.Meta(max_length=2000)]
Outcome = Literal["shown", "clicked", "dismissed", "converted"]
# Trait names are what an expression can spell after ``user.`` / ``account.``.
TraitName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
TraitType = Literal["number", "string", "bool", "list"]


class SignalSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One scoring signal: ``points`` when ``when`` holds, or ``points`` x ``value``."""

    points: float
    when: Source | None = None
    value: Source | None = None
    label: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class RouteSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A routing rule: the first whose ``when`` holds names the route."""

    route: Name
    when: Source


class ModelSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A named scoring model: gate, signals, multiplier, tiers and routing."""

    tiers: Annotated[dict[Name, float], msgspec.Meta(min_length=1, max_length=20)]
    signals: Annotated[dict[Name, SignalSpec], msgspec.Meta(max_length=200)] = {}
    subject: Literal["user", "account"] = "user"
    gate: Source | None = None
    multiplier: Source | None = None
    routes: Annotated[list[RouteSpec], msgspec.Meta(max_length=50)] = []
    default_route: Name = "nurture"
    do_not_contact: Source | None = None


class PQASpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Account roll-up: an account is a PQA with ``min_users`` users at ``tier`` or above."""

    model: Name
    tier: Name = "hot"
    min_users: Annotated[int, msgspec.Meta(ge=1)] = 2


class CapSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """At most ``max`` showings in any window of length ``per`` (e.g. ``"24h"``)."""

    max: Annotated[int, msgspec.Meta(ge=1)]
    per: DurationText


class CooldownSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """After an ``after`` outcome, the kind is not shown again ``for`` this long."""

    after: Outcome
    duration: DurationText = msgspec.field(name="for")


class MomentSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One kind of in-app moment: when it is due, how often, and what it says.

    ``at = "gate"`` kinds are shown by ``gate()`` when a feature is denied;
    ``at = "decide"`` kinds by ``decide()``. Content may use placeholders such as
    ``{days_left}``, ``{feature}``, ``{tier}``, ``{user.first_name}``.
    """

    at: Literal["decide", "gate"] = "decide"
    when: Source | None = None
    priority: int = 0
    cap: CapSpec | None = None
    cooldown: Annotated[list[CooldownSpec], msgspec.Meta(max_length=4)] = []
    holdout: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0
    title: Content = ""
    body: Content = ""
    cta: Content = ""


class CapGroupSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A cap shared by several kinds: at most ``max`` of them in any ``per``."""

    kinds: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=50)]
    max: Annotated[int, msgspec.Meta(ge=1)]
    per: DurationText


class MomentsSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings shared by all moments."""

    model: Name | None = None
    """The model whose score and tier moments see (default: the primary model)."""
    trial_end: Name = "trial_ends_at"
    """The user trait holding the trial's end, for ``days_left``."""
    caps: Annotated[list[CapGroupSpec], msgspec.Meta(max_length=20)] = []
    conversion: Source | None = None
    """What counts as converting (a bool expression): the outcome moments' lift is measured on."""
    conversion_window: DurationText = "14d"
    """How long after a user's first showing (or held-out decision) a conversion counts."""


class EntitlementsSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which plan has which features, and where the plan comes from."""

    plans: Annotated[dict[Name, list[Name]], msgspec.Meta(min_length=1, max_length=100)]
    plan: Source = "user.plan"
    """An expression giving the subject's plan, e.g. ``account.plan``."""
    default_plan: Name | None = None
    """The plan of users whose plan expression gives nothing."""
    names: Annotated[
        dict[Name, Annotated[str, msgspec.Meta(min_length=1, max_length=100)]],
        msgspec.Meta(max_length=500),
    ] = {}
    """Features' names as people read them (``sso = "Single sign-on"``), for ``{feature}``."""


class TraitsSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Declared trait types, written as expressions spell them.

    ``account.employees = "number"`` under ``[traits]`` is TOML's dotted key for
    ``{ account = { employees = "number" } }``: comparing a declared trait with a
    literal of another type is then an error at load.
    """

    user: Annotated[dict[TraitName, TraitType], msgspec.Meta(max_length=500)] = {}
    account: Annotated[dict[TraitName, TraitType], msgspec.Meta(max_length=500)] = {}


class RulesSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A whole rules file."""

    model: Annotated[dict[Name, ModelSpec], msgspec.Meta(min_length=1, max_length=50)]
    primary: Name | None = None
    pqa: PQASpec | None = None
    moment: Annotated[dict[Name, MomentSpec], msgspec.Meta(max_length=50)] = {}
    moments: MomentsSpec = MomentsSpec()
    entitlements: EntitlementsSpec | None = None
    traits: TraitsSpec = TraitsSpec()
    version: Literal[1] = 1
