"""Case: intake capacity on the default store, and a long burst's tail on the caller.

Run: ``python bench/cases/intake.py [--sink URL] [--quick]``.

One pqlsdk client at its defaults (SQLite, buffered, sender live to the
loopback sink: ``--sink``, else one started here) with the playbook rules and
500 users identified and grouped first, as ``capture.py`` sets them up. Then
``calls`` back-to-back ``track()`` (100,000; 2,000 quick), each call timed:

- ``intake_burst`` (us/call, with p50, p99.9 and the longest call): what the
  caller pays while the intake falls behind a producer faster than it;
- ``intake_capacity`` (events/s): the burst's events over the time from the
  first call until every one of them is applied to the SQLite store (state,
  aggregates, tier checks) and committed with its outbox row: the rate one
  process folds events in, on whatever cores it has;
- ``intake_delivered`` (events): how many of the burst reached the sink after
  a flush (all of them, or something was lost or refused).

There is no peer row here: the peers keep no state to fold into. The burst's
tail is compared with theirs in ``capture.py``'s ``live, burst`` rows.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, quick
from _sink import counts, loopback_only, started
from _timing import summary, time_calls

import pqlsdk

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
USERS = 500
ACCOUNTS = 100


def set_up(stack: contextlib.ExitStack[bool | None], tmp: str, sink: str | None) -> pqlsdk.Client:
    """Return the case's client (SQLite in ``tmp``, sending to ``sink``), closed by ``stack``.

    Its users identified and grouped first, as a host app would have done;
    ``bench/probes/burst_tail.py`` sets its client up the same way.
    """
    client = pqlsdk.Client(
        store=f"sqlite:///{tmp}/pqlsdk.db",
        rules=PLAYBOOK,
        endpoint=sink,
        write_key="k" if sink else None,
        retention=None,
    )
    stack.callback(client.close)
    for u in range(USERS):
        client.identify(f"user-{u}", {"plan": "trial"})
        client.group(f"user-{u}", f"acct-{u % ACCOUNTS}", {"employees": 20 + u % ACCOUNTS})
    client.flush(timeout=120)
    return client


def applied(client: pqlsdk.Client) -> None:
    """Return once every message ``client`` accepted is applied and committed."""
    client.stats()  # returns once every accepted message is applied
    commit = getattr(client.store, "commit", None)
    if commit is not None:
        commit()


def delivered(client: pqlsdk.Client, sink: str) -> int:
    """Flush ``client`` until nothing is pending (2 minutes at most); return the sink's count."""
    deadline = time.monotonic() + 120
    while client.flush(timeout=60).pending and time.monotonic() < deadline:
        pass
    return int(counts(sink)["messages"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", help="the loopback sink's URL; default: start one")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls = 2_000 if quick() else 100_000
    refused = loopback_only()
    with contextlib.ExitStack() as stack:
        sink = args.sink or stack.enter_context(started())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        client = set_up(stack, tmp, sink)
        before = counts(sink)["messages"]
        track = client.track

        def capture(i: int) -> None:
            track(f"user-{i % USERS}", "feature_used", {"feature": "reports", "n": i})

        started_at = time.perf_counter()
        timings = time_calls(capture, calls)[0]
        applied(client)
        elapsed = time.perf_counter() - started_at
        tail = summary(timings)
        emit(
            "intake_burst",
            "pqlsdk",
            tail["mean"],
            unit="us/call",
            variant="sqlite, sender live",
            p50=tail["p50"],
            p999=tail["p999"],
            max=tail["max"],
        )
        emit("intake_capacity", "pqlsdk", calls / elapsed, unit="events/s", variant="sqlite")
        received = delivered(client, sink) - before
        print(f"pqlsdk: the sink received {received:,} of {calls:,} events")
        emit("intake_delivered", "pqlsdk", received, unit="events", variant="sqlite")
    if refused():
        print(f"pqlsdk: refused off-loopback attempts: {refused()}")


if __name__ == "__main__":
    main()
