"""A deterministic mixed workload for the multi-process Redis tests, and its writer process.

Run as ``python -m tests.redis_store.workload URL START INDEX WRITERS`` from the
repository root: the writer waits until Unix time START, then tracks its share
(every WRITERS-th message from INDEX on) through a strict client on the store.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import timedelta
from typing import Any

import pqlsdk

from ..conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
NOW = "2026-03-15T12:00:00Z"
USERS = [f"u{i}" for i in range(12)]
ACCOUNTS = {user: f"acct{i % 3}" for i, user in enumerate(USERS)}
EVENTS = [
    ("core_workflow_completed", {}),
    ("limit_hit", {}),
    ("page_viewed", {"path": "/pricing"}),
    ("page_viewed", {"path": "/docs"}),
    ("feature_used", {"feature": "reports"}),
    ("feature_used", {"feature": "exports"}),
    ("feature_used", {"feature": "dashboards"}),
    ("demo_requested", {}),
    ("checkout_started", {}),
    ("import_started", {}),
    ("import_completed", {}),
    ("premium_feature_attempted", {"feature": "sso"}),
]


def setup(client: pqlsdk.Client) -> None:
    """Put every user in their account (before the writers start: membership stays put)."""
    for user, account in ACCOUNTS.items():
        client.group(user, account, {"employees": 150, "industry": "fintech"})


def messages(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """``count`` tracks and identifies for overlapping users over the 40 days before NOW."""
    rng = random.Random(seed)
    start = pqlsdk.FixedClock(NOW).now() - timedelta(days=40)
    out: list[dict[str, Any]] = []
    for i in range(count):
        user = rng.choice(USERS)
        when = (start + timedelta(seconds=i * 86)).isoformat()
        if i % 50 == 0:
            out.append(
                {
                    "type": "identify",
                    "userId": user,
                    "traits": {"plan": rng.choice(["trial", "free"]), "n": i},
                    "timestamp": when,
                    "messageId": f"m{i}",
                }
            )
            continue
        event, properties = rng.choice(EVENTS)
        out.append(
            {
                "type": "track",
                "userId": user,
                "event": event,
                "properties": properties,
                "timestamp": when,
                "messageId": f"m{i}",
            }
        )
    return out


def write(url: str, start: float, index: int, writers: int, count: int) -> None:
    """Track this writer's share of the workload, one call per message, as a host would.

    The client loads no rules: the store folds every aggregate some process
    registered (``setup`` ran with the rules), and the per-message scoring for
    tier crossings would only slow the run down on a 2-core machine.
    """
    share = messages(count)[index::writers]
    with pqlsdk.Client(
        store=url, clock=pqlsdk.FixedClock(NOW), strict=True, retention=None
    ) as client:
        while time.time() < start:
            time.sleep(0.001)
        for item in share:
            when = pqlsdk.FixedClock(item["timestamp"]).now()
            if item["type"] == "identify":
                client.identify(
                    item["userId"], item["traits"], timestamp=when, message_id=item["messageId"]
                )
            else:
                client.track(
                    item["userId"],
                    item["event"],
                    item["properties"],
                    timestamp=when,
                    message_id=item["messageId"],
                )


if __name__ == "__main__":
    write(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
