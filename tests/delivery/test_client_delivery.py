"""The client delivering to a real collector on 127.0.0.1: nothing lost, nothing hangs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk._retry import RetryPolicy
from pqlsdk.testing import RecordingTransport
from pqlsdk.transports import AsyncHTTPTransport

from .collector import Collector

FAST = pqlsdk.Delivery(flush_at=50, flush_interval=0.05, retry=RetryPolicy(base=0.05, cap=0.3))


def client_for(collector: Collector, store: str = "memory://", **options: Any) -> pqlsdk.Client:
    options.setdefault("delivery", FAST)
    return pqlsdk.Client(
        store=store, endpoint=collector.url, write_key=collector.write_key, **options
    )


def events(collector: Collector, name: str = "tick") -> list[dict[str, Any]]:
    return [m for m in collector.messages if m.get("event") == name]


def run(
    script: str, *args: object, timeout: float = 120, traced: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; ``traced=False`` keeps coverage out of it.

    Load tests measure memory over a million calls, not code paths: coverage's
    tracing would only make them many times slower.
    """
    env = None if traced else {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        env=env,
    )


EXIT_WITHOUT_FLUSH = """
    import sys, pqlsdk
    url, key, store, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = pqlsdk.Client(store=store, endpoint=url, write_key=key)
    for i in range(count):
        client.track(f"u{i % 10}", "tick", {"i": i})
    # no flush(), no close(): the atexit drain must deliver everything
"""


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_exit_without_flush_delivers_all_10000(
    collector: Collector, tmp_path: Path, store: str
) -> None:
    """10,000 tracked events and a plain exit: the collector has all of them."""
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/exit.db"
    run(EXIT_WITHOUT_FLUSH, collector.url, collector.write_key, url, 10_000)
    received = events(collector)
    assert sorted(m["properties"]["i"] for m in received) == list(range(10_000))
    assert len(collector.unique_message_ids()) == len(collector.messages)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_an_outage_then_recovery_loses_nothing(
    collector: Collector, tmp_path: Path, store: str
) -> None:
    """The collector answers 503 for two seconds, then refuses connections, then is back."""
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/o.db"
    collector.outage(2.0)
    with client_for(collector, url) as client:
        for i in range(300):
            client.track("u", "tick", {"i": i})
        time.sleep(2.2)
        collector.stop()
        for i in range(300, 400):
            client.track("u", "tick", {"i": i})
        time.sleep(0.5)
        collector.start()
        result = client.flush(timeout=20)
        stats = client.stats()
    assert (result.pending, stats.delivered, stats.dropped_total) == (0, 400, 0)
    unique = {m["messageId"]: m for m in events(collector)}
    assert sorted(m["properties"]["i"] for m in unique.values()) == list(range(400))


def test_429_retry_after_is_honoured(collector: Collector) -> None:
    """A 429 with Retry-After: 2 holds the next attempt for at least two seconds."""
    collector.set_status(429, retry_after="2", times=1)
    with client_for(collector) as client:
        client.track("u", "tick")
        started = time.monotonic()
        result = client.flush(timeout=10)
        waited = time.monotonic() - started
    assert (result.delivered, collector.requests) == (1, 2)
    assert waited >= 2.0


def test_400_is_dropped_counted_and_reported(collector: Collector) -> None:
    """A 400 is not retried: the batch is dropped, counted and passed to on_error."""
    errors: list[pqlsdk.DeliveryError] = []
    collector.set_status(400, times=1)
    with client_for(collector, on_error=errors.append) as client:
        client.track("u", "tick")
        client.track("u", "tick")
        result = client.flush(timeout=5)
        stats = client.stats()
    assert (result.pending, collector.requests, collector.messages) == (0, 1, [])
    assert dict(stats.dropped) == {"rejected": 2}
    assert [type(e).__name__ for e in errors] == ["BatchRejectedError"]
    assert isinstance(errors[0], pqlsdk.BatchRejectedError)
    assert errors[0].status == 400


def test_a_slow_collector_never_blocks_track(collector: Collector) -> None:
    """With a collector that takes 3 s per request, track() still returns at once."""
    collector.set_delay(3.0)
    with client_for(collector) as client:
        slowest = 0.0
        for i in range(2_000):
            started = time.monotonic()
            client.track("u", "tick", {"i": i})
            slowest = max(slowest, time.monotonic() - started)
        started = time.monotonic()
        result = client.flush(timeout=0.5)
        flushed_in = time.monotonic() - started
        collector.set_delay(0)
    assert slowest < 1.0  # far below the collector's 3 s: the caller never waited on it
    assert result.pending > 0
    assert flushed_in < 1.5  # flush returned at its timeout, not when the collector did


def test_close_returns_within_its_timeout_when_the_collector_hangs(collector: Collector) -> None:
    """close() gives up at its timeout; a durable outbox keeps what it could not send."""
    collector.set_delay(10.0)
    client = client_for(collector)
    client.track("u", "tick")
    time.sleep(0.2)  # the sender is now stuck inside the request
    started = time.monotonic()
    result = client.close(timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert result.pending == 1
    collector.set_delay(0)


def test_flush_from_the_sender_thread_returns_at_once(collector: Collector) -> None:
    """on_error runs on the sender thread; a flush() from there must not wait on itself."""
    results: list[pqlsdk.FlushResult] = []
    client: pqlsdk.Client

    def on_error(error: pqlsdk.DeliveryError) -> None:
        results.append(client.flush(timeout=30))

    collector.set_status(400, times=1)
    client = client_for(collector, on_error=on_error)
    client.track("u", "tick")
    started = time.monotonic()
    client.flush(timeout=5)
    client.close()
    assert time.monotonic() - started < 5
    assert results == [pqlsdk.FlushResult(0, 0)]


SIGNAL_FLUSH = """
    import signal, sys, time, pqlsdk
    from pqlsdk._retry import RetryPolicy
    delivery = pqlsdk.Delivery(flush_at=50, flush_interval=0.05, max_queue=1_000_000,
                               retry=RetryPolicy(base=0.05, cap=0.3))
    client = pqlsdk.Client(store="memory://", endpoint=sys.argv[1], write_key=sys.argv[2],
                           delivery=delivery)
    flushed = []

    def handler(signum, frame):
        flushed.append(client.flush(timeout=0.005))  # shorter than the timer: no nesting

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    deadline = time.monotonic() + 0.5
    i = 0
    while time.monotonic() < deadline:
        client.track("u", "tick", {"i": i})
        i += 1
    signal.setitimer(signal.ITIMER_REAL, 0)
    print(i, len(flushed), client.close(timeout=10).pending)
"""


def test_flush_from_a_signal_handler_does_not_deadlock(collector: Collector) -> None:
    """A SIGALRM handler that flushes, firing while the main thread tracks, completes.

    In its own untraced process: coverage's tracer takes a lock of its own when it
    meets new code, and a handler interrupting that very thread would wait on it.
    """
    done = run(SIGNAL_FLUSH, collector.url, collector.write_key, timeout=60, traced=False)
    tracked, flushes, pending = map(int, done.stdout.split())
    assert (flushes > 0, pending) == (True, 0)
    assert len(collector.unique_message_ids()) == tracked


def test_fork_after_the_first_event_sends_nothing_twice(collector: Collector) -> None:
    """Parent and child each deliver their own events; the child sends none of the parent's."""
    client = client_for(collector)
    client.track("parent", "tick", {"who": "parent-before"})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            client.track("child", "tick", {"who": "child"})
            code = 0 if client.close(timeout=10).pending == 0 else 1
        finally:
            os._exit(code)
    client.track("parent", "tick", {"who": "parent-after"})
    result = client.close(timeout=10)
    _, status = os.waitpid(pid, 0)
    assert (os.waitstatus_to_exitcode(status), result.pending) == (0, 0)
    assert sorted(m["properties"]["who"] for m in events(collector)) == [
        "child",
        "parent-after",
        "parent-before",
    ]


KILLED = """
    import sys, time, pqlsdk
    from pqlsdk._retry import RetryPolicy
    url, key, store, durability = sys.argv[1:5]
    delivery = pqlsdk.Delivery(durability=durability, lease=1.0,
                               retry=RetryPolicy(base=0.05, cap=0.2, budget=0.5))
    client = pqlsdk.Client(store=store, endpoint=url, write_key=key, delivery=delivery)
    i = 0
    while True:
        client.track("u", "tick", {"i": i, "at": time.time()})
        i += 1
        if i % 200 == 0:
            print(i, flush=True)
        if durability == "sync" and i == 2000:
            print("done", flush=True)
            time.sleep(3600)
"""

DELIVER_LEFTOVERS = """
    import sys, pqlsdk
    client = pqlsdk.Client(store=sys.argv[3], endpoint=sys.argv[1], write_key=sys.argv[2],
                           delivery=pqlsdk.Delivery(lease=1.0))
    print(client.close(timeout=60).pending)
"""


@pytest.mark.parametrize("durability", ["sync", "buffered"])
def test_sigkill_while_the_collector_is_down(
    collector: Collector, tmp_path: Path, durability: str
) -> None:
    """A tracking process is SIGKILLed while the collector is down; a new one delivers.

    Sync mode loses nothing. Buffered mode loses at most the last buffer window:
    every message older than that is delivered; the test prints how many were lost.
    """
    store = f"sqlite:///{tmp_path}/k.db"
    collector.stop()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED),
            collector.url,
            collector.write_key,
            store,
            durability,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = 0
    started = time.monotonic()
    for line in proc.stdout:
        if line.strip() == "done":
            break  # sync: all 2000 are committed
        if durability == "buffered" and time.monotonic() - started > 1.5:
            break  # buffered: kill it mid-stream
        last = int(line)
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait()
    proc.stdout.close()
    collector.start()
    leftover = run(DELIVER_LEFTOVERS, collector.url, collector.write_key, store)
    assert leftover.stdout.strip() == "0"
    delivered = {m["properties"]["i"]: m["properties"]["at"] for m in events(collector)}
    numbers = sorted(delivered)
    assert numbers == list(range(len(numbers)))  # no holes: only the newest can be missing
    if durability == "sync":
        assert len(numbers) == 2000
        return
    window = pqlsdk.Delivery().buffer_interval
    tracked = max(last, len(numbers))
    lost_at_least = tracked - len(numbers)
    print(
        f"buffered SIGKILL: {len(numbers)} delivered, >= {max(lost_at_least, 0)} lost "
        f"(printed up to {last})"
    )
    # Everything tracked more than one window (plus scheduling slack) before the kill is there.
    newest_delivered = max(delivered.values())
    assert newest_delivered >= killed_at - window - 0.5


MILLION = """
    import resource, sys, pqlsdk
    url, store, deliver = sys.argv[1], sys.argv[2], sys.argv[3] == "deliver"
    options = {"endpoint": url, "write_key": "k"} if deliver else {}
    client = pqlsdk.Client(store=store, retention=None, **options)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(1_000_000):
        client.track("u", "tick", {"i": i})
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    stats = client.stats()
    pending = client.flush(timeout=0).pending if deliver else 0
    print(round(grown), stats.dropped_total, pending)
    import os; os._exit(0)
"""


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_memory_stays_bounded_while_the_collector_is_down(
    collector: Collector, tmp_path: Path, store: str
) -> None:
    """A million events with the collector down: delivery's memory does not grow with them.

    Memory store: the queue stays at its cap and the rest are counted drops (the
    store itself keeps its log in memory, so the run without delivery is the
    baseline). SQLite: the outbox is on disk and nothing is dropped.
    """
    collector.stop()
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/m.db"
    grown, dropped, pending = map(
        int, run(MILLION, collector.url, url, "deliver", timeout=600, traced=False).stdout.split()
    )
    if store == "memory":
        baseline = int(
            run(MILLION, collector.url, url, "local", timeout=600, traced=False).stdout.split()[0]
        )
        print(f"memory store, 1M events: +{grown} MiB with delivery, +{baseline} MiB without")
        assert grown - baseline < 64
        assert (pending, dropped) == (10_000, 990_000)
    else:
        print(f"sqlite store, 1M events: +{grown} MiB")
        assert grown < 64
        assert (pending, dropped) == (1_000_000, 0)


def test_caller_mode_sends_in_the_calling_thread(collector: Collector) -> None:
    """In caller mode there is no sender thread; each flush_at batch goes out at once."""
    delivery = pqlsdk.Delivery(mode="caller", flush_at=2)
    with client_for(collector, delivery=delivery) as client:
        client.track("u", "tick")
        assert collector.messages == []
        client.track("u", "tick")
        assert len(collector.messages) == 2
        client.track("u", "tick")
        assert client.flush(timeout=5) == pqlsdk.FlushResult(1, 0)


def test_pqlsdk_records_reach_the_collector(tmp_path: Path) -> None:
    """Tier crossings, moments shown and outcomes are delivered as track messages."""
    transport = RecordingTransport()
    rules = Path(__file__).resolve().parents[2] / "examples" / "rules" / "playbook.toml"
    with pqlsdk.Client(store="memory://", transport=transport, rules=rules) as client:
        client.identify("u", {"plan": "trial"})
        for name in ("core_workflow_completed", "limit_hit", "checkout_started"):
            client.track("u", name)
        moment = client.decide("u")
        assert moment is not None
        client.record("u", moment.id, "clicked")
        client.flush(timeout=5)
    names = [m.get("event", m["type"]) for m in transport.messages]
    assert names == [
        "identify",
        "core_workflow_completed",
        "limit_hit",
        "pqlsdk_tier_changed",
        "checkout_started",
        "pqlsdk_tier_changed",
        "pqlsdk_moment_shown",
        "pqlsdk_moment_outcome",
    ]
    assert json.loads(json.dumps(transport.messages[-1]["properties"]))["outcome"] == "clicked"


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"endpoint": "http://127.0.0.1:1", "transport": RecordingTransport()}, "either endpoint"),
        ({"write_key": "k"}, "write_key= needs endpoint="),
        ({"delivery": {"flush_at": 1}}, "delivery must be a Delivery"),
    ],
)
def test_delivery_setup_mistakes_fail_at_construction(options: dict[str, Any], text: str) -> None:
    """Conflicting or malformed delivery options are ConfigErrors."""
    with pytest.raises(pqlsdk.ConfigError, match=text):
        pqlsdk.Client(store="memory://", **options)


@pytest.mark.parametrize(
    ("field", "value"),
    [("flush_interval", 0), ("flush_at", 0), ("block_timeout", -1), ("lease", -5)],
)
def test_delivery_options_are_checked(field: str, value: float) -> None:
    """Nonsense batching settings fail loudly with the field's name."""
    with pytest.raises(pqlsdk.ConfigError, match=f"Delivery.{field}"):
        pqlsdk.Delivery(**{field: value})  # type: ignore[arg-type]


TERMINATED = """
    import sys, time, pqlsdk
    client = pqlsdk.Client(store=sys.argv[1], delivery=pqlsdk.Delivery(buffer_interval=30))
    for i in range(3000):
        client.track("u", "tick", {"i": i})
    print("done", flush=True)
    while True:  # short sleeps: see below
        time.sleep(0.05)
"""
# A signal that lands after the interpreter last looked for one but before the sleep's
# system call starts does not interrupt the sleep: CPython runs the handler when the
# sleep ends. With one sleep of an hour, that hung this test once in CI in some
# hundreds of runs; with short ones, the handler runs within 50 ms.


def test_sigterm_commits_buffered_writes(tmp_path: Path) -> None:
    """SIGTERM with buffered durability loses nothing, even with a 30 s buffer window."""
    url = f"sqlite:///{tmp_path}/t.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(TERMINATED), url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "done"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # it still dies of SIGTERM
    proc.stdout.close()
    with pqlsdk.Client(store=url, retention=None) as client:
        user = client.user("u")
        assert user is not None
        assert user.tracks == 3000


def test_an_asyncio_transport_delivers_from_the_event_loop(collector: Collector) -> None:
    """With AsyncHTTPTransport, aflush() sends from the loop, retrying like the thread does."""

    async def main() -> tuple[pqlsdk.FlushResult, pqlsdk.FlushResult, int, bool]:
        transport = AsyncHTTPTransport(collector.url, collector.write_key)
        client = pqlsdk.Client(store="memory://", transport=transport, delivery=FAST)
        for i in range(120):
            client.track("u", "tick", {"i": i})
        before = len(collector.messages)  # nothing leaves without the loop
        collector.set_status(503, times=1)
        first = await client.aflush(timeout=10)
        client.track("u", "tick", {"i": 120})
        assert client.flush(timeout=1) == pqlsdk.FlushResult(0, 1)  # sync flush cannot await
        last = await client.aclose(timeout=10)
        await transport.aclose()
        return first, last, before, isinstance(transport, pqlsdk.transports.Transport)

    first, last, before, looks_sync = asyncio.run(main())
    assert (before, looks_sync) == (0, False)
    assert (first, last) == (pqlsdk.FlushResult(120, 0), pqlsdk.FlushResult(1, 0))
    assert sorted(m["properties"]["i"] for m in events(collector)) == list(range(121))


def test_aflush_without_an_asyncio_transport_runs_in_a_thread(collector: Collector) -> None:
    """With the thread sender, aflush() and aclose() wrap flush() and close() off the loop."""

    async def main() -> pqlsdk.FlushResult:
        client = client_for(collector)
        client.track("u", "tick")
        await client.aflush(timeout=5)
        return await client.aclose(timeout=5)

    assert asyncio.run(main()) == pqlsdk.FlushResult(0, 0)
    assert len(events(collector)) == 1


def test_aflush_commits_a_buffered_store_and_keeps_its_deadline(
    collector: Collector, tmp_path: Path
) -> None:
    """With SQLite, aflush() commits the buffer to the outbox; timeout=0 sends nothing yet."""

    async def main() -> tuple[pqlsdk.FlushResult, pqlsdk.FlushResult]:
        transport = AsyncHTTPTransport(collector.url, collector.write_key)
        client = pqlsdk.Client(store=f"sqlite:///{tmp_path}/a.db", transport=transport)
        for i in range(5):
            client.track("u", "tick", {"i": i})
        waiting = await client.aflush(timeout=0)
        done = await client.aclose(timeout=10)
        await transport.aclose()
        return waiting, done

    assert asyncio.run(main()) == (pqlsdk.FlushResult(0, 5), pqlsdk.FlushResult(5, 0))
