"""Probe: which of a 100k ``track()`` burst's calls are slow, and when (issue 21).

Run: ``PYTHONPATH=src python bench/probes/burst_tail.py [--gc-off] [--switch S]
[--no-sender] [--out FILE]``. Sets up the client as ``bench/cases/intake.py`` does,
times each call's start and end (``perf_counter_ns``, CLOCK_MONOTONIC, the clock
``perf record -k mono`` stamps with), prints p50/p99.9/max and the capacity, and
writes the slow calls (start, duration) and the threads' native ids to ``--out``
(JSON) for matching against a ``perf`` trace of the GIL.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _sink import counts, started
from cases.intake import USERS, applied, delivered, set_up


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gc-off", action="store_true")
    parser.add_argument("--switch", type=float)
    parser.add_argument("--no-sender", action="store_true")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--out")
    parser.add_argument(
        "--busy", action="store_true", help="no pqlsdk: a call of similar CPU work, no threads"
    )
    parser.add_argument("--pause", type=float, default=0.0, help="s to sleep before the burst")
    args = parser.parse_args()
    if args.switch:
        sys.setswitchinterval(args.switch)
    with contextlib.ExitStack() as stack:
        sink = None if args.no_sender else stack.enter_context(started())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        client = set_up(stack, tmp, sink)
        before = counts(sink)["messages"] if sink else 0
        track: Callable[..., None] = client.track
        if args.busy:
            import msgspec  # noqa: PLC0415 - only for --busy

            encode = msgspec.json.encode
            kept: list[bytes] = []

            def busy(user: str, event: str, properties: dict[str, object]) -> None:
                data = encode({"userId": user, "event": event, "properties": properties})
                kept.append(encode([data, data, data, data]))

            track = busy
        calls = args.calls
        starts = [0] * calls
        ends = [0] * calls
        clock = time.perf_counter_ns
        if args.pause:
            time.sleep(args.pause)
        if args.gc_off:
            gc.disable()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(calls):
            s = clock()
            track(f"user-{i % USERS}", "feature_used", {"feature": "reports", "n": i})
            e = clock()
            starts[i] = s
            ends[i] = e
        burst_end = time.perf_counter()
        applied(client)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        gc.enable()
        durs = sorted(e - s for s, e in zip(starts, ends, strict=True))
        n = len(durs)

        def p(q: float) -> float:
            return durs[min(n - 1, int(q * n))] / 1000

        slow = sorted(range(calls), key=lambda i: ends[i] - starts[i], reverse=True)[:300]
        threads = {t.name: t.native_id for t in threading.enumerate()}
        print(
            f"p50 {p(0.5):.1f} p99 {p(0.99):.1f} p99.9 {p(0.999):.1f} max {durs[-1] / 1000:.0f} us"
            f"  burst {burst_end - t0:.3f}s capacity {calls / elapsed:,.0f}/s"
            f" cpu {cpu:.2f}s over {elapsed:.2f}s  >28us: {sum(d > 28000 for d in durs)}"
        )
        if sink:
            got = delivered(client, sink) - before
            if got != calls:
                print(f"DELIVERED {got} of {calls}")
        if args.out:
            Path(args.out).write_text(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "threads": threads,
                        "t0": starts[0],
                        "t_end": ends[-1],
                        "slow": [[i, starts[i], ends[i] - starts[i]] for i in slow],
                    }
                )
            )


if __name__ == "__main__":
    main()
