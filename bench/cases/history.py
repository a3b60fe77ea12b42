"""A generated history of Segment messages, as JSON Lines, for the batch-scoring case.

``ensure(n, directory)`` writes ``n`` messages once (deterministically, from a
seeded ``random.Random``) and reuses the file afterwards. The cohort is meant to
look like a product's last 60 days before ``NOW``: ``n // 100`` users (at least
10) in ``users // 5`` accounts; each user is identified and grouped once when
they sign up, early on, and then tracks the playbook's vocabulary until they go
quiet (most are recent, some lapsing, some churned). A few users have no account
and a few never track anything. Some accounts upgrade to ``plan = "paid"`` part
way through, so that members who join later send newer account traits (the
latest by timestamp wins). Messages are written in time order, with strictly
increasing millisecond timestamps.

Run ``python bench/cases/history.py N [DIRECTORY]`` to write one and print its path.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

VERSION = 1
NOW = "2026-03-15T12:00:00Z"
DAYS = 60
SEED = 20260315

_NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW_MS = int((_NOW - _EPOCH).total_seconds()) * 1000
"""NOW in milliseconds since the epoch."""
_DAY_MS = 86_400_000
_START_MS = NOW_MS - DAYS * _DAY_MS

INDUSTRIES = ["fintech", "healthcare", "retail", "media", "education", "logistics"]
EMPLOYEES = [3, 8, 15, 30, 60, 90, 120, 250, 600, 2_000]
FEATURES = [f"f{i}" for i in range(8)]
INTENT = ["limit_hit", "premium_feature_attempted", "demo_requested", "checkout_started"]


def default_directory() -> Path:
    """Where generated histories live unless told otherwise (``PQLSDK_BENCH_DATA``)."""
    return Path(os.environ.get("PQLSDK_BENCH_DATA") or Path(tempfile.gettempdir()) / "pqlsdk-bench")


def path_for(n: int, directory: Path) -> Path:
    return Path(directory) / f"history-v{VERSION}-{n}.jsonl"


def ensure(n: int, directory: Path | str | None = None) -> Path:
    """Return the path of the ``n``-message history in ``directory``, writing it once."""
    directory = default_directory() if directory is None else Path(directory)
    path = path_for(n, directory)
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with partial.open("w", encoding="utf-8") as out:
        out.writelines(lines(n))
    partial.replace(path)  # atomic: a reader never sees half a file
    return path


def _iso(ms: int) -> str:
    at = _EPOCH + timedelta(milliseconds=ms)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


class _Account:
    def __init__(self, rng: random.Random, index: int) -> None:
        self.id = f"acct-{index:05d}"
        self.employees = rng.choice(EMPLOYEES)
        self.industry = rng.choice(INDUSTRIES)
        self.plan = rng.choices(["free", "trial", "paid"], [70, 18, 12])[0]
        # A quarter of the unpaid accounts upgrade part way through (and grow).
        self.upgrade_ms = None
        if self.plan != "paid" and rng.random() < 0.25:
            self.upgrade_ms = _START_MS + rng.randrange(5 * _DAY_MS, 40 * _DAY_MS)

    def traits(self, at: int) -> dict[str, object]:
        if self.upgrade_ms is not None and at >= self.upgrade_ms:
            return {"employees": self.employees * 2, "industry": self.industry, "plan": "paid"}
        return {"employees": self.employees, "industry": self.industry, "plan": self.plan}


class _User:
    def __init__(self, rng: random.Random, index: int, accounts: list[_Account]) -> None:
        self.id = f"user-{index:06d}"
        self.account = rng.choice(accounts) if rng.random() >= 0.04 else None
        self.plan = rng.choices(["free", "trial", "business"], [60, 30, 10])[0]
        self.join = _START_MS + rng.randrange(0, 30 * _DAY_MS)
        self.tracks = rng.random() >= 0.06  # some members never track anything
        # When they went quiet: most are recent, some lapsing, some churned.
        kind = rng.random()
        if kind < 0.55:
            quiet = rng.uniform(0, 6.9)
        elif kind < 0.80:
            quiet = rng.uniform(7.1, 29.9)
        else:
            quiet = rng.uniform(30.1, 55)
        self.end = max(NOW_MS - int(quiet * _DAY_MS), self.join + _DAY_MS)
        self.end = min(self.end, NOW_MS - 60_000)
        self.activity = min(rng.paretovariate(1.3), 40.0) if self.tracks else 0.0
        # What this user does, as weights over the vocabulary.
        intent = rng.random()
        events = {
            "session_started": 30.0,
            "page_viewed": 20.0,
            "feature_used": 20.0,
            "core_workflow_completed": 8.0 if rng.random() < 0.8 else 0.0,
            "import_started": 3.0,
            "import_completed": 2.5 if rng.random() < 0.8 else 0.5,
        }
        for name in INTENT:
            events[name] = rng.uniform(0.5, 3.0) if rng.random() < intent * 0.8 else 0.0
        self.events = list(events)
        self.weights = list(events.values())
        self.pricing = rng.choice([0.03, 0.1, 0.3])
        self.features = rng.sample(FEATURES, rng.randint(1, len(FEATURES)))


def lines(n: int, seed: int = SEED) -> list[str]:
    """The ``n`` messages, as JSON Lines in time order."""
    rng = random.Random(seed)
    n_users = max(10, n // 100)
    accounts = [_Account(rng, i) for i in range(max(1, n_users // 5))]
    users = [_User(rng, i, accounts) for i in range(n_users)]
    # (time ms, user, kind): kind "i" identify, "g" group, else a track's event.
    messages: list[tuple[int, int, str]] = []
    for u, user in enumerate(users):
        messages.append((user.join, u, "i"))
        if user.account is not None:
            messages.append((user.join + rng.randrange(1_000, 600_000), u, "g"))
    tracks = max(0, n - len(messages))
    active = [u for u, user in enumerate(users) if user.tracks]
    chosen = rng.choices(active, [users[u].activity for u in active], k=tracks)
    for u in chosen:
        user = users[u]
        at = rng.randrange(user.join + 900_000, user.end)
        messages.append((at, u, rng.choices(user.events, user.weights)[0]))
    messages.sort()
    out = []
    previous = -1
    for index, (at, u, kind) in enumerate(messages[:n]):
        at = max(at, previous + 1)  # noqa: PLW2901 - strictly increasing, so no ties
        previous = at
        user = users[u]
        message: dict[str, object]
        if kind == "i":
            message = {"type": "identify", "userId": user.id, "traits": {"plan": user.plan}}
        elif kind == "g":
            account = user.account
            assert account is not None
            message = {
                "type": "group",
                "userId": user.id,
                "groupId": account.id,
                "traits": account.traits(at),
            }
        else:
            properties: dict[str, object] = {}
            if kind == "page_viewed":
                properties["path"] = "/pricing" if rng.random() < user.pricing else "/docs"
            elif kind == "feature_used":
                properties["feature"] = rng.choice(user.features)
            message = {"type": "track", "userId": user.id, "event": kind, "properties": properties}
        message["timestamp"] = _iso(at)
        message["messageId"] = f"m-{seed:x}-{index:09d}"
        out.append(json.dumps(message, separators=(",", ":")) + "\n")
    assert previous < NOW_MS, "the history must end before NOW"
    return out


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(ensure(size, sys.argv[2] if len(sys.argv) > 2 else None))
