"""Case: per-call ``track()``, ``gate()`` and ``decide()`` cost on each store.

Run: ``python bench/cases/stores.py --store {memory,sqlite,redis} [--quick]``.

One client with the playbook rules and users with a fortnight of history, on
the memory store, a SQLite file (buffered, the default) or Redis (the URL from
``PQLSDK_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/15``, under a
fresh key prefix deleted afterwards). Emits ``stores`` figures for subject
``pqlsdk``, variant ``"<store> <call>"``:

- ``track()``: paced 100 µs apart (10k calls/s), as a request handler's events
  are; the figure is the caller's cost (the intake thread applies off the
  request path), which stays small only while the intake keeps up;
- ``intake`` (events/s, unit ``events/s``): ``calls`` back-to-back ``track()``
  over the time until every one is applied to the store (state, aggregates,
  tier checks): the rate the intake folds events in, which the paced figure
  needs to exceed 10k/s;
- ``gate()``: ``reports``, which the trial plan has (allowed, no write);
- ``decide()``: after each user's first showing moments are capped, the
  common path (nothing due, no write; the client memoises it for a second).

On Redis, ``gate()`` is also measured with the read cache off (variant
``redis gate(), cache off``): each call then reads the user from the server.
Without redis-py or a server the Redis figures are left out, with a note.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, per_call, quick
from _redis import clean, throwaway_url

import pqlsdk

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
PACE = 100e-6
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("feature_used", {"feature": "reports"}),
    ("page_viewed", {"path": "/pricing"}),
    ("core_workflow_completed", {}),
    ("page_viewed", {"path": "/docs"}),
    ("limit_hit", {"limit": "seats"}),
]


def populate(client: pqlsdk.Client, users: list[str], history: int) -> None:
    """Identify, group and give each user ``history`` tracked events over two weeks."""
    now = client.clock.now()
    for u, user in enumerate(users):
        client.identify(user, {"plan": "trial"})
        client.group(user, f"acct-{u % 20}", {"employees": 40})
        for k in range(history):
            event, properties = EVENTS[(u + k) % len(EVENTS)]
            client.track(user, event, properties, timestamp=now - timedelta(hours=6 * k))
    client.flush()


def measure(store: str, url: str, users: list[str], calls: int, warmup: int) -> None:
    """Emit the three calls' figures for one store URL."""
    with pqlsdk.Client(store=url, rules=PLAYBOOK, retention=None) as client:
        populate(client, users, 6 if quick() else 20)
        n = len(users)
        track: Callable[[int], Any] = lambda i: client.track(  # noqa: E731
            users[i % n], "page_viewed", {"path": "/home"}
        )
        found = per_call(track, calls, warmup=warmup, pace=PACE)
        emit("stores", "pqlsdk", unit="us/call", variant=f"{store} track()", **found)
        client.flush()
        started = time.perf_counter()
        for i in range(calls):
            track(i)
        client.stats()  # returns once every accepted message is applied
        elapsed = time.perf_counter() - started
        emit("stores", "pqlsdk", calls / elapsed, unit="events/s", variant=f"{store} intake")
        found = per_call(lambda i: client.gate(users[i % n], "reports"), calls, warmup=warmup)
        emit("stores", "pqlsdk", unit="us/call", variant=f"{store} gate()", **found)
        found = per_call(lambda i: client.decide(users[i % n]), calls, warmup=warmup)
        emit("stores", "pqlsdk", unit="us/call", variant=f"{store} decide()", **found)
    if store == "redis":
        with pqlsdk.Client(store=f"{url}&cache_ttl=0", rules=PLAYBOOK, retention=None) as client:
            found = per_call(lambda i: client.gate(users[i % n], "reports"), calls, warmup=warmup)
            emit("stores", "pqlsdk", unit="us/call", variant="redis gate(), cache off", **found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("memory", "sqlite", "redis"), default="memory")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    users = [f"user-{u}" for u in range(50 if quick() else 500)]
    calls, warmup = (300, 50) if quick() else (20_000, 1_000)
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "memory":
            measure("memory", "memory://", users, calls, warmup)
        elif args.store == "sqlite":
            measure("sqlite", f"sqlite:///{Path(tmp) / 'stores.db'}", users, calls, warmup)
        else:
            url = throwaway_url("stores")
            if url is not None:
                try:
                    measure("redis", url, users, calls, warmup)
                finally:
                    clean(url)


if __name__ == "__main__":
    main()
