"""Benchmark: ``score()`` cost for users with 10, 1,000 and 100,000 past events.

Run: ``.venv/bin/python bench/score.py``. Scoring reads incrementally kept
aggregates, never the history, so the ratio largest/smallest should be near 1.
Also prints ``track()`` cost with the playbook rules loaded (tier crossings are
checked on every track). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from datetime import timedelta
from pathlib import Path

from _timing import describe, mean, time_calls

import pqlsdk
from pqlsdk.messages import Track

RULES = Path(__file__).resolve().parent.parent / "examples" / "rules" / "playbook.toml"
EVENTS = ["core_workflow_completed", "limit_hit", "page_viewed", "feature_used", "session_started"]


def history(user_id: str, count: int, clock: pqlsdk.FixedClock) -> list[Track]:
    """``count`` events spread over the last year, as a long-lived user would have."""
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
    parser.add_argument("--calls", type=int, default=5_000)
    args = parser.parse_args()
    for url_kind in ("memory", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = "memory://" if url_kind == "memory" else f"sqlite:///{Path(tmp) / 'b.db'}"
            clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
            with pqlsdk.Client(store=url, clock=clock, rules=RULES, retention=None) as client:
                client.group("team-1", "acme", {"employees": 150, "industry": "fintech"})
                means = {}
                for size in (10, 1_000, 100_000):
                    user_id = f"user-{size}"
                    client.group(user_id, "acme")
                    client.ingest(history(user_id, size, clock))
                    client.score(user_id)  # warm up
                    timings, _ = time_calls(lambda _, u=user_id: client.score(u), args.calls)
                    means[size] = mean(timings)
                    print(f"{url_kind:<7} score() {size:>7} events: {describe(timings)}")
                print(f"{url_kind:<7} ratio 100,000 / 10 events: {means[100_000] / means[10]:.2f}")
                timings, _ = time_calls(
                    lambda _: client.track("user-10", "feature_used", {"feature": "f1"}), args.calls
                )
                print(f"{url_kind:<7} track() with playbook rules: {describe(timings)}")


if __name__ == "__main__":
    main()
