"""Where pqlsdk keeps its message log and per-user and per-account state.

Open a store from a URL with ``open_store``, or construct one directly:

- ``memory://``: this process only; for tests.
- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's
  convention): the embedded default, shared by the processes of one host.
- ``redis://host:port/db?prefix=name`` or ``rediss://...``: shared by every host
  (``pip install 'pqlsdk[redis]'``; see ``pqlsdk.stores.redis``).

Every store implements the ``Store`` protocol and derives state the same way
(``pqlsdk.stores.UserState`` and ``AccountState``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .._exceptions import ConfigError
from ._base import Record, Store, Subject, Written
from ._state import AccountState, MomentRecord, UserState
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AccountState",
    "MemoryStore",
    "MomentRecord",
    "Record",
    "SQLiteStore",
    "Store",
    "Subject",
    "UserState",
    "Written",
    "open_store",
]


def open_store(url: str) -> Store:
    """Open the store that ``url`` names; raise ``ConfigError`` for an unknown URL.

    Added in version 0.1.0.
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        if parts.netloc or parts.path:
            raise ConfigError(f"store URL {url!r}: memory:// takes no path")
        return MemoryStore()
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            raise ConfigError(
                f"store URL {url!r}: write sqlite:///relative/file.db or "
                "sqlite:////absolute/file.db"
            )
        return SQLiteStore(parts.path[1:])
    if parts.scheme in ("redis", "rediss"):
        # Imported here: redis-py is an optional extra, and ``import pqlsdk`` never loads it.
        from .redis import RedisStore  # noqa: PLC0415

        return RedisStore.from_url(url)
    raise ConfigError(
        f"store URL {url!r}: unknown scheme {parts.scheme!r}; use memory://, "
        "sqlite:///path/to/file.db, or redis://host:port/db (rediss:// for TLS)"
    )
