"""The reference collector: a small ASGI service that receives pqlsdk's batches.

It takes Segment-style batches on ``POST /v1/batch`` (HTTP Basic write keys,
gzip, bounded bodies), checks every message with ``pqlsdk.messages``, stores
them idempotently by ``messageId`` in SQLite or PostgreSQL, and keeps the latest
tier crossing of every user and account as a ``Lead``:

```python
from pqlsdk.collector import create_app

app = create_app("collector.db", write_keys=["wk_live_..."], on_crossing=alert)
```

or, from a shell, ``pqlsdk collector --write-key wk_live_...``.

Public names: ``create_app`` (the ASGI app; needs the ``collector`` extra, loaded
on first use), ``open_storage``, ``Storage`` and ``StoreResult`` (the database
side, usable without the web stack; PostgreSQL needs the ``postgres`` extra) and
``Lead``. Nothing outside this package imports it: ``import pqlsdk`` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._extras import load
from ._lead import Lead
from ._storage import Storage, StoreResult, open_storage

if TYPE_CHECKING:
    from ._app import create_app

__all__ = ["Lead", "Storage", "StoreResult", "create_app", "open_storage"]


def __getattr__(name: str) -> Any:
    """Load the web app (and Starlette) the first time ``create_app`` is asked for."""
    if name != "create_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return load("._app", extra="collector", purpose="pqlsdk.collector.create_app").create_app
