"""The Redis store: state shared by every host of an app, on one Redis server.

Why Redis: when a host app runs on many machines, one host's SQLite file is no
longer the whole picture of a user; caps, scores and tier crossings must agree
across hosts. Redis is widely deployed, and its optimistic transactions give
the same exactness the SQLite store gets from ``BEGIN IMMEDIATE``.

Open it with ``open_store("redis://host:6379/0?prefix=myapp")`` or
``RedisStore.from_url``; it needs the ``redis`` extra
(``pip install 'pqlsdk[redis]'``). How it keeps its keys, why a write is three
steps, and how it behaves while Redis is away are on the documentation's
Redis store page (``docs/redis.md``). Its parts, one module each: the URL's
options (``_options``), the keys and Lua scripts (``_scripts``), the write
(``_write``), the log and aggregate registry (``_log``), the server outbox
(``_outbox``), the read cache (``_cache``), and the store over them (``_store``).
"""

from __future__ import annotations

try:
    import redis  # noqa: F401 - fail here, naming the extra, before the parts import it
except ImportError as exc:  # pragma: no cover - the test set-up installs every extra
    raise ImportError(
        "the Redis store (redis:// URLs) needs redis-py: pip install 'pqlsdk[redis]'"
    ) from exc

from .._outbox import Lease
from ._options import (
    DEFAULT_BUFFER,
    DEFAULT_CACHE_TTL,
    DEFAULT_PREFIX,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_TIMEOUT,
)
from ._store import RedisStore

__all__ = [
    "DEFAULT_BUFFER",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_PREFIX",
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_TIMEOUT",
    "Lease",
    "RedisStore",
]
