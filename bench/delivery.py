"""Benchmark: ``track()`` with the sender live, and drain throughput, to a loopback collector.

Run: ``.venv/bin/python bench/delivery.py``. Starts the test suite's collector
(a real HTTP server on 127.0.0.1, in its own process) and, for the memory store and the buffered
SQLite store, prints ``track()`` cost per call (mean, p99, p99.9, longest)
while the sender thread posts batches, then how fast a backlog of queued
messages drains (messages per second). Not a test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the collector lives with the tests


from _timing import describe, time_calls  # noqa: E402

import pqlsdk  # noqa: E402


def track_costs(client: pqlsdk.Client, calls: int) -> list[float]:
    """Time ``calls`` track() calls, in microseconds."""
    timings, _ = time_calls(
        lambda i: client.track(f"user-{i % 500}", "feature_used", {"feature": "reports", "n": i}),
        calls,
    )
    return timings


SERVE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.delivery.collector import Collector
with Collector() as collector:
    print(collector.url, collector.write_key, flush=True)
    sys.stdin.read()  # serve until the benchmark closes our stdin
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--backlog", type=int, default=50_000)
    args = parser.parse_args()
    # The collector runs in its own process, as a real one would: it must not
    # compete with the measured calls for this process's GIL.
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url, key = server.stdout.readline().split()
    print(f"pqlsdk {pqlsdk.__version__}: delivery to a collector process on {url}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("memory", "sqlite"):
                store = "memory://" if kind == "memory" else f"sqlite:///{Path(tmp) / kind}.db"
                live = pqlsdk.Delivery(max_queue=args.calls * 2)
                with pqlsdk.Client(
                    store=store, endpoint=url, write_key=key, retention=None, delivery=live
                ) as client:
                    track_costs(client, 2_000)  # warm up
                    client.flush(timeout=30)
                    costs = track_costs(client, args.calls)
                    print(f"{kind:<7} track(), sender live: {describe(costs)}")
                    client.flush(timeout=60)
                # A backlog: the sender waits (huge flush_at and interval) until flush().
                held = pqlsdk.Delivery(
                    max_queue=args.backlog * 2, flush_at=10**9, flush_interval=3600.0
                )
                store = "memory://" if kind == "memory" else f"sqlite:///{Path(tmp) / kind}-b.db"
                with pqlsdk.Client(
                    store=store, endpoint=url, write_key=key, retention=None, delivery=held
                ) as client:
                    track_costs(client, args.backlog)
                    client.flush(timeout=0)  # commit a buffered store's writes first
                    started = time.perf_counter()
                    result = client.flush(timeout=120)
                    elapsed = time.perf_counter() - started
                print(
                    f"{kind:<7} drain: {result.delivered:,} messages in {elapsed:.2f} s = "
                    f"{result.delivered / elapsed:,.0f} msg/s (left {result.pending})"
                )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
        server.stdout.close()


if __name__ == "__main__":
    main()
