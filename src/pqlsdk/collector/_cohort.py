"""A simulated cohort of trial users and accounts, for the main job and its tests.

Two weeks of a product-led SaaS, played through a real ``Client`` exactly as a
host app would call it: sign-ups, ``identify``/``group``, product events, feature
gates at premium features, and ``decide()`` on page views. It holds the three
patterns of the domain's model 3 (a real PQL using the product on most days and
inviting a team, a maybe, a single logger who did everything in one sitting),
an existing customer, a do-not-contact user and some cold trials.

The timeline ends at the clock's "now", so the feed's deadlines are real: the
last day's crossings are hours old, earlier ones days old and past due.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import attrs

from .._client import Client
from .._clock import FixedClock

__all__ = ["Cohort", "simulate"]

_DAYS: Final = 14
_FEATURES: Final = ("reports", "dashboards", "exports", "alerts", "api")


@attrs.frozen
class Cohort:
    """What the simulation did, for the main job's summary and for tests."""

    users: int
    events: int
    gates_denied: int
    moments_shown: int


@attrs.frozen
class _Persona:
    user_id: str
    account: str
    days_active: tuple[int, ...]
    """Days (0 = two weeks ago) this user shows up."""
    events_per_day: int
    invites: int = 0
    buying: tuple[str, ...] = ()
    """Buying signals on the last active day: limit_hit, checkout_started..."""
    traits: dict[str, object] = attrs.field(factory=dict)


def _personas(rng: random.Random) -> list[_Persona]:
    """Cast the cohort: named patterns first, then a few random trials."""
    cast = [
        # Model 3's real PQL: 9 of 14 days, a growing team, buying intent.
        _Persona(
            "ada@northwind",
            "northwind",
            (0, 1, 3, 4, 6, 8, 9, 11, 13),
            6,
            invites=4,
            buying=("limit_hit", "checkout_started", "pricing", "pricing", "pricing"),
        ),
        _Persona("ben@northwind", "northwind", (4, 6, 9, 12, 13), 4),
        _Persona("cai@northwind", "northwind", (6, 9, 13), 3, buying=("limit_hit",)),
        # The maybe: 3 of 14 days, one invite.
        _Persona("max@maybe-labs", "maybe-labs", (2, 7, 12), 18, invites=1, buying=("limit_hit",)),
        # The single logger: a burst on one day, never back.
        _Persona("sol@onceco", "onceco", (5,), 54),
        # An existing customer expanding: customer success, not sales.
        _Persona(
            "eve@acme-paid",
            "acme-paid",
            (1, 5, 9, 13),
            5,
            invites=2,
            buying=("limit_hit", "demo_requested"),
        ),
        # Hot, but asked not to be contacted: the route changes, never the score.
        _Persona(
            "dan@quiet-co",
            "quiet-co",
            (3, 8, 12, 13),
            5,
            buying=("limit_hit", "checkout_started"),
            traits={"do_not_contact": True},
        ),
    ]
    for i in range(8):
        days = tuple(sorted(rng.sample(range(_DAYS), rng.randint(1, 4))))
        cast.append(_Persona(f"trial{i}@example", f"small{i}", days, rng.randint(1, 4)))
    return cast


_ACCOUNTS: Final[dict[str, dict[str, object]]] = {
    "northwind": {"employees": 250, "industry": "fintech", "plan": "trial"},
    "maybe-labs": {"employees": 40, "industry": "retail", "plan": "trial"},
    "onceco": {"employees": 12, "industry": "media", "plan": "trial"},
    "acme-paid": {"employees": 900, "industry": "healthcare", "plan": "paid"},
    "quiet-co": {"employees": 150, "industry": "fintech", "plan": "trial"},
}


def _slot(start: datetime, end: datetime, day: int, hour: int, rng: random.Random) -> datetime:
    """When the ``hour``-th active persona of ``day`` shows up.

    Office hours on past days; on the last day (today), every 20 minutes from
    three hours ago, so its crossings are within their response deadlines while
    earlier days' are past them: the feed as a rep finds it mid-morning.
    """
    if day == _DAYS - 1:
        return end - timedelta(hours=3) + timedelta(minutes=20 * hour + rng.randrange(10))
    return start + timedelta(days=day, hours=9 + hour % 8, minutes=rng.randrange(60))


def simulate(
    client: Client,
    clock: FixedClock,
    *,
    seed: int = 7,
    on_day: Callable[[int], object] = lambda day: None,
) -> Cohort:
    """Play two weeks of the cohort through ``client``, ending at ``clock``'s current time."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    end = clock.now()
    # Fourteen whole days back; the last of them is today, its activity in the
    # last three hours (see _slot), so the feed has fresh leads as well as old ones.
    start = end - timedelta(days=_DAYS)
    cast = _personas(rng)
    events = denied = shown = 0
    for persona in cast:
        clock.set(start + timedelta(days=persona.days_active[0]))
        trial_ends = (start + timedelta(days=_DAYS + 1)).isoformat().replace("+00:00", "Z")
        client.identify(
            persona.user_id, {"plan": "trial", "trial_ends_at": trial_ends, **persona.traits}
        )
        client.group(persona.user_id, persona.account, _ACCOUNTS.get(persona.account, {}))
    for day in range(_DAYS):
        for hour, persona in enumerate(p for p in cast if day in p.days_active):
            clock.set(_slot(start, end, day, hour, rng))
            if day == persona.days_active[0]:
                client.track(persona.user_id, "core_workflow_completed")
                events += 1
            for _ in range(persona.events_per_day):
                client.track(persona.user_id, "feature_used", {"feature": rng.choice(_FEATURES)})
                clock.advance(timedelta(minutes=1))
                events += 1
            if day == persona.days_active[-1]:
                for _ in range(persona.invites):
                    client.track(persona.user_id, "teammate_invited")
                    events += 1
                for signal in persona.buying:
                    if signal == "pricing":
                        client.track(persona.user_id, "page_viewed", {"path": "/pricing"})
                    else:
                        client.track(persona.user_id, signal)
                    events += 1
                gate = client.gate(persona.user_id, "sso" if persona.buying else "reports")
                denied += not gate.allowed
                shown += gate.moment is not None
            shown += client.decide(persona.user_id) is not None
        on_day(day)
    clock.set(end)
    return Cohort(users=len(cast), events=events, gates_denied=denied, moments_shown=shown)
