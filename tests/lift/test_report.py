"""The attribution rule and the verdicts, on small histories written out by hand."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pqlsdk import ConfigError, rules
from pqlsdk._history import History
from pqlsdk.lift import measure, needed_per_arm, newcombe, verdict
from pqlsdk.lift._sources import ordered

RULES = """
[model.m]
tiers = { low = 0 }
[moments]
conversion = 'count("subscription_started") >= 1 or account.plan == "paid"'
conversion_window = "7d"
[moment.nudge]
holdout = 50
[moment.tip]
"""
START = datetime(2026, 3, 2, 9, tzinfo=UTC)


class Written:
    """Messages written by hand, a day number and a user each."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def add(self, day: float, user: str, kind: str = "track", **fields: Any) -> None:
        at = (START + timedelta(days=day)).isoformat()
        number = len(self.lines)
        self.lines.append(
            {"type": kind, "userId": user, "timestamp": at, "messageId": f"m{number}", **fields}
        )

    def decided(self, day: float, user: str, kind: str, *, held: bool = False) -> None:
        event = "pqlsdk_moment_held_out" if held else "pqlsdk_moment_shown"
        self.add(day, user, event=event, properties={"kind": kind, "moment_id": f"{kind}-1"})

    def outcome(self, day: float, user: str, kind: str, outcome: str) -> None:
        properties = {"kind": kind, "moment_id": f"{kind}-1", "outcome": outcome}
        self.add(day, user, event="pqlsdk_moment_outcome", properties=properties)

    def report(self, tmp_path: Path, text: str = RULES, now: datetime | None = None) -> Any:
        path = tmp_path / "h.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in self.lines))
        at = None if now is None else int(now.timestamp()) * 1_000_000
        with ordered(str(path), History()) as pairs:
            return measure(rules.loads(text), pairs, now=at)


def test_conversion_counts_only_within_the_window_after_the_first_exposure(
    tmp_path: Path,
) -> None:
    """Day 3 counts; day 9 is past a 7-day window; a second showing moves nothing."""
    h = Written()
    h.decided(0, "a", "nudge")
    h.decided(0, "b", "nudge")
    h.decided(5, "b", "nudge")  # a later showing: the window still runs from day 0
    h.add(3, "a", event="subscription_started")
    h.add(9, "b", event="subscription_started")
    nudge = h.report(tmp_path).moments["nudge"]
    assert (nudge.shown, nudge.converted_shown) == (2, 1)


def test_a_user_converted_before_the_decision_is_not_credited(tmp_path: Path) -> None:
    """Converted first, then shown: in the arm, not a conversion."""
    h = Written()
    h.add(0, "a", event="subscription_started")
    h.decided(1, "a", "nudge")
    h.add(2, "a", event="subscription_started")
    nudge = h.report(tmp_path).moments["nudge"]
    assert (nudge.shown, nudge.converted_shown) == (1, 0)


def test_the_first_decision_decides_the_arm(tmp_path: Path) -> None:
    """Held out first, shown later (the holdout share changed): counted held out, once."""
    h = Written()
    h.decided(0, "a", "nudge", held=True)
    h.decided(1, "a", "nudge")
    nudge = h.report(tmp_path).moments["nudge"]
    assert (nudge.shown, nudge.held_out) == (0, 1)


def test_a_user_of_two_kinds_counts_in_both(tmp_path: Path) -> None:
    """Held out of one kind, shown another: one conversion counts for each."""
    h = Written()
    h.decided(0, "a", "nudge", held=True)
    h.decided(0, "a", "tip")
    h.add(1, "a", event="subscription_started")
    report = h.report(tmp_path).moments
    assert (report["nudge"].converted_held_out, report["tip"].converted_shown) == (1, 1)


def test_outcomes_count_users_of_the_shown_arm(tmp_path: Path) -> None:
    """Two clicks by one user count once; an outcome without a decision, or for a
    held-out user, counts nothing."""
    h = Written()
    h.decided(0, "a", "nudge")
    h.outcome(0, "a", "nudge", "clicked")
    h.outcome(1, "a", "nudge", "clicked")
    h.outcome(1, "a", "nudge", "dismissed")
    h.outcome(0, "b", "nudge", "clicked")  # never decided
    h.decided(0, "c", "nudge", held=True)
    h.outcome(0, "c", "nudge", "clicked")
    h.add(0, "d", event="pqlsdk_moment_shown", properties={"moment_id": "x"})  # no kind
    nudge = h.report(tmp_path).moments["nudge"]
    assert (nudge.shown, nudge.held_out, nudge.clicked, nudge.dismissed) == (1, 1, 1, 1)


def test_an_accounts_conversion_reaches_its_members(tmp_path: Path) -> None:
    """A group message that makes the account paid converts its exposed members."""
    h = Written()
    h.add(0, "a", kind="group", groupId="acme", traits={})
    h.add(0, "b", kind="group", groupId="acme", traits={})
    h.decided(1, "a", "nudge")
    h.add(2, "b", kind="group", groupId="acme", traits={"plan": "paid"})
    h.add(2, "c", kind="group", groupId="other", traits={"plan": "paid"})
    nudge = h.report(tmp_path).moments["nudge"]
    assert nudge.converted_shown == 1


def test_messages_after_now_are_not_read(tmp_path: Path) -> None:
    """With --now before the conversion, it has not happened yet; the report is as of now."""
    h = Written()
    h.decided(0, "a", "nudge")
    h.add(3, "a", event="subscription_started")
    now = START + timedelta(days=2)
    report = h.report(tmp_path, now=now)
    assert (report.moments["nudge"].converted_shown, report.at) == (0, int(now.timestamp()) * 10**6)


def test_kinds_not_in_the_rules_are_reported_after_theirs(tmp_path: Path) -> None:
    """A kind renamed since keeps its numbers, after the rules' own kinds."""
    h = Written()
    h.decided(0, "a", "old_nudge")
    assert list(h.report(tmp_path).moments) == ["nudge", "tip", "old_nudge"]


def test_a_repeated_message_is_read_once(tmp_path: Path) -> None:
    """A retried delivery repeats a messageId: the decision is not placed twice."""
    h = Written()
    h.decided(0, "a", "nudge")
    h.lines.append(dict(h.lines[0]))
    h.add(1, "a", event="subscription_started")
    assert h.report(tmp_path).moments["nudge"].converted_shown == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model.m]\ntiers = { low = 0 }\n", "no \\[moment.\\*\\] tables"),
        ("[model.m]\ntiers = { low = 0 }\n[moment.a]\n", "no \\[moments\\] conversion"),
    ],
)
def test_rules_without_moments_or_conversion_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    """Nothing to measure, or no outcome to measure it on: a ConfigError saying which."""
    with pytest.raises(ConfigError, match=message):
        Written().report(tmp_path, text)


def test_an_empty_arm_has_no_rate_and_no_lift(tmp_path: Path) -> None:
    """No held-out user yet: rates and lift are null, and the verdict asks for users."""
    h = Written()
    h.decided(0, "a", "tip")
    tip = h.report(tmp_path).moments["tip"]
    assert (tip.rate_held_out, tip.lift, tip.relative_lift) == (None, None, None)
    assert tip.verdict.startswith("not enough users yet: about ")
    assert tip.eligible == 1


def test_the_power_estimate_matches_the_textbook() -> None:
    """10 % against 15 %, 5 % two-sided, 80 % power: 686 per arm (Fleiss, no correction)."""
    assert needed_per_arm(0.10) == 686
    assert needed_per_arm(0.98) == needed_per_arm(0.93)  # near 100 % it looks downwards


@pytest.mark.parametrize(
    ("counts", "said"),
    [
        ((300, 1000, 100, 1000), "shown converts better"),
        ((100, 1000, 300, 1000), "held out converts better"),
        ((100, 5000, 100, 5000), "no difference detected"),
        (
            (10, 100, 9, 100),
            "not enough users yet: about 570 more per arm to detect a 5-point lift",
        ),
    ],
)
def test_verdicts(counts: tuple[int, int, int, int], said: str) -> None:
    """Each verdict, from the interval and the power estimate."""
    assert verdict(*counts)[0] == said


def test_newcombe_matches_the_published_example() -> None:
    """Newcombe (1998), table II, example (a): 56/70 against 48/80 gives 0.0524 to 0.3339."""
    found = newcombe(56, 70, 48, 80)
    assert found is not None
    assert [round(x, 4) for x in found] == [0.2, 0.0524, 0.3339]
    assert math.isclose(found[0], 0.2)
