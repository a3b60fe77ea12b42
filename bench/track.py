"""Benchmark: ``Client.track()`` cost per call with the memory and SQLite stores.

Run: ``.venv/bin/python bench/track.py [--calls N]``. Prints microseconds per
call (mean, p50, p99, p99.9 and the longest call): tail latency matters as much
as the mean on a host's request path. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pqlsdk


def measure(client: pqlsdk.Client, calls: int) -> list[float]:
    """Time each of ``calls`` track() calls, in microseconds."""
    timings = []
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        client.track(f"user-{i % 100}", "feature_used", {"feature": "reports", "n": i})
        timings.append((clock() - start) / 1000)
    return timings


def report(name: str, timings: list[float]) -> None:
    ordered = sorted(timings)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    mean = sum(ordered) / len(ordered)
    print(
        f"{name:<8} {len(ordered):>7} calls  mean {mean:7.1f} us  p50 {pct(0.5):7.1f}  "
        f"p99 {pct(0.99):7.1f}  p99.9 {pct(0.999):8.1f}  max {ordered[-1]:8.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    print(f"pqlsdk {pqlsdk.__version__}: track() per call")
    with pqlsdk.Client(store="memory://", retention=None) as client:
        measure(client, 1000)  # warm up
        report("memory", measure(client, args.calls))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with pqlsdk.Client(store=url, retention=None) as client:
            measure(client, 1000)
            report("sqlite", measure(client, args.calls))


if __name__ == "__main__":
    main()
