"""Delivery failures reach the host's logs and stats: a refused port and a real collector.

Every test captures the ``pqlsdk`` logger. The per-minute rules are checked with
an injected monotonic clock instead of waiting minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk._delivery_log import DeliveryLog
from pqlsdk._outbox import MemoryOutbox
from pqlsdk._retry import RetryPolicy
from pqlsdk._stats import Counters

from .collector import Collector

FAST = pqlsdk.Delivery(flush_interval=0.05, retry=RetryPolicy(base=0.05, cap=0.2))


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pqlsdk_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pqlsdk" and r.levelno == level]


def wait_until(done: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


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
    wait_until(lambda: pqlsdk_records(caplog, logging.WARNING))
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
    client = pqlsdk.Client(store="memory://", endpoint=refused_url, write_key="k", delivery=FAST)
    for i in range(20):
        client.track("u1", "tick", {"i": i})
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
    client = pqlsdk.Client(
        store=f"sqlite:///{tmp_path}/s.db", endpoint=refused_url, write_key="k", delivery=FAST
    )
    for i in range(20):
        client.track("u1", "tick", {"i": i})
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
    client = pqlsdk.Client(
        store=f"sqlite:///{tmp_path}/s.db", endpoint=refused_url, write_key="k", delivery=FAST
    )
    for i in range(5):
        client.track("u1", "tick", {"i": i})
    assert client.flush(timeout=0.2).pending == 5
    assert client.flush(timeout=0.1).pending == 5
    flushes = [m for m in pqlsdk_records(caplog, logging.WARNING) if m.startswith("flush()")]
    assert flushes == [
        f"flush() returned with 5 message(s) not yet delivered to collector "
        f"{refused_url}/v1/batch: still waiting in the SQLite outbox at {tmp_path}/s.db"
    ]
    client.close(timeout=0)


def test_drops_after_the_first_are_logged_once_a_minute_per_reason_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """First drop of a reason: at once. Then quiet for a minute, then one line with the count."""
    ticker = Ticker()
    counters = Counters(monotonic=ticker)
    counters.dropped("queue_full", "full")
    counters.dropped("not_json", "bad")
    for _ in range(99):
        ticker.now += 0.5
        counters.dropped("queue_full", "full")
    assert pqlsdk_records(caplog, logging.WARNING) == [
        "dropped 1 message(s) [queue_full, 1 so far]: full",
        "dropped 1 message(s) [not_json, 1 so far]: bad",
    ]
    ticker.now += 11  # 60.5 s after the first line
    counters.dropped("queue_full", "still full")
    counters.dropped("not_json", "bad")  # its minute is over too: logged with its count
    ticker.now += 60
    counters.snapshot()  # stats() reports what was held back past its minute
    assert pqlsdk_records(caplog, logging.WARNING)[2:] == [
        "dropped 100 message(s) [queue_full, 101 so far]: still full",
        "dropped 1 message(s) [not_json, 2 so far]: bad",
    ]
    counters.dropped("queue_full", "full")
    counters.error("store_error", "locked")
    counters.error("store_error", "locked")
    counters.log_rest()  # at close: whatever is still held back
    assert pqlsdk_records(caplog, logging.WARNING)[4:] == [
        "dropped 1 message(s) [queue_full, 102 so far]: full",
        "error [store_error, 1 so far]: locked",
        "error [store_error, 2 so far]: locked",
    ]


def test_a_long_outage_is_recalled_once_a_minute_and_flapping_is_not_announced_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reminders come once a minute; an outage within a minute of the last one stays quiet."""
    caplog.set_level(logging.INFO, logger="pqlsdk")
    ticker = Ticker()
    counters = Counters(monotonic=ticker)
    outbox = MemoryOutbox(
        max_messages=10, on_full="drop_newest", block_timeout=0, counters=counters
    )
    outbox.put([("m1", b"{}")])
    log = DeliveryLog("http://c/v1/batch", outbox, counters)
    for _ in range(3):
        ticker.now += 10
        log.failed("down")
    ticker.now += 41  # 61 s after the first failure
    log.failed("down")
    log.answered()
    kept = "1 message(s) kept in memory (lost if the process ends before delivery), retrying"
    assert [r.getMessage() for r in caplog.records] == [
        f"delivery to collector http://c/v1/batch failed (down): {kept}",
        f"collector http://c/v1/batch still failing after 61 s and 4 attempt(s) (down): {kept}",
        "collector http://c/v1/batch is reachable again after 4 failed attempt(s) over 61.0 s",
    ]
    ticker.now += 10
    log.failed("down again")  # a new outage, 71 s after the last announced one: announced
    log.answered()
    ticker.now += 5
    log.failed("flap")  # 5 s later: counted, not announced
    log.answered()
    assert len(caplog.records) == 5
    assert counters.snapshot().errors == {"delivery_failed": 6}
