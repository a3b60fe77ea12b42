"""A restart delivers what a crash left, at once: real processes, a real file and collector.

A child process tracks with its collector refused, so its sender leases the
outbox rows and holds them while it backs off; the test then kills it (or
keeps it alive) and opens a client on the same file.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pqlsdk

from .collector import Collector

HOLDER = """
    import sys, time, pqlsdk
    from pqlsdk._retry import RetryPolicy
    url, store, count, then = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    delivery = pqlsdk.Delivery(durability="sync", flush_at=1000, flush_interval=1.0,
                               retry=RetryPolicy(base=30, cap=30, budget=3600))
    client = pqlsdk.Client(store=store, endpoint=url, write_key="k", delivery=delivery)
    for i in range(count):
        client.track("u", "tick", {"i": i})
    if then == "close":
        client.close(timeout=0.3)
    else:
        time.sleep(3600)  # its sender keeps the lease while it backs off
"""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start HOLDER children; any still running at the end is killed."""
    children: list[subprocess.Popen[bytes]] = []

    def start(url: str, count: int, then: str) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-c", textwrap.dedent(HOLDER), url, store_of(tmp_path)]
        child = subprocess.Popen([*args, str(count), then])
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()


def store_of(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/shared.db"


def leased_rows(tmp_path: Path) -> int:
    """Rows some sender holds now, read straight from the file."""
    path = tmp_path / "shared.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as conn:
        try:
            (count,) = conn.execute(
                "SELECT count(*) FROM outbox WHERE lease_until > ?", (time.time(),)
            ).fetchone()
        except sqlite3.OperationalError:  # not created yet
            return 0
    return int(count)


def wait_until(done: Callable[[], bool], what: str, timeout: float = 20) -> float:
    """Poll ``done``; return the seconds it took."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout, f"no {what} within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def holder(
    spawn: Callable[..., subprocess.Popen[bytes]], refused_url: str, tmp_path: Path
) -> subprocess.Popen[bytes]:
    """A live child whose sender holds a lease on all 100 rows it tracked."""
    child = spawn(refused_url, 100, "sleep")
    wait_until(lambda: leased_rows(tmp_path) == 100, "lease by the child")
    return child


def opened(tmp_path: Path, collector: Collector) -> pqlsdk.Client:
    """A default client on the shared file, delivering to the live collector."""
    return pqlsdk.Client(
        store=store_of(tmp_path), endpoint=collector.url, write_key=collector.write_key
    )


def ticks(collector: Collector) -> list[int]:
    return sorted({m["properties"]["i"] for m in collector.messages if m.get("event") == "tick"})


def test_a_client_opening_a_non_empty_outbox_sends_at_once(
    collector: Collector,
    refused_url: str,
    tmp_path: Path,
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """An earlier run closed with 50 undelivered; a new client sends them with no call at all."""
    assert spawn(refused_url, 50, "close").wait(60) == 0
    client = opened(tmp_path, collector)
    took = wait_until(lambda: len(ticks(collector)) == 50, "delivery", timeout=10)
    print(f"50 left by a closed run delivered {took:.2f} s after the client was built")
    assert ticks(collector) == list(range(50))
    client.close()


def test_a_dead_senders_lease_is_taken_over_at_open(
    collector: Collector, tmp_path: Path, holder: subprocess.Popen[bytes]
) -> None:
    """SIGKILL while holding a 60 s lease on 100 rows: a new process sends them within seconds."""
    holder.kill()
    holder.wait()
    client = opened(tmp_path, collector)
    took = wait_until(lambda: len(ticks(collector)) == 100, "delivery", timeout=10)
    print(f"100 leased by a killed process delivered {took:.2f} s after the client was built")
    assert ticks(collector) == list(range(100))
    assert client.close().pending == 0


def test_a_live_senders_lease_is_respected(
    collector: Collector, tmp_path: Path, holder: subprocess.Popen[bytes]
) -> None:
    """A live child holds the rows (its collector refuses): another process leaves them alone."""
    client = opened(tmp_path, collector)
    assert client.flush(timeout=1.5) == pqlsdk.FlushResult(0, 100)
    assert collector.messages == []
    assert leased_rows(tmp_path) == 100
    client.close(timeout=0)


def test_a_running_sender_takes_over_when_the_holder_dies(
    collector: Collector, tmp_path: Path, holder: subprocess.Popen[bytes]
) -> None:
    """A client already open when the holder is killed: its flush takes the rows within seconds."""
    client = opened(tmp_path, collector)
    holder.kill()
    holder.wait()
    assert client.flush(timeout=8) == pqlsdk.FlushResult(100, 0)
    assert ticks(collector) == list(range(100))
    client.close()
