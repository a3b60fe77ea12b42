"""Server-side feature gates from plan entitlements.

``Client.gate(user_id, feature)`` answers "may this user use feature X?" from
the rules file's ``[entitlements]``: the plan expression gives the user's plan,
and the plan lists its features. A denied gate is a buying signal: the client
tracks it as ``premium_feature_attempted`` and may answer with a moment.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ._moments import Moment
from .rules._facts import Facts
from .rules._model import Entitlements

__all__ = ["PREMIUM_ATTEMPT_EVENT", "Gate", "entitled"]

PREMIUM_ATTEMPT_EVENT: Final = "premium_feature_attempted"
"""The event a denied gate tracks, with property ``feature``."""


class Gate(msgspec.Struct, frozen=True, gc=False):
    """The answer to "may this user use ``feature``?"; true when allowed.

    Added in version 0.1.0.
    """

    feature: str
    allowed: bool
    reason: str
    plan: str | None
    moment: Moment | None
    """What to show instead, when denied and a gate moment is due."""

    def __bool__(self) -> bool:
        return self.allowed


def entitled(
    entitlements: Entitlements, facts: Facts, feature: str
) -> tuple[bool, str | None, str]:
    """Return whether the subject's plan includes ``feature``, the plan, and why."""
    found: Any = entitlements.plan.evaluate(facts)
    plan = found if isinstance(found, str) and found else entitlements.default_plan
    if plan is None:
        return False, None, f"no plan, so no {feature!r}"
    features = entitlements.plans.get(plan)
    if features is None:
        return False, plan, f"plan {plan!r} is not in the entitlements"
    if feature in features:
        return True, plan, f"plan {plan!r} includes {feature!r}"
    return False, plan, f"plan {plan!r} does not include {feature!r}"
