from datetime import timedelta

import pqlsdk

clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
now = clock.now()
with pqlsdk.Client(store="memory://", clock=clock, rules="edges.toml") as client:
    # Windows include exactly their length: 7 days ago counts for within=7d...
    client.track("u1", "report_created", timestamp=now - timedelta(days=7))
    # ...and a second more does not.
    client.track("u2", "report_created", timestamp=now - timedelta(days=7, seconds=1))
    # Active days are UTC days: 23:30 and 00:30 UTC are two days, in any time zone.
    client.track("u3", "seen", timestamp=now.replace(day=13, hour=23, minute=30))
    client.track("u3", "seen", timestamp=now.replace(day=14, hour=0, minute=30))

    def observed(user_id):
        return {r.signal: r.observed for r in client.score(user_id).reasons}

    assert observed("u1")["week"] == 1
    assert observed("u2")["week"] == 0
    assert observed("u3")["days"] == 2

    # Missing traits are null: comparisons with null are false, arithmetic
    # gives null, and a signal whose value is null adds nothing.
    score = client.score("u1")  # no account, no "seats" trait
    reasons = {r.signal: r for r in score.reasons}
    assert not reasons["big"].fired  # null >= 100 is false
    assert reasons["seats"].earned == 0  # null / 10 is null: adds nothing
    assert reasons["unreferred"].fired  # == null is how to test for a missing trait
    assert not reasons["not_admin"].fired  # null != "admin" is false too
    assert reasons["ratio"].observed is None  # division by zero is null
    client.identify("u1", {"seats": 5})
    assert {r.signal: r.earned for r in client.score("u1").reasons}["seats"] == 5
