"""Case: event capture cost on the caller's thread, pqlsdk against PostHog and Segment.

Run: ``python bench/cases/capture.py --sdk {pqlsdk,pqlsdk-memory,posthog,segment,floor}
--mode {live,disabled} [--sink URL] [--quick]``.

Every SDK captures the same event: user ``user-{i % 500}``, event
``feature_used``, properties ``{"feature": "reports", "n": i}``. Two loops:

- paced (variant ``live`` / ``disabled``): one call every 100 µs (10k calls/s,
  the time left to the next slot slept, as a request handler's I/O would
  leave), so background senders run between calls and the figure is what the
  caller's thread pays;
- burst (variant ``"<mode>, burst"``): the same calls back to back, so the
  sender competes with the caller for the GIL.

``live``: each SDK's background sender posts to a loopback sink (``--sink``,
else one started here from ``bench/_sink.py``); after measuring, each SDK is
flushed and the sink's message count is emitted as ``capture_delivered``.
``disabled``: sending is off but the capture work is done: PostHog
``send=False`` (``disabled=True`` would return before building the event),
Segment ``send=False``, pqlsdk without an endpoint (same stores and rules).

``floor`` times a call that does nothing (a no-op Python function taking
the same ``i``) through the same loops: its p99.9 and longest call are the
machine's own (scheduler, other processes, timer slack), the least any SDK's
row can show on this machine in this run. It sends nothing and starts no sink,
so its rows are named as the other subjects' ``--mode`` rows (``live`` and
``live, burst`` when run with ``--mode live``), to sit next to them.

pqlsdk keeps per-user state, so its 500 users are identified (plan ``trial``)
and grouped first, as a host app would have done. PostHog and Segment keep no
per-user state in the process, so the same set-up would change nothing there.
"""

# Each SDK is imported in its own set-up function: a process imports only the
# one it measures, so no other SDK's import-time state or threads are around.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, per_call, quick
from _sink import counts, loopback_only, started

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
USERS = 500
ACCOUNTS = 100
PACE = 100e-6  # seconds between paced calls
QUEUE = 1_000_000  # far above any backlog here: nothing may be dropped
NOWHERE = "http://127.0.0.1:9"  # a host for disabled clients, which never use it
SDKS = ("pqlsdk", "pqlsdk-memory", "posthog", "segment", "floor")


class Subject:
    """One SDK set up for the case: its capture call, its flush and its close."""

    def __init__(
        self,
        capture: Callable[[int], Any],
        flush: Callable[[], None],
        close: Callable[[], object],
    ) -> None:
        self.capture = capture
        self.flush = flush
        self.close = close


def pqlsdk_subject(store: str, sink: str | None) -> Subject:
    """A pqlsdk client with the playbook rules; it sends to ``sink`` if given."""
    import pqlsdk

    client = pqlsdk.Client(
        store=store,
        rules=PLAYBOOK,
        endpoint=sink,  # the transport posts to {endpoint}/v1/batch
        write_key="k" if sink else None,
        retention=None,
        delivery=pqlsdk.Delivery(max_queue=QUEUE),
    )
    # What a host app has done before its users act: who they are, which account.
    for u in range(USERS):
        client.identify(f"user-{u}", {"plan": "trial"})
        client.group(f"user-{u}", f"acct-{u % ACCOUNTS}", {"employees": 20 + u % ACCOUNTS})
    track = client.track

    def capture(i: int) -> None:
        track(f"user-{i % USERS}", "feature_used", {"feature": "reports", "n": i})

    def flush() -> None:
        deadline = time.monotonic() + 120
        while client.flush(timeout=60).pending and time.monotonic() < deadline:
            pass

    return Subject(capture, flush, client.close)


def posthog_subject(sink: str | None) -> Subject:
    """A PostHog client at its defaults (no gzip, flush_at 100), no flags, no sync mode.

    Without a secret key there is no flag poller, and capture() fetches no
    flags unless asked (``send_feature_flags``), so no request but the batches.
    """
    from posthog import Posthog

    client = Posthog(
        "phc_bench",
        host=sink or NOWHERE,
        send=sink is not None,
        max_queue_size=QUEUE,
        enable_local_evaluation=False,
    )
    capture_event = client.capture

    def capture(i: int) -> None:
        capture_event(
            "feature_used",
            distinct_id=f"user-{i % USERS}",
            properties={"feature": "reports", "n": i},
        )

    return Subject(capture, lambda: client.flush(timeout_seconds=120), client.shutdown)


def segment_subject(sink: str | None) -> Subject:
    """A Segment client at its defaults (no gzip, 100 per batch, 0.5 s interval)."""
    from segment.analytics import Client

    client = Client("k", host=sink or NOWHERE, send=sink is not None, max_queue_size=QUEUE)
    track = client.track

    def capture(i: int) -> None:
        track(
            user_id=f"user-{i % USERS}",
            event="feature_used",
            properties={"feature": "reports", "n": i},
        )

    return Subject(capture, client.flush, client.shutdown)


def floor_subject() -> Subject:
    """A call that does nothing: what the timing loop and the machine add to any call."""

    def capture(i: int) -> None:
        return None

    return Subject(capture, lambda: None, lambda: None)


def make_subject(sdk: str, sink: str | None, tmp: str) -> Subject:
    """The set-up ``sdk`` gets; ``sink`` is None when sending is off."""
    if sdk == "floor":
        return floor_subject()
    if sdk == "pqlsdk":
        return pqlsdk_subject(f"sqlite:///{tmp}/pqlsdk.db", sink)
    if sdk == "pqlsdk-memory":
        return pqlsdk_subject("memory://", sink)
    if sdk == "posthog":
        return posthog_subject(sink)
    return segment_subject(sink)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdk", choices=SDKS, required=True)
    parser.add_argument("--mode", choices=("live", "disabled"), required=True)
    parser.add_argument("--sink", help="the loopback sink's URL (live); default: start one")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls, warmup = (300, 50) if quick() else (20_000, 1_000)
    refused = loopback_only()
    live = args.mode == "live" and args.sdk != "floor"  # the floor sends nothing
    with contextlib.ExitStack() as stack:
        sink: str | None = None
        if live:
            sink = args.sink or stack.enter_context(started())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        subject = make_subject(args.sdk, sink, tmp)
        try:
            if sink is not None:
                subject.flush()  # set-up messages out of the way before counting
                before = counts(sink)["messages"]
            paced = per_call(subject.capture, calls, warmup=warmup, pace=PACE)
            emit("capture", args.sdk, unit="us/call", variant=args.mode, **paced)
            burst = per_call(lambda i: subject.capture(warmup + calls + i), calls, warmup=0)
            emit("capture", args.sdk, unit="us/call", variant=f"{args.mode}, burst", **burst)
            if sink is not None:
                subject.flush()
                received = counts(sink)["messages"] - before
                expected = warmup + 2 * calls
                print(f"{args.sdk}: the sink received {received:,} of {expected:,} events")
                emit("capture_delivered", args.sdk, received, unit="events", variant=args.mode)
        finally:
            subject.close()
    if refused():
        print(f"{args.sdk}: refused off-loopback attempts: {refused()}")


if __name__ == "__main__":
    main()
