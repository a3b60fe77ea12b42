"""Pacing of pqlsdk's repeated log lines: once a minute per reason, with the count.

An injected monotonic clock moves time instead of waiting minutes.
"""

from __future__ import annotations

import logging

import pytest

from pqlsdk import messages
from pqlsdk._delivery._log import DeliveryLog
from pqlsdk._delivery._outbox import MemoryOutbox
from pqlsdk._exceptions import StoreError
from pqlsdk._stats import Counters
from pqlsdk.stores._outage import Outage

from .conftest import SENT_AT


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


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
    counters.dropped("not_json", "bad again", count=2)
    assert warnings(caplog) == [
        "dropped 1 message(s) [queue_full, 1 so far]: full",
        "dropped 1 message(s) [not_json, 1 so far]: bad",
    ]
    ticker.now += 11  # 60.5 s after the first lines
    counters.dropped("queue_full", "still full")  # also reports not_json, whose minute is over
    assert warnings(caplog)[2:] == [
        "dropped 100 message(s) [queue_full, 101 so far]: still full",
        "dropped 2 message(s) [not_json, 3 so far]: bad again",
    ]
    ticker.now += 10
    counters.dropped("queue_full", "full")
    ticker.now += 51
    counters.snapshot()  # stats() reports what was held back past its minute
    counters.error("store_error", "locked")
    counters.error("store_error", "locked")
    counters.log_rest()  # at close: whatever is still held back
    assert warnings(caplog)[4:] == [
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


def test_a_stores_full_buffer_is_recalled_once_a_minute_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis outage's full buffer: logged at once, then a line a minute, the rest at close."""
    ticker = Ticker()

    def away() -> None:
        raise StoreError("unreachable")

    outage = Outage(
        "redis://h:6379/0",
        capacity=1,
        probe_interval=3600,
        probe=away,
        write=lambda records: 0,
        monotonic=ticker,
    )
    record = (messages.Track(user_id="u", event="e", timestamp=SENT_AT), b"{}")
    outage.began(OSError("refused"), "write")
    outage.keep([record, record])  # one kept, one dropped
    outage.keep([record] * 3)
    ticker.now += 60
    outage.keep([record])
    outage.keep([record] * 2)
    outage.finish()
    assert warnings(caplog)[1:] == [
        "redis://h:6379/0: the local buffer is full (1 messages); 1 new message(s) dropped "
        "[buffer_full, 1 so far] until the store returns",
        "redis://h:6379/0: the local buffer is full (1 messages); 4 new message(s) dropped "
        "[buffer_full, 5 so far] until the store returns",
        "redis://h:6379/0: 2 more message(s) dropped [buffer_full]",
        "redis://h:6379/0 still unreachable: 1 buffered message(s) lost",
    ]
    assert outage.fault_counts().dropped == {"buffer_full": 7}
