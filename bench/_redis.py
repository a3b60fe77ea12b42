"""The bench's Redis server: a throwaway key prefix per run, and its cleanup.

Cases that measure the Redis store share the server at ``PQLSDK_BENCH_REDIS_URL``
(default ``redis://127.0.0.1:6379/15``) with the test suite, so a run writes
under a fresh prefix and deletes only its own keys, never the whole database.
"""

from __future__ import annotations

import os
import sys
import uuid

REDIS_URL = os.environ.get("PQLSDK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def throwaway_url(case: str) -> str | None:
    """A store URL with a fresh prefix, or None (with a note) when there is no server."""
    try:
        import redis  # noqa: PLC0415 - the optional extra, only for this store

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # no redis-py or no server: either way, a note and no figures
        print(f"{case}: no Redis at {REDIS_URL} ({exc}); Redis figures left out", file=sys.stderr)
        return None
    separator = "&" if "?" in REDIS_URL else "?"
    # A generous timeout: on a loaded machine a round trip can pass the store's 0.1 s
    # default, which would start an outage (buffered writes) in the middle of a figure.
    return f"{REDIS_URL}{separator}timeout=5&prefix=pqlsdk-{case}-{uuid.uuid4().hex[:8]}"


def clean(url: str) -> None:
    """Delete every key under the run's prefix (never the whole database: tests share it)."""
    import redis  # noqa: PLC0415

    prefix = url.rsplit("prefix=", 1)[1]
    server = redis.Redis.from_url(REDIS_URL)
    keys = list(server.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        server.delete(*keys)
    server.close()
