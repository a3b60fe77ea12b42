"""A simulated cohort of trial users and accounts, for the main job and its tests.

Two weeks of a product-led SaaS, played through a real ``Client`` exactly as a
host app would call it: sign-ups, ``identify``/``group``, product events, feature
gates at premium features, and ``decide()`` on page views. It holds the three
patterns of the domain's model 3 (a real PQL using the product on most days and
inviting a team, a maybe, a single logger who did everything in one sitting),
an existing customer, a do-not-contact user and some cold trials. On request a
crowd of trial users near their trial's end joins too: they meet the trial
notice and the single sign-on wall, some upgrade a few days later (more often
when shown a moment), and none of them is a lead, so the moments report has two
arms to compare without crowding the feed.

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
    crowd: int = 0
    """Trial users of the crowd (not leads: they never complete the core workflow)."""


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
    crowd: int = 0,
) -> Cohort:
    """Play two weeks of the cohort through ``client``, ending at ``clock``'s current time.

    ``crowd`` more trial users join over the first ten days (see ``_Crowd``).
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    end = clock.now()
    # Fourteen whole days back; the last of them is today, its activity in the
    # last three hours (see _slot), so the feed has fresh leads as well as old ones.
    start = end - timedelta(days=_DAYS)
    cast = _personas(rng)
    events = denied = shown = 0
    extras = _Crowd(client, clock, start, crowd, rng)
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
        extras.day(day)
        on_day(day)
    clock.set(end)
    return Cohort(
        users=len(cast),
        events=events + extras.events,
        gates_denied=denied + extras.denied,
        moments_shown=shown + extras.shown,
        crowd=crowd,
    )


_CROWD_DAYS: Final = 10
_UPGRADE_AFTER: Final = 3
_BASE_RATE: Final = 0.08
_LIFT: Final = {"trial_ending": 0.14, "blocked_feature": 0.08}
"""What seeing each moment adds to a crowd user's chance of upgrading: the planted effect."""


class _Crowd:
    """Trial users two days from their trial's end, in the evenings after the personas.

    Each joins on one of the first ten days, sees (or is held out of) the trial
    notice, half also hit the single sign-on wall, some click or dismiss, and
    three days later some upgrade (``plan`` becomes ``business``): 8 %, plus
    the planted lift of each moment they were shown. None completes the core
    workflow, so none ever scores or reaches the feed.
    """

    def __init__(
        self, client: Client, clock: FixedClock, start: datetime, size: int, rng: random.Random
    ) -> None:
        self.client, self.clock, self.start, self.rng = client, clock, start, rng
        self.joining: dict[int, list[int]] = {}
        for i in range(size):
            self.joining.setdefault(i % _CROWD_DAYS, []).append(i)
        self.upgrading: dict[int, list[str]] = {}
        self.events = self.denied = self.shown = 0

    def day(self, day: int) -> None:
        """Play the evening of ``day``: joiners first, then the day's upgrades."""
        evening = self.start + timedelta(days=day, hours=18)
        for slot, number in enumerate(self.joining.get(day, ())):
            self.clock.set(evening + timedelta(minutes=10 * slot))
            self.join(number, day)
        for slot, user in enumerate(self.upgrading.get(day, ())):
            self.clock.set(evening + timedelta(minutes=10 * slot + 5))
            self.client.identify(user, {"plan": "business"})
            self.events += 1

    def join(self, number: int, day: int) -> None:
        """Sign crowd user ``number`` up on ``day``; decide whether they will upgrade."""
        client, rng = self.client, self.rng
        user = f"crowd{number:03d}@example"
        ends = (self.clock.now() + timedelta(days=2)).isoformat().replace("+00:00", "Z")
        client.identify(user, {"plan": "trial", "trial_ends_at": ends})
        client.track(user, "feature_used", {"feature": rng.choice(_FEATURES)})
        self.events += 1
        seen = []
        moment = client.decide(user)
        if number % 2 == 0:  # half of them also try single sign-on
            gate = client.gate(user, "sso")
            self.denied += 1
            seen.append(gate.moment)
        seen.append(moment)
        chance = _BASE_RATE
        for shown in seen:
            if shown is None:
                continue
            self.shown += 1
            chance += _LIFT.get(shown.kind, 0.0)
            draw = rng.random()
            if draw < 0.3:
                client.record(user, shown.id, "clicked")
            elif draw < 0.55:
                client.record(user, shown.id, "dismissed")
        if rng.random() < chance:
            self.upgrading.setdefault(day + _UPGRADE_AFTER, []).append(user)
