"""Case: ``score()`` cost for users with 10, 1,000 and 100,000 past events.

Run: ``python bench/cases/score.py [--store memory|sqlite] [--quick]``. Scoring
reads aggregates the store keeps incrementally, never the history, so the cost
for the 100,000-event user should be that of the 10-event user (target: at most
1.2x). Events are spread over the last year, as a long-lived user's would be.
Emits ``score`` figures per history size (variant ``"<store>, <n> events"``).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, per_call, quick

import pqlsdk
from pqlsdk.messages import Track

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
EVENTS = ["core_workflow_completed", "limit_hit", "page_viewed", "feature_used", "session_started"]


def history(user_id: str, count: int, clock: pqlsdk.FixedClock) -> list[Track]:
    """``count`` events spread over the last year."""
    rng = random.Random(count)
    now = clock.now()
    return [
        Track(
            user_id=user_id,
            event=rng.choice(EVENTS),
            properties={
                "path": rng.choice(["/pricing", "/docs"]),
                "feature": f"f{rng.randrange(8)}",
            },
            timestamp=now - timedelta(seconds=rng.randrange(365 * 86_400)),
        )
        for _ in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (10, 100, 1_000) if quick() else (10, 1_000, 100_000)
    calls = 300 if quick() else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        url = "memory://" if args.store == "memory" else f"sqlite:///{Path(tmp) / 'score.db'}"
        clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
        with pqlsdk.Client(store=url, clock=clock, rules=PLAYBOOK, retention=None) as client:
            client.group("team-1", "acme", {"employees": 150, "industry": "fintech"})
            for size in sizes:
                user_id = f"user-{size}"
                client.group(user_id, "acme")
                client.ingest(history(user_id, size, clock))

                def score(_: int, u: str = user_id) -> object:
                    return client.score(u)

                figures = per_call(score, calls, warmup=100)
                emit(
                    "score",
                    "pqlsdk",
                    unit="us/call",
                    variant=f"{args.store}, {size:,} events",
                    **figures,
                )


if __name__ == "__main__":
    main()
