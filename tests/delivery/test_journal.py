"""SIGKILL mid-burst loses no call that returned: a real child process, file and collector.

The child tracks as fast as it can with default settings, its collector
refusing connections (so nothing is sent before the kill, and nothing can be
sent twice), and prints each call's ``messageId`` once the call returned. The
test kills it mid-burst, while most of what it accepted is neither applied nor
committed, and opens a client on the same file that delivers to a live
collector.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pqlsdk
from pqlsdk._journal import _records

from .collector import Collector

BURSTER = """
    import sys, pqlsdk
    from pqlsdk._retry import RetryPolicy
    store, url = sys.argv[1], sys.argv[2]
    delivery = pqlsdk.Delivery(retry=RetryPolicy(base=30, cap=30, budget=3600))
    client = pqlsdk.Client(store=store, endpoint=url, write_key="k", delivery=delivery)
    out = sys.stdout
    for i in range(10**9):
        client.track(f"u{i % 50}", "tick", {"i": i}, message_id=f"m-{i}")
        out.write(f"m-{i}\\n")
        out.flush()
"""
RETURNED = 5_000
"""Calls to see return before the kill: a backlog the intake has not applied yet."""


def test_every_call_that_returned_before_a_sigkill_is_delivered_once(
    collector: Collector, refused_url: str, tmp_path: Path
) -> None:
    """Kill -9 mid-burst; a new client on the file delivers every returned call exactly once."""
    store = f"sqlite:///{tmp_path}/shared.db"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BURSTER), store, refused_url],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    returned: list[str] = []
    deadline = time.monotonic() + 60
    while len(returned) < RETURNED and time.monotonic() < deadline:
        returned.append(child.stdout.readline().decode().strip())
    child.send_signal(signal.SIGKILL)
    child.wait()
    # Whole lines still in the pipe were printed after their call returned, too.
    returned += [line.decode() for line in child.stdout.read().split(b"\n")[:-1]]
    child.stdout.close()
    assert len(returned) >= RETURNED
    left = sum(len(_records(path.read_bytes())) for path in tmp_path.glob("shared.db.journal.*"))

    client = pqlsdk.Client(store=store, endpoint=collector.url, write_key=collector.write_key)
    assert client.close(timeout=60).pending == 0

    times = collections.Counter(m["messageId"] for m in collector.messages)
    assert [mid for mid in returned if times[mid] != 1] == []
    assert left > 0  # the kill did leave calls uncommitted: the journal kept them
    assert not list(tmp_path.glob("shared.db.journal.*"))  # replayed, committed, deleted
