"""Delivery failures reach the host's logs and stats: a refused port and a real collector.

Every test captures the ``pqlsdk`` logger. The per-minute rules are
checked in ``test_log_pacing.py``, with an injected clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk._delivery._log import DeliveryLog
from pqlsdk._exceptions import StoreError
from pqlsdk._retry import RetryPolicy
from pqlsdk._stats import Counters
from pqlsdk.stores._outbox import SQLiteOutbox
from pqlsdk.stores.sqlite import SQLiteStore
from pqlsdk.testing import RecordingTransport

from .collector import Collector

FAST = pqlsdk.Delivery(flush_interval=0.05, retry=RetryPolicy(base=0.05, cap=0.2))


def pqlsdk_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pqlsdk" and r.levelno == level]


def wait_until(done: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def tracking(store: str, url: str, count: int) -> pqlsdk.Client:
    """A quickly retrying client on ``store`` that has tracked ``count`` ticks."""
    client = pqlsdk.Client(store=store, endpoint=url, write_key="k", delivery=FAST)
    for i in range(count):
        client.track("u1", "tick", {"i": i})
    return client


def store_url(kind: str, tmp_path: Path) -> str:
    return "memory://" if kind == "memory" else f"sqlite:///{tmp_path}/state.db"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_first_failed_delivery_logs_one_warning_saying_what_is_kept_where(
    refused_url: str, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The default client on a refused port: one WARNING (URL, reason, 20 kept where), counted."""
    caplog.set_level(logging.DEBUG, logger="pqlsdk")
    client = pqlsdk.Client(store=store_url(kind, tmp_path), endpoint=refused_url, write_key="k")
    for i in range(20):
        client.track("u1", "tick", {"i": i})
    wait_until(lambda: bool(pqlsdk_records(caplog, logging.WARNING)))
    time.sleep(1.5)  # the default retry policy tries again within this; no new warning
    warnings = pqlsdk_records(caplog, logging.WARNING)
    kept = (
        "20 message(s) kept in memory (lost if the process ends before delivery), retrying"
        if kind == "memory"
        else f"20 message(s) kept in the SQLite outbox at {tmp_path}/state.db, retrying"
    )
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"delivery to collector {refused_url}/v1/batch failed (")
    assert "Connection refused" in warnings[0]
    assert warnings[0].endswith(kept)
    assert client.stats().errors["delivery_failed"] >= 2
    client.close(timeout=0)


def test_the_recovery_is_logged_once_with_the_failed_attempts(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    """The collector comes back: one INFO line counts every attempt that failed meanwhile."""
    caplog.set_level(logging.INFO, logger="pqlsdk")
    collector.stop()
    client = pqlsdk.Client(
        store="memory://", endpoint=collector.url, write_key=collector.write_key, delivery=FAST
    )
    client.track("u1", "tick")
    wait_until(lambda: client.stats().errors.get("delivery_failed", 0) >= 3)
    collector.start()
    wait_until(lambda: client.stats().delivered == 1)
    failed = client.stats().errors["delivery_failed"]
    infos = [m for m in pqlsdk_records(caplog, logging.INFO) if "reachable again" in m]
    assert infos == [
        f"collector {collector.url}/v1/batch is reachable again after {failed} failed "
        f"attempt(s) over {infos[0].rsplit('over ', 1)[1]}"
    ]
    assert len(pqlsdk_records(caplog, logging.WARNING)) == 1
    client.close()


def test_close_with_a_memory_queue_says_what_is_lost_and_counts_it(
    refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """close() leaving 20 in memory: a WARNING says they are lost; dropped counts them."""
    client = tracking("memory://", refused_url, 20)
    assert client.close(timeout=0.3).pending == 20
    assert (
        "dropped 20 message(s) [undelivered_at_close, 20 so far]: close(): not delivered to "
        f"collector {refused_url}/v1/batch, and a memory queue is lost with the process"
    ) in pqlsdk_records(caplog, logging.WARNING)
    assert client.stats().dropped == {"undelivered_at_close": 20}


def test_close_with_a_sqlite_outbox_says_they_are_sent_at_the_next_start(
    refused_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """close() leaving 20 in the outbox: a WARNING says where, and that the next start sends."""
    client = tracking(f"sqlite:///{tmp_path}/s.db", refused_url, 20)
    assert client.close(timeout=0.3).pending == 20
    assert (
        f"close(): 20 message(s) not delivered to collector {refused_url}/v1/batch: "
        f"kept in the SQLite outbox at {tmp_path}/s.db, sent at the next start"
    ) in pqlsdk_records(caplog, logging.WARNING)
    assert client.stats().dropped == {}


def test_a_flush_that_leaves_messages_waiting_says_so_once_a_minute(
    refused_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """flush() returning pending=5 logs how many and where; a second flush right after does not."""
    client = tracking(f"sqlite:///{tmp_path}/s.db", refused_url, 5)
    assert client.flush(timeout=0.2).pending == 5
    assert client.flush(timeout=0.1).pending == 5
    flushes = [m for m in pqlsdk_records(caplog, logging.WARNING) if m.startswith("flush()")]
    assert flushes == [
        f"flush() returned with 5 message(s) not yet delivered to collector "
        f"{refused_url}/v1/batch: still waiting in the SQLite outbox at {tmp_path}/s.db"
    ]
    client.close(timeout=0)


class UncountableOutbox(SQLiteStore):
    """A SQLite store whose outbox cannot be counted the first ``faults`` times (a disk fault)."""

    faults = 1

    def outbox_size(self) -> int:
        if self.faults:
            self.faults -= 1
            raise StoreError("sqlite store: read failed: disk I/O error")
        return super().outbox_size()


def test_an_outbox_that_cannot_be_counted_at_open_is_counted_not_raised(tmp_path: Path) -> None:
    """Looking for leftovers at construction fails once: counted as a store error, no raise."""
    transport = RecordingTransport()
    client = pqlsdk.Client(
        store=UncountableOutbox(tmp_path / "s.db"),
        transport=transport,
        delivery=pqlsdk.Delivery(durability="sync", flush_interval=0.05),
    )
    assert client.stats().errors == {"store_error": 1}
    client.track("u1", "tick")
    wait_until(lambda: len(transport.messages) == 1)
    client.close(timeout=0)


def test_a_failure_whose_outbox_cannot_be_counted_is_still_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first failure's warning says where messages are kept even when it cannot say how many."""
    counters = Counters()
    log = DeliveryLog(
        "http://c/v1/batch",
        SQLiteOutbox(UncountableOutbox(tmp_path / "s.db"), lease=60),
        counters,
    )
    log.failed("down")
    assert pqlsdk_records(caplog, logging.WARNING) == [
        "delivery to collector http://c/v1/batch failed (down): messages kept in the SQLite "
        f"outbox at {tmp_path}/s.db, retrying"
    ]
