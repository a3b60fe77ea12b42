"""Case: resident memory per 100,000 tracked users, with the playbook rules.

Run: ``python bench/cases/memory.py --store {memory,sqlite} [--quick]``. Tracks
users who identify, join one of a thousand accounts and do five things each
(with ``retention=None``, so the memory store also keeps its message log),
then reports how much the process's resident memory grew, scaled to 100,000
users, in MiB. The SQLite store keeps state in its file and only recent
changes in memory, so its figure is about what a web worker carries.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, quick


def rss_mib() -> float:
    """Current resident memory (not the peak), MiB, from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    users = 2_000 if quick() else 100_000
    import pqlsdk  # noqa: PLC0415 - measured from here on

    rules = Path(__file__).resolve().parents[2] / "examples" / "rules" / "playbook.toml"
    with tempfile.TemporaryDirectory() as tmp:
        url = "memory://" if args.store == "memory" else f"sqlite:///{Path(tmp) / 'mem.db'}"
        with pqlsdk.Client(store=url, rules=rules, retention=None) as client:
            client.stats()
            before = rss_mib()
            for n in range(users):
                user = f"user-{n:06d}"
                client.identify(user, {"plan": "trial", "email": f"{user}@example.com"})
                client.group(user, f"acct-{n % 1000:04d}", {"employees": 120})
                client.track(user, "core_workflow_completed")
                client.track(user, "feature_used", {"feature": f"f{n % 8}"})
                client.track(user, "page_viewed", {"path": "/pricing"})
            client.flush()
            grown = rss_mib() - before
            assert client.stats().recorded == users * 5
    emit("memory", "pqlsdk", grown * 100_000 / users, unit="MiB per 100k users", variant=args.store)


if __name__ == "__main__":
    main()
