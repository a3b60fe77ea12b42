"""The ten-line integration: record events and read back what pqlsdk knows."""

import pqlsdk

with pqlsdk.Client(store="memory://") as client:
    client.identify("u1", {"plan": "trial"})
    client.group("u1", "acme", {"employees": 120, "industry": "fintech"})
    client.track("u1", "limit_hit", {"limit": "seats"})
    user = client.user("u1")
    print(user.account_id if user else None, client.stats())
