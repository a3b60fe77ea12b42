"""The rules file's shape, as typed structures: what a growth team may write.

TOML and JSON files decode into these ``msgspec`` structs, which reject unknown
keys and wrong types before any expression is compiled. A minimal file::

    [model.playbook]
    gate = 'count("core_workflow_completed") >= 1'
    multiplier = '1.0 if days_since_last_active() <= 7 else 0.5'
    tiers = { cold = 0, warm = 26, hot = 51, burning = 76 }

    [model.playbook.signals]
    hit_limit = { when = 'count("limit_hit") >= 1', points = 30 }
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["ModelSpec", "PQASpec", "RouteSpec", "RulesSpec", "SignalSpec"]

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=64)]
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


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


class RulesSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A whole rules file."""

    model: Annotated[dict[Name, ModelSpec], msgspec.Meta(min_length=1, max_length=50)]
    primary: Name | None = None
    pqa: PQASpec | None = None
    version: Literal[1] = 1
