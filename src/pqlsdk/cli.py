"""The ``pqlsdk`` command line.

``pqlsdk demo`` is the main job for now: it records a short product story into a
store (the embedded SQLite default unless ``--store`` says otherwise) and prints
what the store then holds. Later commands (``check``, ``score``) grow here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta

from ._client import DEFAULT_STORE, Client
from ._clock import FixedClock
from ._exceptions import PQLError
from ._version import __version__

__all__ = ["main"]

_DEMO_START = "2026-03-01T09:00:00Z"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = argparse.ArgumentParser(prog="pqlsdk", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pqlsdk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="record a short product story and print the store")
    demo.add_argument("--store", default=DEFAULT_STORE, help=f"store URL (default {DEFAULT_STORE})")
    args = parser.parse_args(argv)
    try:
        return _demo(args.store)
    except PQLError as exc:
        print(f"pqlsdk: error: {exc}", file=sys.stderr)
        return 2


def _demo(store: str) -> int:
    clock = FixedClock(_DEMO_START)
    with Client(store=store, clock=clock, retention=None) as client:
        before = client.store.count()
        client.identify("ada", {"plan": "trial", "email_domain": "acme.test"})
        client.group("ada", "acme", {"employees": 120, "industry": "fintech"})
        client.identify("lin", {"plan": "trial"})
        client.group("lin", "acme", {"plan": "free"})
        for _ in range(5):
            clock.advance(timedelta(days=1))
            client.track("ada", "core_workflow_completed")
            client.track("ada", "page_viewed", {"path": "/pricing"})
        client.track("lin", "limit_hit", {"limit": "seats"})
        client.track("ada", "feature_used", {"feature": float("nan")})  # refused: not JSON
        stats = client.stats()
        total = client.store.count()
        print(f"store {client.store.url}: {total} messages ({before} before this run)")
        print(f"recorded {stats.recorded}, dropped {dict(stats.dropped)}")
        for user in [u for u in map(client.user, ("ada", "lin")) if u is not None]:
            last = user.last_active_at.isoformat() if user.last_active_at else "never"
            print(
                f"user {user.user_id}: account={user.account_id} tracks={user.tracks} "
                f"last_active={last} traits={sorted(user.traits)}"
            )
        for account in [a for a in [client.account("acme")] if a is not None]:
            print(
                f"account {account.account_id}: active_members={account.active_members} "
                f"traits={dict(sorted(account.traits.items()))}"
            )
    return 0
