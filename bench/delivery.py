"""Benchmark: ``track()`` with the sender live, and drain throughput, to a loopback collector.

Run: ``.venv/bin/python bench/delivery.py``. Starts the test suite's collector
(a real HTTP server on 127.0.0.1) and, for the memory store and the buffered
SQLite store, prints ``track()`` cost per call (mean, p99, p99.9, longest)
while the sender thread posts batches, then how fast a backlog of queued
messages drains (messages per second). Not a test.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the collector lives with the tests

from tests.delivery.collector import Collector  # noqa: E402

import pqlsdk  # noqa: E402


def track_costs(client: pqlsdk.Client, calls: int) -> list[float]:
    timings = []
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        client.track(f"user-{i % 500}", "feature_used", {"feature": "reports", "n": i})
        timings.append((clock() - start) / 1000)
    return timings


def describe(timings: list[float]) -> str:
    ordered = sorted(timings)
    n = len(ordered)
    mean = sum(ordered) / n
    return (
        f"mean {mean:6.1f} us  p99 {ordered[int(0.99 * n)]:7.1f}  "
        f"p99.9 {ordered[int(0.999 * n)]:8.1f}  max {ordered[-1]:9.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--backlog", type=int, default=50_000)
    args = parser.parse_args()
    print(
        f"pqlsdk {pqlsdk.__version__}: delivery to a collector on 127.0.0.1 (gc objects at start: "
        f"{len(gc.get_objects())})"
    )
    with Collector() as collector, tempfile.TemporaryDirectory() as tmp:
        for kind in ("memory", "sqlite"):
            url = "memory://" if kind == "memory" else f"sqlite:///{Path(tmp) / 'd.db'}"
            delivery = pqlsdk.Delivery(max_queue=max(args.calls, args.backlog) * 2)
            with pqlsdk.Client(
                store=url,
                endpoint=collector.url,
                write_key=collector.write_key,
                retention=None,
                delivery=delivery,
            ) as client:
                track_costs(client, 2_000)  # warm up
                client.flush(timeout=30)
                print(
                    f"{kind:<7} track(), sender live: {describe(track_costs(client, args.calls))}"
                )
                client.flush(timeout=60)
                collector.stop()  # queue a backlog while the collector is away
                track_costs(client, args.backlog)
                if kind == "sqlite":
                    client.flush(timeout=0)  # commit the buffer so the backlog is in the outbox
                collector.start()
                started = time.perf_counter()
                result = client.flush(timeout=120)
                elapsed = time.perf_counter() - started
                print(
                    f"{kind:<7} drain: {result.delivered:,} messages in {elapsed:.2f} s = "
                    f"{result.delivered / elapsed:,.0f} msg/s (left {result.pending})"
                )


if __name__ == "__main__":
    main()
