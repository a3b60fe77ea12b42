"""Benchmark: ``gate()`` and ``decide()`` cost per call, for a user with a long history.

Run: ``.venv/bin/python bench/moments.py``. Paths measured, memory and SQLite:

- gate allowed: the plan includes the feature (no write);
- decide, capped: a moment is due but already shown today (no write);
- decide, nothing due: a cold user (no write);
- decide, shows: a moment is shown every call (each call a different hot user);
- gate denied: tracks the attempt and shows the blocked-feature moment (each
  call a different user, so the cap of 3 a day never stops it).

Prints mean, p99.9 and the longest call in microseconds, and how many calls
returned a moment. Not a test.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from _timing import describe, time_calls

import pqlsdk
from pqlsdk.messages import Track

RULES = Path(__file__).resolve().parent.parent / "examples" / "rules" / "playbook.toml"


def per_call(fn: Callable[[int], object], calls: int) -> str:
    """Timings of ``calls`` calls, and how many answered with a moment."""
    timings, answers = time_calls(fn, calls)
    shown = sum(bool(getattr(answer, "moment", answer)) for answer in answers)
    return f"{describe(timings)}  shown {shown}/{calls}"


def history(
    user_id: str, count: int, clock: pqlsdk.FixedClock, *, hot: bool = False
) -> list[Track]:
    """``count`` events over the past year; ``hot`` users did the three hot things today."""
    rng = random.Random(7)
    events = ["core_workflow_completed", "limit_hit", "checkout_started", "page_viewed"]
    now = clock.now()
    if hot:
        return [Track(user_id=user_id, event=e, timestamp=now) for e in events[:3]]
    return [
        Track(
            user_id=user_id,
            event=rng.choice(events),
            properties={"path": "/docs"},
            timestamp=now - timedelta(seconds=rng.randrange(365 * 86_400)),
        )
        for _ in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3_000)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    print(f"gate()/decide() per call; the user has {args.events:,} past events")
    for kind in ("memory", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = "memory://" if kind == "memory" else f"sqlite:///{Path(tmp) / 'm.db'}"
            clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
            with pqlsdk.Client(store=url, clock=clock, rules=RULES, retention=None) as client:
                client.identify("hot", {"plan": "trial", "trial_ends_at": "2027-01-01T00:00:00Z"})
                client.ingest(history("hot", args.events, clock))
                client.track("hot", "session_started")
                client.identify("cold", {"plan": "trial"})
                client.decide("hot")  # the widget is now capped for 24 hours
                for i in range(args.calls):
                    client.ingest(history(f"hot-{i}", 3, clock, hot=True))
                rows: dict[str, Callable[[int], object]] = {
                    "gate allowed": lambda _: client.gate("hot", "reports"),
                    "decide, capped": lambda _: client.decide("hot"),
                    "decide, nothing due": lambda _: client.decide("cold"),
                    "decide, shows": lambda i: client.decide(f"hot-{i}"),
                    "gate denied, shows": lambda i: client.gate(f"hot-{i}", "sso"),
                }
                for name, fn in rows.items():
                    print(f"{kind:<7} {name:<20} {per_call(fn, args.calls)}")


if __name__ == "__main__":
    main()
