"""Case: resident memory per 100,000 tracked users, with the playbook rules.

Run: ``python bench/cases/memory.py --store {memory,sqlite,redis} [--quick]``.
Tracks users who identify, join one of a thousand accounts and do five things
each (with ``retention=None``, so the memory store also keeps its message log),
then reports how much the process's resident memory grew, scaled to 100,000
users, in MiB. The SQLite store keeps state in its file and only recent
changes in memory, so its figure is about what a web worker carries.

For Redis the figure is the server's: its ``used_memory`` growth (INFO memory),
on the server at ``PQLSDK_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``),
under a fresh key prefix deleted afterwards (the database is shared with the
tests, so it is never flushed), for 10,000 users scaled to 100,000 (each
``track()`` is a round trip). Without redis-py or a server it is left out, with a note.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, quick
from _redis import REDIS_URL, clean, throwaway_url

if TYPE_CHECKING:
    import pqlsdk


def rss_mib() -> float:
    """Current resident memory (not the peak), MiB, from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 2**20


def redis_used_mib() -> float:
    """The Redis server's ``used_memory``, MiB."""
    import redis  # noqa: PLC0415 - the optional extra, only for this store

    server = redis.Redis.from_url(REDIS_URL)
    try:
        return int(server.info("memory")["used_memory"]) / 2**20
    finally:
        server.close()


def populate(client: pqlsdk.Client, users: int) -> None:
    """The workload: identify, group and three tracks per user."""
    for n in range(users):
        user = f"user-{n:06d}"
        client.identify(user, {"plan": "trial", "email": f"{user}@example.com"})
        client.group(user, f"acct-{n % 1000:04d}", {"employees": 120})
        client.track(user, "core_workflow_completed")
        client.track(user, "feature_used", {"feature": f"f{n % 8}"})
        client.track(user, "page_viewed", {"path": "/pricing"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("memory", "sqlite", "redis"), default="memory")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    users = (500 if quick() else 10_000) if args.store == "redis" else 2_000 if quick() else 100_000
    redis = throwaway_url("memory") if args.store == "redis" else None
    if args.store == "redis" and redis is None:
        return
    import pqlsdk  # noqa: PLC0415 - measured from here on

    rules = Path(__file__).resolve().parents[2] / "examples" / "rules" / "playbook.toml"
    with tempfile.TemporaryDirectory() as tmp:
        url = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{Path(tmp) / 'mem.db'}",
            "redis": redis or "",
        }[args.store]
        try:
            with pqlsdk.Client(store=url, rules=rules, retention=None) as client:
                client.stats()
                before = redis_used_mib() if args.store == "redis" else rss_mib()
                populate(client, users)
                client.flush()
                after = redis_used_mib() if args.store == "redis" else rss_mib()
                assert client.stats().recorded == users * 5
        finally:
            if redis is not None:
                clean(redis)
    grown = after - before
    emit("memory", "pqlsdk", grown * 100_000 / users, unit="MiB per 100k users", variant=args.store)


if __name__ == "__main__":
    main()
