"""The benchmark case protocol: how a case reports its figures to ``bench/run.py``.

Each case is a script under ``bench/cases/`` that the runner starts in a fresh
process (so every SDK is measured under the same process conditions) and that
prints its figures as lines ``BENCH {json}``. A figure names what was measured
(``case``), whose it is (``subject``: ``pqlsdk`` or a peer), an optional
``variant`` (``live``, ``disabled``, ``10 events``...), its ``unit`` and a
``value``; per-call figures also carry ``p50``, ``p999`` and ``max``
(microseconds). The runner repeats each case, takes the median of the values
with their min and max, and prints ratios pqlsdk / peer from the same run.
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Callable
from typing import Any

from _timing import summary, time_calls

PREFIX = "BENCH "


def emit(
    case: str, subject: str, value: float, unit: str, *, variant: str = "", **extra: Any
) -> None:
    """Print one figure for the runner."""
    figure = {"case": case, "subject": subject, "variant": variant, "unit": unit, "value": value}
    figure.update(extra)
    print(PREFIX + json.dumps(figure), flush=True)


def per_call(
    fn: Callable[[int], Any], calls: int, *, warmup: int = 1_000, pace: float = 0.0
) -> dict[str, float]:
    """Time ``fn(i)`` per call; return mean (``value``), p50, p99.9 and max in microseconds.

    ``pace`` (seconds) spaces the calls' starts (``1 / pace`` calls a second), as
    requests arrive at a handler: background threads (senders) then run between
    calls rather than in the measured loop, so the figure is the cost on the
    caller's thread. The idle time is slept, which releases the GIL as a
    request's I/O would; a caller behind the schedule calls again at once.
    """
    for i in range(warmup):
        fn(i)
    found = summary(time_calls(fn, calls, pace=pace)[0])
    return {"value": found["mean"], "p50": found["p50"], "p999": found["p999"], "max": found["max"]}


def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quick() -> bool:
    """Whether the runner asked for the quick mode (small sizes, a few seconds)."""
    return "--quick" in sys.argv
