import pqlsdk

changes = []
clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
with pqlsdk.Client(
    store="memory://",
    clock=clock,
    rules="playbook.toml",
    on_tier_change=changes.append,
) as client:
    client.identify("u1", {"plan": "trial"})
    client.group("u1", "acme", {"employees": 120, "industry": "fintech"})
    client.track("u1", "core_workflow_completed")  # passes the activation gate
    client.track("u1", "limit_hit", {"limit": "seats"})

    score = client.score("u1")
    print(score.explain())
    assert (score.score, score.tier, score.route) == (50, "warm", "nurture")
    assert [r.signal for r in score.reasons if r.fired] == [
        "limit_hit",
        "company_size",
        "vertical",
    ]
    assert [(c.previous, c.tier) for c in changes] == [("cold", "warm")]
