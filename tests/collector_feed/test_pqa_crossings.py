"""Accounts crossing into (and out of) being a PQA: reported like a user's tier crossing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk import TierChange
from pqlsdk._tiers import moment_titles
from pqlsdk.testing import RecordingTransport

RULES = """
primary = "p"

[model.p]
tiers = { cold = 0, hot = 50, burning = 80 }

[model.p.signals]
intent = { when = 'user.intent == "high"', points = 60, label = "buying intent" }
extra = { when = 'user.extra == true', points = 30, label = "extra" }

[pqa]
model = "p"
tier = "hot"
min_users = 2
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return path


def accounts(changes: list[TierChange]) -> list[tuple[str | None, str, str, int]]:
    return [
        (c.previous, c.tier, c.direction, c.qualifying) for c in changes if c.subject == "account"
    ]


def test_an_account_becoming_moving_and_ceasing_to_be_a_pqa_is_reported_once_each(
    rules: Path,
) -> None:
    """Two hot members make a PQA (one report, not one per member); it moves and ends too."""
    changes: list[TierChange] = []
    transport = RecordingTransport()
    with pqlsdk.Client(
        store="memory://",
        clock=pqlsdk.FixedClock("2026-03-15T12:00:00Z"),
        rules=rules,
        on_tier_change=changes.append,
        transport=transport,
        strict=True,
    ) as client:
        for user in ("a", "b", "c"):
            client.group(user, "acme", {"employees": 50})
        client.identify("a", {"intent": "high"})
        assert accounts(changes) == []  # one hot member is not a PQA
        client.identify("b", {"intent": "high"})
        client.identify("c", {"intent": "high"})  # a third: still a hot PQA, no report
        client.identify("a", {"extra": True})  # one burning member: the PQA stays hot
        client.identify("b", {"extra": True})  # two burning: a burning PQA
        client.identify("a", {"intent": "low", "extra": False})  # a drops out: a hot PQA again
        client.identify("b", {"intent": "low", "extra": False})  # one left: no PQA
        client.identify("c", {"intent": "low"})  # not a PQA before or after: nothing
        assert client.score_account("acme").pqa is False
    assert accounts(changes) == [
        (None, "hot", "up", 2),
        ("hot", "burning", "up", 3),
        ("burning", "hot", "down", 2),
        ("hot", "cold", "down", 1),
    ]
    became = next(c for c in changes if c.subject == "account")
    assert (became.id, became.model, became.user_id, became.score.score) == ("acme", "p", "b", 120)
    assert [m.id for m in became.members] == ["a", "b", "c"]
    assert "members at hot or above = 2, needs >= 2 (+120)" in became.score.explain()
    sent = [
        m["properties"]
        for m in transport.messages
        if m.get("event") == "pqlsdk_tier_changed" and m["properties"]["subject"] == "account"
    ]
    assert len(sent) == 4
    members: list[dict[str, Any]] = sent[0]["members"]
    assert [(m["user_id"], m["tier"], m["score"], m["qualifies"]) for m in members] == [
        ("a", "hot", 60, True),
        ("b", "hot", 60, True),
        ("c", "cold", 0, False),
    ]
    assert members[0]["reasons"] == [
        {
            "signal": "intent",
            "label": "buying intent",
            "points": 60,
            "earned": 60,
            "fired": True,
            "observed": "high",
            "needs": '== "high"',
        }
    ]


def test_a_hot_user_joining_an_account_can_make_it_a_pqa(rules: Path) -> None:
    """Membership changes the standing too: a hot user's group message is checked."""
    changes: list[TierChange] = []
    with pqlsdk.Client(
        store="memory://", rules=rules, on_tier_change=changes.append, strict=True
    ) as client:
        client.identify("a", {"intent": "high"})
        client.identify("b", {"intent": "high"})
        client.group("a", "acme")
        assert accounts(changes) == []
        client.group("b", "acme")
    assert accounts(changes) == [(None, "hot", "up", 2)]


def test_a_pqa_of_do_not_contact_members_is_routed_so(tmp_path: Path) -> None:
    """A PQA whose qualifying members all asked not to be contacted is not to be contacted."""
    path = tmp_path / "rules.toml"
    path.write_text(
        RULES.replace(
            "[model.p.signals]", "do_not_contact = 'user.quiet == true'\n\n[model.p.signals]"
        )
    )
    changes: list[TierChange] = []
    with pqlsdk.Client(
        store="memory://", rules=path, on_tier_change=changes.append, strict=True
    ) as client:
        for user in ("a", "b"):
            client.group(user, "acme")
            client.identify(user, {"intent": "high", "quiet": True})
    [pqa] = [c for c in changes if c.subject == "account"]
    assert pqa.score.route == "do_not_contact"


def test_user_crossings_carry_moment_titles_and_the_multiplier() -> None:
    """A crossing record names the moments seen by their titles, and the score's multiplier."""
    playbook = Path(__file__).resolve().parents[2] / "examples" / "rules" / "playbook.toml"
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    transport = RecordingTransport()
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=playbook, transport=transport, strict=True
    ) as client:
        client.identify("u", {"plan": "trial", "trial_ends_at": "2026-03-17T00:00:00Z"})
        client.track("u", "core_workflow_completed")
        assert client.decide("u") is not None  # the trial-ending notice
        client.track("u", "limit_hit")
    [crossing] = [
        m["properties"] for m in transport.messages if m.get("event") == "pqlsdk_tier_changed"
    ]
    assert crossing["moments_seen"] == ["trial_ending"]
    assert crossing["moment_titles"] == ["Your trial ends in 2 days"]
    assert crossing["multiplier"] == 1.0


def test_a_moment_the_rules_no_longer_define_is_named_from_its_kind() -> None:
    """Without its rules, a moment kind still reads as words, not an id."""
    assert moment_titles(None, ("trial_ending",)) == ("Trial ending",)
