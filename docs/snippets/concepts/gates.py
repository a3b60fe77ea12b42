import pqlsdk

clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
with pqlsdk.Client(store="memory://", clock=clock, rules="playbook.toml") as client:
    client.identify("u1", {"plan": "trial", "trial_ends_at": "2026-03-17T09:00:00Z"})

    gate = client.gate("u1", "sso")  # the trial plan lacks "sso"
    assert not gate.allowed and gate.plan == "trial"
    assert gate.moment is not None
    assert gate.moment.title == "Single sign-on is on the Business plan"  # [entitlements] names
    client.record("u1", gate.moment.id, "dismissed")  # cools down for 24 hours
    assert client.gate("u1", "sso").moment is None

    assert client.gate("u1", "reports").allowed

    moment = client.decide("u1")  # two days (rounded up) left in the trial
    assert moment is not None and moment.kind == "trial_ending"
    assert moment.title == "Your trial ends in 2 days"
    assert client.decide("u1") is None  # capped: one a day
    client.record("u1", moment.id, "clicked")
