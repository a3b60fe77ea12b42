"""The main job's simulated cohort: the patterns sales must tell apart."""

from __future__ import annotations

from pathlib import Path

import pqlsdk
from pqlsdk.collector._cohort import simulate
from pqlsdk.testing import RecordingTransport

RULES = Path(__file__).resolve().parents[2] / "examples" / "rules" / "playbook.toml"


def test_the_cohort_separates_a_real_pql_from_a_maybe_and_a_single_logger() -> None:
    """Played through a real client, the real PQL outranks the maybe; the single logger is cold."""
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    transport = RecordingTransport()
    days: list[int] = []
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=RULES, transport=transport, strict=True
    ) as client:
        cohort = simulate(client, clock, on_day=days.append)
        real, maybe, single = (
            client.score(u) for u in ("ada@northwind", "max@maybe-labs", "sol@onceco")
        )
        quiet, customer = client.score("dan@quiet-co"), client.score("eve@acme-paid")
        assert client.score_account("northwind").pqa
        assert clock.now() == pqlsdk.FixedClock("2026-03-15T12:00:00Z").now()
    assert real.score > maybe.score > single.score
    assert (real.tier, real.route) == ("burning", "account_executive")
    assert single.tier == "cold"
    assert (quiet.tier, quiet.route) == ("burning", "do_not_contact")
    assert customer.route == "customer_success"
    assert (cohort.users, cohort.gates_denied > 0, cohort.moments_shown > 0) == (15, True, True)
    assert days == list(range(14))
    crossings = [m for m in transport.messages if m.get("event") == "pqlsdk_tier_changed"]
    assert max(m["timestamp"] for m in crossings) <= "2026-03-15T12:00:00Z"  # nothing in the future
    events = {m.get("event") for m in transport.messages}
    assert {"pqlsdk_tier_changed", "pqlsdk_moment_shown", "premium_feature_attempted"} <= events
