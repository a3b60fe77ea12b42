from datetime import timedelta

import pqlsdk
from pqlsdk._retry import RetryPolicy

# Every Client option, at its default (all keyword-only).
client = pqlsdk.Client(
    store="sqlite:///pqlsdk.db",  # pqlsdk.DEFAULT_STORE
    clock=None,  # pqlsdk.SystemClock()
    strict=False,
    retention=timedelta(days=400),
    rules=None,
    on_tier_change=None,
    endpoint=None,
    write_key=None,
    transport=None,
    delivery=None,  # pqlsdk.Delivery()
    on_error=None,
)
client.close()

# Every Delivery option, at its default.
assert pqlsdk.Delivery() == pqlsdk.Delivery(
    mode="background",  # or "caller"
    durability="buffered",  # or "sync" (SQLite stores)
    buffer_interval=0.2,
    flush_at=500,
    flush_interval=1.0,
    max_batch_bytes=500_000,
    max_queue=10_000,
    on_full="drop_newest",  # or "drop_oldest", "block"
    block_timeout=0.05,
    backlog_bytes=256 << 20,  # SQLite stores: accepted calls waiting in the journal
    retry=RetryPolicy(base=0.5, cap=30.0, budget=300.0, max_attempts=None),
    shutdown_timeout=5.0,
    lease=60.0,
)
