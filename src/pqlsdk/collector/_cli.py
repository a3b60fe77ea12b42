"""``pqlsdk collector``: serve the collector with uvicorn.

``pqlsdk.cli`` calls ``add_parser`` to register the subcommand and ``run`` to
execute it; uvicorn and Starlette are imported only by ``run``. Write keys come
from ``--write-key`` (repeatable) or ``PQLSDK_WRITE_KEYS`` (comma-separated), and
feed keys from ``--feed-key`` or ``PQLSDK_FEED_KEYS``, so they can stay out of
shell history and process listings. ``--slack-webhook`` and ``--webhook`` turn on
alerts for crossings into hot and burning.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, Final

from .._exceptions import ConfigError
from ._extras import load

if TYPE_CHECKING:
    from ._alerts import Alerter, Webhook

__all__ = ["DEFAULT_STORAGE", "WRITE_KEYS_ENV", "add_parser", "run"]

DEFAULT_STORAGE: Final = "pqlsdk-collector.db"
WRITE_KEYS_ENV: Final = "PQLSDK_WRITE_KEYS"
FEED_KEYS_ENV: Final = "PQLSDK_FEED_KEYS"


_DESCRIPTION: Final = """\
Serve the reference collector: it takes batches from pqlsdk clients (and
Segment's own libraries) on POST /v1/batch, keeps them in SQLite or PostgreSQL,
alerts Slack and webhooks when a lead turns hot, and serves the ranked PQL feed
on /feed. Needs the collector extra (and the postgres extra for PostgreSQL).
"""

_EXAMPLES: Final = f"""\
examples:
  pqlsdk collector --storage collector.db --write-key wk_live_1 --feed-key fk_sales
  {WRITE_KEYS_ENV}=wk_live_1 pqlsdk collector --storage postgresql://pql@db.internal/pql
"""


def add_parser(subparsers: Any) -> None:
    """Add the ``collector`` subcommand to ``subparsers`` (an argparse subparsers action)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "collector",
        help="serve the reference collector (needs pqlsdk[collector])",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"file path, sqlite:///path or postgresql:// URL (default {DEFAULT_STORAGE})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="TCP port (default 8787)")
    parser.add_argument(
        "--write-key",
        action="append",
        default=[],
        dest="write_keys",
        metavar="KEY",
        help=f"accepted write key; repeat for several (or set {WRITE_KEYS_ENV}=k1,k2)",
    )
    parser.add_argument(
        "--feed-key",
        action="append",
        default=[],
        dest="feed_keys",
        metavar="KEY",
        help=f"key for the PQL feed (/feed, /api/leads); or set {FEED_KEYS_ENV}=k1,k2",
    )
    parser.add_argument(
        "--slack-webhook",
        action="append",
        default=[],
        metavar="URL",
        help="Slack incoming webhook for hot and burning crossings (repeatable)",
    )
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="generic JSON webhook for hot and burning crossings (repeatable)",
    )
    parser.add_argument("--feed-url", help="the feed's public URL, linked from alerts")
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help="rules file with [moments] conversion: serves /moments, each moment's lift",
    )
    parser.add_argument(
        "--do-not-contact",
        action="append",
        default=[],
        metavar="ID",
        help="user or account id never to alert about (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; raise ``ConfigError`` for missing keys or extras."""
    keys = list(args.write_keys) or _from_env(WRITE_KEYS_ENV)
    feed_keys = list(args.feed_keys) or _from_env(FEED_KEYS_ENV)
    if not keys:
        raise ConfigError(
            f"the collector needs at least one write key: pass --write-key KEY or set "
            f"{WRITE_KEYS_ENV}=key1,key2"
        )
    try:
        uvicorn = load("uvicorn", extra="collector", purpose="pqlsdk collector")
        create_app = load("._app", extra="collector", purpose="pqlsdk collector").create_app
    except ImportError as exc:
        raise ConfigError(str(exc)) from exc
    alerter = _alerter(args)
    app = create_app(
        args.storage,
        write_keys=keys,
        feed_keys=feed_keys,
        on_crossing=alerter,
        rules=args.rules,
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port)
    finally:
        if alerter is not None:
            alerter.close(timeout=5)
    return 0


def _from_env(name: str) -> list[str]:
    return [key.strip() for key in os.environ.get(name, "").split(",") if key.strip()]


def _alerter(args: argparse.Namespace) -> Alerter | None:
    """Build the alerter for the configured webhooks, or None when there are none."""
    from ._alerts import Alerter, JSONWebhook, SlackWebhook  # noqa: PLC0415 - imports httpx

    hooks: list[Webhook] = [SlackWebhook(url) for url in args.slack_webhook]
    hooks += [JSONWebhook(url) for url in args.webhook]
    if not hooks:
        return None
    return Alerter(hooks, feed_url=args.feed_url, do_not_contact=args.do_not_contact)
