"""A place's generated decision gives exactly what the general path gives.

The general path is what ``Chooser.choose`` did before the decision was written
out as one function: read the user and the account, drop the kinds ``blocked``
holds back, build the facts with ``facts_from`` and evaluate each open kind's
``when`` closure. Both run here over every mix of kinds (with and without a
``when``, caps, cooldowns and shared caps, ``when``s that read the score, the
variables and shapes without a template) and of users (none, no account,
histories in and out of every window, held out or not, traits of every kind).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from typing import Any

import msgspec
import pytest

from pqlsdk import rules
from pqlsdk._clock import from_micros
from pqlsdk._due import decision_function
from pqlsdk._moments import Chooser, blocked, days_left, read_state
from pqlsdk._scoring import facts_from
from pqlsdk.rules._compiler import Type, compile_expression
from pqlsdk.rules._model import MomentKind, Rules
from pqlsdk.stores import AccountState, MemoryStore, MomentRecord, Store, UserState

HOUR = 3_600_000_000
DAY = 24 * HOUR
NOW = 400 * DAY

CONTENT = 'title = "t"\nbody = "b"\ncta = "c"\n'

# Every kind of check a decision makes. Kind "inside" reads a list trait (no template:
# its closure runs on a facts object), and the model's "listed" signal does the same.
EVERYTHING = f"""
primary = "m"
[model.m]
gate = 'count("x") >= 1'
multiplier = '1.0 if days_since_last_active() <= 7 else 0.5'
tiers = {{ low = 0, mid = 2, high = 4 }}
[model.m.signals]
twice = {{ when = 'count("x") >= 2', points = 1.5 }}
team = {{ when = 'team_size() >= 2', points = 1 }}
seats = {{ value = 'user.seats', points = 0.5 }}
listed = {{ when = 'user.plan in account.plans', points = 2 }}

[moments]
model = "m"
trial_end = "ends"
caps = [
    {{ kinds = ["ranked", "trial", "untimed"], max = 2, per = "2d" }},
    {{ kinds = ["trial", "denied"], max = 1, per = "1d" }},
    {{ kinds = ["elsewhere"], max = 1, per = "1d" }},
]

[moment.ranked]
when = 'tier in ["mid", "high"]'
priority = 90
cap = {{ max = 1, per = "1d" }}
cooldown = [{{ after = "dismissed", for = "2d" }}, {{ after = "clicked", for = "1h" }}]
{CONTENT}
[moment.trial]
when = 'user.plan == "trial" and days_left > 0 and days_left <= 3'
priority = 80
cap = {{ max = 2, per = "3d" }}
holdout = 50
{CONTENT}
[moment.untimed]
priority = 70
{CONTENT}
[moment.scored]
when = 'score >= 1 or gate_passed == false'
priority = 60
cooldown = [{{ after = "converted", for = "1d" }}]
{CONTENT}
[moment.named]
when = 'plan == "pro" and user_id != "u3" and account_id != null'
priority = 50
{CONTENT}
[moment.inside]
when = 'user.plan in account.plans or count("x") - count("y") >= 1'
priority = 40
cap = {{ max = 3, per = "1d" }}
{CONTENT}
[moment.elsewhere]
when = 'days_since_first_seen() > 1 and count("x", within=7d) >= 1'
priority = 30
{CONTENT}
[moment.denied]
at = "gate"
when = 'feature == "sso" and tier != "high"'
priority = 20
cap = {{ max = 2, per = "1d" }}
{CONTENT}
[moment.gated]
at = "gate"
priority = 10
{CONTENT}
"""

# No caps, no cooldowns, nothing that reads the score or a facts object; no gate kinds.
PLAIN = f"""
primary = "m"
[model.m]
tiers = {{ low = 0 }}
[model.m.signals]
x = {{ when = 'count("x") >= 1', points = 1 }}

[moments]
model = "m"
trial_end = "ends"

[moment.always]
priority = 20
{CONTENT}
[moment.soon]
when = 'days_left <= 3'
priority = 10
{CONTENT}
"""

# Only the score: no variable read from the user's traits, no facts object.
SCORED = f"""
primary = "m"
[model.m]
tiers = {{ low = 0, top = 1 }}
[model.m.signals]
x = {{ when = 'count("x") >= 1', points = 1 }}

[moments]
model = "m"
trial_end = "ends"

[moment.top]
when = 'tier == "top"'
priority = 10
{CONTENT}
"""

NAMES = ("ranked", "trial", "untimed", "scored", "named", "inside", "elsewhere", "denied", "gated")
VALUES: tuple[Any, ...] = (None, True, 0, 2, 3.5, math.nan, "pro", "trial", ["pro", 1])
ENDS: tuple[Any, ...] = (
    None,
    "2026-01-01T00:00:00",  # naive: no days left
    "soon",
    5,
    *(from_micros(NOW + offset).isoformat() for offset in (-DAY, HOUR, 2 * DAY + HOUR, 5 * DAY)),
)
AGES = (0, HOUR, 23 * HOUR, DAY, DAY + HOUR, 2 * DAY, 3 * DAY + 1)


def history(rng: random.Random) -> list[MomentRecord]:
    """Some decisions, of known and unknown kinds, in and out of every window."""
    found = []
    for index in range(rng.choice((0, 1, 2, 4, 7))):
        outcomes = {
            outcome: NOW - rng.choice(AGES)
            for outcome in ("dismissed", "clicked", "converted")
            if rng.random() < 0.3
        }
        found.append(
            MomentRecord(
                id=f"r{index}",
                kind=rng.choice((*NAMES, "gone")),
                at=NOW - rng.choice(AGES),
                held_out=rng.random() < 0.25,
                outcomes=outcomes,
            )
        )
    return found


def populate(store: Store, rng: random.Random, count: int) -> list[str]:
    """Users ``u0``... of every kind; every third has no account, every seventh no state."""
    ids = [f"u{index}" for index in range(count)]
    for index, user_id in enumerate(ids):
        if index % 7 == 6:
            continue
        traits = {
            "plan": rng.choice(VALUES),
            "seats": rng.choice(VALUES),
            "ends": rng.choice(ENDS),
        }
        aggregates = {
            "user:count:x:::": rng.choice((None, 0, 1, 3)),
            "user:count:y:::": rng.choice((None, 0, 1)),
            "user:count:x::::7d": [NOW - HOUR] * rng.choice((0, 1)),
        }

        def fill(
            state: UserState, index: int = index, traits: Any = traits, aggregates: Any = aggregates
        ) -> None:
            state.traits = traits
            state.aggregates = {k: v for k, v in aggregates.items() if v is not None}
            state.account_id = None if index % 3 == 2 else f"a{index % 4}"
            state.last_active = NOW - rng.choice((HOUR, 8 * DAY))
            state.first_seen = rng.choice((None, NOW - HOUR, NOW - 9 * DAY))
            state.moments = history(rng)

        store.update_user(user_id, fill)
    for index in range(3):  # a3 has no state: a member of an account the store never saw

        def group(state: AccountState, index: int = index) -> None:
            state.traits = {"plans": rng.choice(VALUES)}
            state.active_members = index

        store.update_account(f"a{index}", group)
    return ids


def reference(
    loaded: Rules, store: Store, user_id: str, feature: str | None, now: int
) -> list[MomentKind] | None:
    """The due kinds as the general path finds them (None for none)."""
    moments = loaded.moments
    assert moments is not None
    model = loaded.model(moments.model)
    user, account = read_state(store, user_id)
    kinds = moments.at("decide" if feature is None else "gate")
    if user is not None and user.moments:
        kinds = tuple(k for k in kinds if not blocked(k, user.moments, moments, now))
    if not kinds:
        return None
    trial_end = ({} if user is None else user.traits).get(moments.trial_end)
    values = {
        "days_left": None if trial_end is None else days_left(trial_end, now),
        "feature": feature,
        "plan": ({} if user is None else user.traits).get("plan"),
        "user_id": user_id,
    }
    facts = facts_from(user, account, now, values, model._standing_variables)
    due = [k for k in kinds if k.when is None or k.when.evaluate(facts) is True]
    return due or None


@pytest.mark.parametrize(
    "source", [EVERYTHING, PLAIN, SCORED], ids=["everything", "plain", "scored"]
)
def test_the_decision_finds_what_the_general_path_finds(source: str) -> None:
    """Over every mix of kinds and users, the same kinds are due, in the same order."""
    loaded = rules.loads(source)
    assert loaded.moments is not None
    store = MemoryStore()
    rng = random.Random(21)
    ids = populate(store, rng, 600)
    model = loaded.model(loaded.moments.model)
    due = 0
    for place, feature in (("decide", None), ("gate", "sso"), ("gate", "reports")):
        decide = decision_function(loaded.moments, model, place)
        for user_id, now in itertools.product(ids, (NOW, NOW + 2 * HOUR)):
            found = decide(store, user_id, feature, now)
            expected = reference(loaded, store, user_id, feature, now)
            where = (place, feature, user_id, now, store.user(user_id))
            if expected is None:
                assert found is None, where
                continue
            assert found is not None, where
            kinds, user, account = found
            assert kinds == expected, where
            assert (user, account) == read_state(store, user_id), where
            due += 1
    assert due > 50  # (and many more found nothing: both answers are exercised)


def test_a_variable_without_a_local_is_read_from_the_facts() -> None:
    """A ``when`` may read a variable the decision has no local for: the facts answer it."""
    loaded = rules.loads(PLAIN)
    assert loaded.moments is not None
    odd = compile_expression("unknown == null", variables={"unknown": Type.ANY})
    kinds = tuple(msgspec.structs.replace(k, when=odd) for k in loaded.moments.kinds)
    moments = msgspec.structs.replace(loaded.moments, kinds=kinds)
    loaded = msgspec.structs.replace(loaded, moments=moments)
    store = MemoryStore()
    ids = populate(store, random.Random(2), 10)
    decide = decision_function(moments, loaded.model("m"), "decide")
    for user_id in ids:
        found = decide(store, user_id, None, NOW)
        assert found is not None
        assert found[0] == reference(loaded, store, user_id, None, NOW)


def test_a_place_without_kinds_has_nothing_due() -> None:
    """Rules whose moments are all shown by decide(): a gate finds none."""
    loaded = rules.loads(PLAIN)
    assert loaded.moments is not None
    decide = decision_function(loaded.moments, loaded.model("m"), "gate")
    store = MemoryStore()
    populate(store, random.Random(1), 3)
    assert decide(store, "u0", "sso", NOW) is None


def test_a_user_capped_everywhere_costs_no_account_read() -> None:
    """Capped for the day (the common call): the answer comes from the user's state alone."""
    capped = r"priority = \1" + '\ncap = { max = 1, per = "1d" }'
    loaded = rules.loads(re.sub(r"priority = (\d+)", capped, PLAIN))
    assert loaded.moments is not None

    class Counting(MemoryStore):
        accounts = 0

        def account(self, account_id: str) -> AccountState | None:
            Counting.accounts += 1
            return super().account(account_id)

    store = Counting()

    def shown(state: UserState) -> None:
        state.account_id = "a0"
        state.moments = [
            MomentRecord(id="1", kind="always", at=NOW - HOUR),
            MomentRecord(id="2", kind="soon", at=NOW - HOUR),
        ]

    store.update_user("u0", shown)
    decide = decision_function(loaded.moments, loaded.model("m"), "decide")
    assert decide(store, "u0", None, NOW) is None
    assert Counting.accounts == 0
    assert decide(store, "u0", None, NOW + DAY) is not None  # the cap's day is over
    assert Counting.accounts == 1


def test_the_decision_is_made_once_per_rules_version() -> None:
    """A chooser compiles each place's decision on first use and keeps it for those rules."""
    first, second = rules.loads(EVERYTHING), rules.loads(EVERYTHING)
    assert first.moments is not None
    assert second.moments is not None
    chooser = Chooser(MemoryStore(), lambda message: None)
    chooser.choose(first, first.moments, "nobody", None, NOW)
    made = chooser._decisions["decide"]
    chooser.choose(first, first.moments, "nobody", None, NOW)
    assert chooser._decisions["decide"] is made
    chooser.choose(second, second.moments, "nobody", None, NOW)  # rules reloaded
    assert chooser._decisions["decide"] is not made
    assert chooser._decisions["decide"][0] is second
