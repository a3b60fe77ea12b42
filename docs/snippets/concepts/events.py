from datetime import datetime, timedelta

import pqlsdk

clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
with pqlsdk.Client(store="memory://", clock=clock) as client:
    client.identify("u1", {"plan": "trial", "role": "admin"})
    client.group("u1", "acme", {"employees": 120, "industry": "fintech"})
    client.track("u1", "report_created", {"template": "weekly"})

    # Late-arriving old messages never overwrite newer values.
    yesterday = clock.now() - timedelta(days=1)
    client.identify("u1", {"plan": "free"}, timestamp=yesterday)

    user = client.user("u1")
    assert user is not None
    assert user.account_id == "acme"
    assert user.traits["plan"] == "trial"
    assert client.account("acme").members == ["u1"]

    # A bad event never raises into your app: it is dropped, logged and counted.
    client.track("u1", "report_created", timestamp=datetime(2026, 3, 15))  # no time zone
    assert client.stats().dropped == {"naive_timestamp": 1}
