"""Server-side feature gates from plan entitlements.

``Client.gate(user_id, feature)`` answers "may this user use feature X?" from
the rules file's ``[entitlements]``: the plan expression gives the user's plan,
and the plan lists its features. A denied gate is a buying signal: the client
tracks it as ``premium_feature_attempted`` and may answer with a moment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from ._exceptions import StoreError
from ._moments import Chooser, Moment, read_state
from ._scoring import facts_for
from .rules._facts import Facts
from .rules._model import Entitlements, Rules
from .stores import Store

__all__ = ["PREMIUM_ATTEMPT_EVENT", "Gate", "answer", "entitled", "fallback"]

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


def answer(
    rules: Rules,
    user_id: str,
    feature: str,
    *,
    entitlements: Entitlements,
    store: Store,
    chooser: Chooser,
    now: int,
    on_error: Callable[[StoreError], None],
) -> Gate:
    """Answer the gate from the user's state, with a gate moment to show when denied.

    A user that cannot be read raises ``StoreError`` (the caller answers by its
    fallback); a moment that cannot be claimed is passed to ``on_error``, and the
    denial carries none. ``entitlements`` are those of ``rules``.
    """
    user, account = read_state(store, user_id)
    allowed, plan, reason = entitled(
        entitlements, facts_for(user, account, now, user_id=user_id), feature
    )
    if allowed:
        return Gate(feature, True, reason, plan, None)
    moment = None
    if rules.moments is not None:
        try:
            moment = chooser.choose(rules, rules.moments, user_id, feature, now)
        except StoreError as exc:
            on_error(exc)
    return Gate(feature, False, reason, plan, moment)


def fallback(feature: str, why: str, *, allow: bool) -> Gate:
    """Answer without the user's state (it cannot be read): by ``allow``, saying why."""
    return Gate(feature, allow, f"{why}: " + ("allowed" if allow else "denied"), None, None)
