"""Timing for the benchmarks: per-call microseconds and their tail, measured one way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def time_calls(
    fn: Callable[[int], Any], calls: int, *, pace: float = 0.0
) -> tuple[list[float], list[Any]]:
    """Call ``fn(i)`` for i in range(calls); return each call's microseconds and answer.

    ``pace`` (seconds) paces the calls to a schedule: call i starts no earlier
    than ``i * pace`` after the first, and the time to the next slot is slept
    outside the timing. A call that finds itself behind the schedule starts at
    once, as requests queued behind a slow one would. Sleeping ``pace`` after
    each call instead offered far less than the stated rate on a loaded
    machine (a 100 µs sleep took 336 µs), so a "10k calls/s" row measured 3k.
    """
    timings: list[float] = []
    answers: list[Any] = []
    clock = time.perf_counter_ns
    step = round(pace * 1e9)
    slot = clock()
    for i in range(calls):
        start = clock()
        answers.append(fn(i))
        end = clock()
        timings.append((end - start) / 1000)
        if step:
            slot += step
            if slot > end:
                time.sleep((slot - end) / 1e9)
    return timings, answers


def summary(timings: list[float]) -> dict[str, float]:
    """Mean, p50, p99, p99.9 and the longest call, in microseconds."""
    ordered = sorted(timings)
    n = len(ordered)

    def at(share: float) -> float:
        return ordered[min(n - 1, int(share * n))]

    return {
        "mean": sum(ordered) / n,
        "p50": at(0.5),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1],
    }


def describe(timings: list[float]) -> str:
    """Mean, p50, p99, p99.9 and the longest call, in microseconds, as one line."""
    s = summary(timings)
    return (
        f"mean {s['mean']:7.1f} us  p50 {s['p50']:7.1f}  p99 {s['p99']:7.1f}  "
        f"p99.9 {s['p999']:8.1f}  max {s['max']:9.1f} us"
    )


def mean(timings: list[float]) -> float:
    """The mean of ``timings``."""
    return sum(timings) / len(timings)
