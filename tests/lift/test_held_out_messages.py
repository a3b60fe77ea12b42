"""Held-out decisions reach the collector as messages, at a showing's cadence.

Lift needs both arms: the collector (and any warehouse) must see who was held
out of which kind, and when, as it sees who was shown.
"""

from __future__ import annotations

from datetime import timedelta

import pqlsdk
from pqlsdk import rules
from pqlsdk._moments import held_out
from pqlsdk.testing import RecordingTransport

from .cohort import RULES


def _pick(kind_name: str, *, held: bool) -> str:
    kinds = {kind.name: kind for kind in rules.loads(RULES).moments.kinds}  # type: ignore[union-attr]
    return next(f"user-{i}" for i in range(200) if held_out(f"user-{i}", kinds[kind_name]) is held)


def _decisions(transport: RecordingTransport) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (m["event"], m["timestamp"], m["properties"])
        for m in transport.messages
        if m.get("event", "").startswith("pqlsdk_moment_")
    ]


def test_a_held_out_decision_is_a_message_at_a_showings_cadence() -> None:
    """Three days of decide(): one held-out message a day, as a capped showing would be;
    a user who is shown gets showings only: the arms never mix."""
    clock = pqlsdk.FixedClock("2026-03-01T09:00:00Z")
    transport = RecordingTransport()
    user, other = _pick("nudge", held=True), _pick("nudge", held=False)
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(RULES), transport=transport
    ) as client:
        for someone in (user, other):  # the cohort's nudge is for visitors
            client.track(someone, "visited")
        for _ in range(3):
            for _ in range(4):  # four visits a day; the cap lets one decision through
                assert client.decide(user) is None
                clock.advance(timedelta(hours=1))
            clock.advance(timedelta(hours=20))
        assert client.decide(other) is not None
        client.flush(timeout=5)
    *found, last = _decisions(transport)
    assert (last[0], last[2]["kind"]) == ("pqlsdk_moment_shown", "nudge")
    assert [(event, at[:10]) for event, at, _ in found] == [
        ("pqlsdk_moment_held_out", "2026-03-01"),
        ("pqlsdk_moment_held_out", "2026-03-02"),
        ("pqlsdk_moment_held_out", "2026-03-03"),
    ]
    properties = found[0][2]
    assert (properties["kind"], properties["held_out"]) == ("nudge", True)
    assert str(properties["moment_id"]).startswith("nudge-")


def test_a_held_out_gate_moment_names_the_feature() -> None:
    """A denied gate whose prompt is held out sends the held-out decision with the feature."""
    clock = pqlsdk.FixedClock("2026-03-01T09:00:00Z")
    transport = RecordingTransport()
    user = _pick("wall", held=True)
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(RULES), transport=transport
    ) as client:
        gate = client.gate(user, "sso")
        client.flush(timeout=5)
    assert (gate.allowed, gate.moment) == (False, None)
    [(event, _, properties)] = _decisions(transport)
    assert event == "pqlsdk_moment_held_out"
    assert (properties["kind"], properties["feature"]) == ("wall", "sso")
