"""Benchmark: ``Client.track()`` cost per call with the memory and SQLite stores.

Run: ``.venv/bin/python bench/track.py [--calls N]``. Prints microseconds per
call (mean, p50, p99, p99.9 and the longest call): tail latency matters as much
as the mean on a host's request path. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _timing import describe, time_calls

import pqlsdk


def measure(client: pqlsdk.Client, calls: int) -> list[float]:
    """Time ``calls`` track() calls, in microseconds."""
    timings, _ = time_calls(
        lambda i: client.track(f"user-{i % 100}", "feature_used", {"feature": "reports", "n": i}),
        calls,
    )
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    print(f"pqlsdk {pqlsdk.__version__}: track() per call")
    with pqlsdk.Client(store="memory://", retention=None) as client:
        measure(client, 1000)  # warm up
        print(f"memory  {describe(measure(client, args.calls))}")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with pqlsdk.Client(store=url, retention=None) as client:
            measure(client, 1000)
            print(f"sqlite  {describe(measure(client, args.calls))}")


if __name__ == "__main__":
    main()
