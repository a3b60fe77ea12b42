"""A history built through a real Client, with conversion rates planted per arm.

The plan says, per user, whether and when they convert; the client decides
who is shown and who is held out. ``Truth`` keeps what the report must find,
counted here from the plan and the client's answers, not from pqlsdk.lift.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pqlsdk
from pqlsdk import rules
from pqlsdk.testing import RecordingTransport

RULES = """
[model.m]
tiers = { low = 0 }

[entitlements]
plans = { free = [], business = ["sso"] }
default_plan = "free"

[moments]
conversion = 'count("subscription_started") >= 1'
conversion_window = "7d"

[moment.nudge]
when = 'count("visited") >= 1'
holdout = 50
cap = { max = 1, per = "24h" }
title = "Upgrade?"

[moment.wall]
at = "gate"
holdout = 40
cap = { max = 1, per = "24h" }
title = "{feature} is on Business"
"""

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
PLANTED = {"nudge": (0.30, 0.10)}
"""Conversion rate of the shown and of the held-out arm of ``nudge``."""


@dataclass
class Truth:
    """Per kind and arm, the users the report must count."""

    arms: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    clicked: dict[str, set[str]] = field(default_factory=dict)
    dismissed: dict[str, set[str]] = field(default_factory=dict)
    converted: set[str] = field(default_factory=set)
    """Users who converted within the window of their exposures (day 2)."""

    def place(self, kind: str, arm: str, user: str) -> None:
        self.arms.setdefault(kind, {"shown": set(), "held_out": set()})[arm].add(user)


def build(path: Path, users: int = 400, seed: int = 23) -> Truth:
    """Play ``users`` users through a client; write the messages it sent to ``path``."""
    rng = random.Random(seed)
    clock = pqlsdk.FixedClock(START)
    transport = RecordingTransport()
    truth = Truth()
    plan: dict[str, str] = {}  # user: "window", "late" or "before"
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(RULES), transport=transport
    ) as client:
        for i in range(users):
            user = f"user-{i:03d}"
            clock.set(START + timedelta(minutes=i))
            client.identify(user, {"plan": "free"})
            before = i % 17 == 0  # already converted when the decision comes
            if before:
                client.track(user, "subscription_started")
                plan[user] = "before"
            client.track(user, "visited")
            moment = client.decide(user)
            arm = "held_out" if moment is None else "shown"
            truth.place("nudge", arm, user)
            if moment is not None and i % 4 == 0:
                client.record(user, moment.id, "clicked")
                truth.clicked.setdefault("nudge", set()).add(user)
            elif moment is not None and i % 5 == 0:
                client.record(user, moment.id, "dismissed")
                truth.dismissed.setdefault("nudge", set()).add(user)
            if i % 3 == 0:  # a third also hit the wall: counted in both kinds
                clock.advance(timedelta(seconds=30))
                gate = client.gate(user, "sso")
                truth.place("wall", "held_out" if gate.moment is None else "shown", user)
            rate = PLANTED["nudge"][0 if arm == "shown" else 1]
            if not before and rng.random() < rate:
                plan[user] = "late" if rng.random() < 0.2 else "window"
        for i in range(users):  # the next day: decisions recur, exposure stays the first
            user = f"user-{i:03d}"
            clock.set(START + timedelta(days=1, minutes=i))
            client.track(user, "visited")
            client.decide(user)
        for day, when in ((2, "window"), (9, "late")):
            for i in range(users):
                user = f"user-{i:03d}"
                if plan.get(user) == when:
                    clock.set(START + timedelta(days=day, minutes=i))
                    client.track(user, "subscription_started")
                    if when == "window":
                        truth.converted.add(user)
        client.flush(timeout=10)
    path.write_text("".join(json.dumps(m) + "\n" for m in transport.messages))
    return truth
