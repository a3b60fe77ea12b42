"""The intake: calls return at once, state is applied off the request path, reads see it.

Most tests go through the public ``Client``; the intake is reached directly only to
hold messages pending (a long ``gather``), to see how many wait, or to drive the
``Intake`` class itself where the client offers no handle (bounds, faults, timing).
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk._intake import Intake
from pqlsdk.messages import Track
from pqlsdk.stores import MemoryStore, Record, Written, open_store

from .conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
NOW = "2026-03-15T12:00:00Z"


def held(client: pqlsdk.Client, gather: float = 5.0) -> Intake:
    """Return the client's intake, its thread made to sit on messages for ``gather`` s.

    Set before the first call (the thread starts lazily and reads ``gather`` each
    time it wakes), so whatever the client accepts stays pending until a read,
    ``flush()``, ``close()`` or exit applies it.
    """
    intake = client._recorder.intake
    assert intake is not None
    intake._gather = gather
    return intake


def tracked(store: MemoryStore, key: str, subject: str | None = None) -> list[Any]:
    """``properties[key]`` of the tracks ``store`` logged (for ``subject``), in log order."""
    return [m.properties[key] for m in store.messages(subject) if isinstance(m, Track)]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True


# -- read-your-writes ------------------------------------------------------------


def _checkout(client: pqlsdk.Client) -> None:
    client.track("u", "core_workflow_completed")
    client.track("u", "checkout_started")


def _trial_ending(client: pqlsdk.Client) -> None:
    ends = client.clock.now() + timedelta(days=2)
    client.identify("u", {"plan": "trial", "trial_ends_at": ends.isoformat()})


# Each read, what to call before it, and what it shows once the call is applied.
READS: list[tuple[str, Callable[[pqlsdk.Client], None], Callable[[pqlsdk.Client], Any], Any]] = [
    (
        "user",
        lambda c: c.track("u", "core_workflow_completed"),
        lambda c: getattr(c.user("u"), "tracks", None),
        1,
    ),
    (
        "score",
        _checkout,
        lambda c: (c.score("u").score, c.score("u").tier),
        (40.0, "warm"),
    ),
    ("stats", lambda c: c.track("u", "e"), lambda c: c.stats().recorded, 1),
    ("decide", _trial_ending, lambda c: getattr(c.decide("u"), "kind", None), "trial_ending"),
    (
        "gate",
        lambda c: c.identify("u", {"plan": "business"}),
        lambda c: c.gate("u", "sso").allowed,
        True,
    ),
    (
        "account",
        lambda c: c.group("u", "acme", {"employees": 120}),
        lambda c: getattr(c.account("acme"), "traits", None),
        {"employees": 120},
    ),
    (
        "score_account",
        lambda c: c.group("u", "acme"),
        lambda c: c.score_account("acme").members,
        {"u": "cold"},
    ),
    ("store", lambda c: c.track("u", "e"), lambda c: c.store.count(), 1),
]


@pytest.mark.parametrize(
    ("write", "read", "expected"), [r[1:] for r in READS], ids=[r[0] for r in READS]
)
def test_a_read_right_after_a_call_sees_it(
    write: Callable[[pqlsdk.Client], None], read: Callable[[pqlsdk.Client], Any], expected: Any
) -> None:
    """The call returns before it is applied, yet the client's next read sees it."""
    with pqlsdk.Client(store="memory://", clock=pqlsdk.FixedClock(NOW), rules=PLAYBOOK) as client:
        intake = held(client)
        write(client)
        assert intake.pending() > 0  # accepted, not applied
        assert expected == read(client)
        assert intake.pending() == 0


def test_ingest_keeps_arrival_order_with_earlier_calls() -> None:
    """Messages passed to ingest() land after the calls accepted before it."""
    store = MemoryStore()
    with pqlsdk.Client(store=store, clock=pqlsdk.FixedClock(NOW), retention=None) as client:
        held(client)
        client.track("u", "e", {"n": 1})
        client.ingest([{"type": "track", "userId": "u", "event": "e", "properties": {"n": 2},
                        "timestamp": NOW}])  # fmt: skip
        order = tracked(store, "n", "u")
    assert order == [1, 2]


# -- order, threads, and the intake thread ----------------------------------------


def test_messages_from_many_threads_are_applied_in_the_order_accepted() -> None:
    """Four threads tracking 2,000 events each: every thread's events land in its order."""
    threads, per_thread = 4, 2_000
    store = MemoryStore()
    # One instant for every event: the log is then in arrival (application) order.
    client = pqlsdk.Client(store=store, clock=pqlsdk.FixedClock(NOW), retention=None)
    start = threading.Barrier(threads)

    def produce(name: str) -> None:
        start.wait()
        for i in range(per_thread):
            client.track(name, "tick", {"i": i})

    workers = [threading.Thread(target=produce, args=(f"t{n}",)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = client.stats()
    logged = {f"t{n}": tracked(store, "i", f"t{n}") for n in range(4)}
    client.close()
    assert (stats.recorded, dict(stats.dropped)) == (8_000, {})
    assert {name: list(range(per_thread)) for name in logged} == logged


def test_the_intake_thread_applies_without_any_read() -> None:
    """Accepted messages reach the store within moments even if the client is never read."""
    store = MemoryStore()
    client = pqlsdk.Client(store=store)
    for i in range(100):
        client.track("u", "tick", {"i": i})
    applied = wait_for(lambda: store.count() == 100, timeout=5.0)  # the store itself: no drain
    threads = [t.name for t in threading.enumerate()]
    client.close()
    assert applied, f"{store.count()} of 100 applied"
    assert "pqlsdk-intake" in threads


def test_a_bad_event_raises_at_the_call_in_strict_mode() -> None:
    """A strict client refuses a bad event in track() itself."""
    with (
        pqlsdk.Client(store="memory://", strict=True) as client,
        pytest.raises(pqlsdk.InvalidMessageError),
    ):
        client.track("u", "")


def test_a_bad_event_is_counted_at_the_call_before_any_apply() -> None:
    """A non-strict client counts the drop in track() itself; nothing is queued for it."""
    with pqlsdk.Client(store="memory://") as client:
        intake = held(client)
        client.track("u", "good")
        client.track("u", "")  # no event name
        client.track(None, "e")  # no identity
        counted = client._counters.snapshot()  # what stats() reports, without applying
        waiting = intake.pending()
    assert (
        dict(counted.dropped),
        counted.recorded,
        waiting,
    ) == ({"invalid": 1, "missing_identity": 1}, 0, 1)


# -- callbacks inside an apply -----------------------------------------------------


BURST = ["core_workflow_completed", "checkout_started", "limit_hit", "demo_requested"]
"""Scores 0, 40 (warm), 70 (hot), 100 (burning) under the playbook, one step each."""


def test_tier_callbacks_read_the_client_from_the_intake_thread() -> None:
    """score() inside on_tier_change neither deadlocks nor sees later messages of the burst."""
    seen: list[tuple[str, float, float, str, str]] = []
    done = threading.Event()

    def on_change(change: pqlsdk.TierChange) -> None:
        if change.model != "playbook":
            return
        now = client.score(change.id)
        seen.append(
            (change.tier, change.score.score, now.score, now.tier, threading.current_thread().name)
        )
        if change.tier == "burning":
            done.set()

    client = pqlsdk.Client(
        store="memory://", clock=pqlsdk.FixedClock(NOW), rules=PLAYBOOK, on_tier_change=on_change
    )
    for event in BURST:
        client.track("u", event)
    reached = done.wait(10)  # no read here: the intake thread applies and calls back
    assert reached, f"callbacks stalled after {seen}"
    client.close()
    assert seen == [
        ("warm", 40.0, 40.0, "warm", "pqlsdk-intake"),
        ("hot", 70.0, 70.0, "hot", "pqlsdk-intake"),
        ("burning", 100.0, 100.0, "burning", "pqlsdk-intake"),
    ]


@pytest.mark.parametrize("applier", ["intake thread", "reader"])
def test_flush_inside_a_tier_callback_returns_at_once(applier: str) -> None:
    """flush() from on_tier_change returns without waiting for the apply it is inside.

    Messages are still pending behind the one being applied, so a flush that
    waited for them would wait for itself until its timeout.
    """
    took: list[float] = []

    def on_change(change: pqlsdk.TierChange) -> None:
        started = time.monotonic()
        client.flush(timeout=3.0)
        took.append(time.monotonic() - started)

    client = pqlsdk.Client(
        store="memory://", clock=pqlsdk.FixedClock(NOW), rules=PLAYBOOK, on_tier_change=on_change
    )
    intake = held(client, gather=0.0 if applier == "intake thread" else 5.0)
    client.track("u", "core_workflow_completed")
    client.track("u", "checkout_started")  # the crossing to warm
    for i in range(300):
        client.track("u", "tick", {"i": i})
    if applier == "reader":
        client.user("u")  # this thread applies, and calls back
    assert wait_for(lambda: len(took) == 1), "no tier change reported"
    client.close()
    assert intake.pending() == 0
    assert took[0] < 1.0


def test_flush_waits_for_what_was_accepted_before_it() -> None:
    """flush() returns once the intake thread has applied every message accepted earlier."""
    store = MemoryStore()
    client = pqlsdk.Client(store=store)
    intake = held(client, gather=0.2)
    for i in range(500):
        client.track("u", "tick", {"i": i})
    before = intake.pending()
    client.flush()
    after = store.count()  # the store itself: no read drains for flush
    client.close()
    assert (before, after) == (500, 500)


def test_flush_gives_up_at_its_timeout() -> None:
    """settle() returns False at its deadline when the intake thread cannot get there."""
    release = threading.Event()

    def stuck(chunk: list[bytes]) -> None:
        release.wait(10)

    intake = Intake(stuck, gather=0.0)
    intake.put(b"a")
    assert wait_for(lambda: intake.pending() == 0)  # the thread took it and is stuck
    intake.put(b"b")
    started = time.monotonic()
    reached = intake.settle(time.monotonic() + 0.1)
    took = time.monotonic() - started
    release.set()
    intake.close()
    assert (reached, 0.1 <= took < 2.0) == (False, True)


# -- bounds and faults, on the Intake itself ---------------------------------------


def test_a_slow_apply_bounds_pending_and_loses_nothing() -> None:
    """Producers faster than the apply are slowed to its pace: pending stays bounded."""
    bound, producers, each = 20, 4, 300
    applied: list[bytes] = []
    peaks: list[int] = []

    def slow(chunk: list[bytes]) -> None:
        peaks.append(intake.pending())
        time.sleep(0.0005 * len(chunk))
        applied.extend(chunk)

    intake = Intake(slow, max_pending=bound)

    def produce(n: int) -> None:
        for i in range(each):
            intake.put(f"{n}:{i}".encode())
            peaks.append(intake.pending())

    workers = [threading.Thread(target=produce, args=(n,)) for n in range(producers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    intake.close()
    by_producer = {n: [int(m.split(b":")[1]) for m in applied if m.startswith(b"%d:" % n)]
                   for n in range(producers)}  # fmt: skip
    assert max(peaks) <= bound + producers
    assert {n: list(range(each)) for n in range(producers)} == by_producer


def test_a_producer_the_intake_thread_does_not_keep_up_with_applies_a_chunk_itself() -> None:
    """At max_pending the call waits for the intake thread, then applies a chunk itself."""
    applied: list[tuple[bytes, str]] = []
    intake = Intake(
        lambda chunk: applied.extend((m, threading.current_thread().name) for m in chunk),
        max_pending=5,
        gather=5.0,  # the intake thread is up, but dawdles
    )
    for i in range(4):
        intake.put(b"%d" % i)
    started = time.monotonic()
    intake.put(b"4")  # the fifth: no room
    took = time.monotonic() - started
    me = threading.current_thread().name
    intake.close()
    assert [(b"%d" % i, me) for i in range(5)] == applied
    assert 0.05 <= took < 2.0  # waited _THROTTLE for the thread first


def test_a_full_intake_without_a_thread_applies_in_the_caller() -> None:
    """With room for one message, each put applies at once in the calling thread."""
    applied: list[tuple[bytes, str]] = []
    intake = Intake(
        lambda chunk: applied.extend((m, threading.current_thread().name) for m in chunk),
        max_pending=1,
    )
    intake.put(b"a")
    intake.put(b"b")
    me = threading.current_thread().name
    intake.close()
    assert [(b"a", me), (b"b", me)] == applied
    assert intake._thread is None


def test_a_message_put_during_an_apply_waits_for_the_next_settle() -> None:
    """A put from inside an apply (a callback that tracks) is applied later, in order."""
    applied: list[bytes] = []

    def apply(chunk: list[bytes]) -> None:
        applied.extend(chunk)
        if chunk == [b"a"]:
            intake.put(b"follow-up")  # no room and no thread: it must wait

    intake = Intake(apply, max_pending=1)
    intake.put(b"a")
    assert (applied, intake.pending()) == ([b"a"], 1)
    assert intake.settle(time.monotonic() + 5.0)  # starts the intake thread for it
    intake.close()
    assert applied == [b"a", b"follow-up"]


def test_an_apply_that_raises_is_logged_and_the_intake_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in apply loses its chunk, is logged on "pqlsdk" and counted; later messages apply."""
    applied: list[bytes] = []
    dropped: list[tuple[str, str, int]] = []

    def apply(chunk: list[bytes]) -> None:
        if b"bad" in chunk:
            raise RuntimeError("a bug")
        applied.extend(chunk)

    intake = Intake(apply, gather=0.0, on_drop=lambda *drop: dropped.append(drop))
    intake.put(b"bad")
    assert intake.settle(time.monotonic() + 5.0)
    intake.put(b"good")
    assert intake.settle(time.monotonic() + 5.0)
    intake.close()
    logged = [r for r in caplog.records if r.name == "pqlsdk"]
    assert applied == [b"good"]
    assert [(r.levelno, r.getMessage()) for r in logged] == [
        (logging.ERROR, "pqlsdk: applying 1 message(s) failed")
    ]
    assert logged[0].exc_info is not None
    assert dropped == [
        ("apply_error", "applying the message(s) failed (RuntimeError), see the log", 1)
    ]


# -- fork, exit and close ----------------------------------------------------------


def test_a_forked_child_forgets_its_parents_pending_messages() -> None:
    """The child applies only its own messages; the parent applies what it had pending."""
    store = MemoryStore()
    client = pqlsdk.Client(store=store)
    intake = held(client)
    client.track("parent", "tick", {"who": "parent-before"})
    assert intake.pending() == 1
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            forgot = intake.pending() == 0
            client.track("child", "tick", {"who": "child"})
            client.close()
            mine = tracked(store, "who") == ["child"]
            code = 0 if (forgot, mine) == (True, True) else 2 if forgot else 3
        finally:
            os._exit(code)
    client.track("parent", "tick", {"who": "parent-after"})
    client.close()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert tracked(store, "who") == ["parent-before", "parent-after"]


def test_an_intake_reset_after_fork_starts_over() -> None:
    """after_fork() drops what was pending and the next put starts a thread of its own."""
    applied: list[bytes] = []
    intake = Intake(applied.extend, gather=5.0)
    intake.put(b"parent's")
    parents = intake._thread
    intake.after_fork()
    intake._gather = 0.0
    intake.put(b"child's")
    assert intake.settle(time.monotonic() + 5.0)
    intake.close()
    assert (applied, intake._thread is not parents) == ([b"child's"], True)


EXIT_WITHOUT_CLOSE = """
    import sys, pqlsdk
    client = pqlsdk.Client(store=sys.argv[1])
    client._recorder.intake._gather = 60.0  # the intake thread never gets to them: exit must
    for i in range(int(sys.argv[2])):
        client.track(f"u{i % 10}", "tick", {"i": i})
    print(client._recorder.intake.pending())
    # no flush(), no close()
"""


def test_messages_pending_at_exit_reach_the_store(tmp_path: Path) -> None:
    """A process that exits without close() or flush() still records every accepted event."""
    url = f"sqlite:///{tmp_path}/state.db"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_WITHOUT_CLOSE), url, "900"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    store = open_store(url)
    try:
        recorded = store.count()
    finally:
        store.close()
    assert (result.stdout.strip(), recorded) == ("900", 900)  # all pending at exit


def test_close_applies_what_is_pending_then_drops_later_calls() -> None:
    """close() records every accepted message; a track after it is dropped at the call."""
    store = MemoryStore()
    client = pqlsdk.Client(store=store)
    intake = held(client)
    for i in range(3):
        client.track("u", "tick", {"i": i})
    assert intake.pending() == 3
    client.close()
    recorded = store.count()
    client.track("u", "late")
    counted = client._counters.snapshot()  # at the call: not queued for a later read
    assert (recorded, intake.pending(), dict(counted.dropped)) == (3, 0, {"closed": 1})
    stats = client.stats()
    assert (stats.recorded, dict(stats.dropped), store.count()) == (3, {"closed": 1}, 3)


@pytest.mark.parametrize(
    "options",
    [
        {"strict": True},
        {"delivery": pqlsdk.Delivery(mode="caller")},
        {"delivery": pqlsdk.Delivery(durability="sync")},
    ],
    ids=["strict", "caller mode", "sync durability"],
)
def test_inline_clients_apply_in_the_call(options: dict[str, Any]) -> None:
    """Strict clients, caller-mode delivery and sync durability record before track() returns."""
    store = MemoryStore()
    with pqlsdk.Client(store=store, **options) as client:
        client.track("u", "e")
        recorded = store.count()  # the store itself: no read applies anything
        intake = client._recorder.intake
    assert (recorded, intake) == (1, None)


# -- a chunk in flight ------------------------------------------------------------


class HeldStore(MemoryStore):
    """A memory store whose first write waits until released (a slow disk, a busy lock)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def record(
        self, records: Iterable[Record], *, outbox: bool = False, written: Written | None = None
    ) -> int:
        self.entered.set()
        self.release.wait(10)
        return super().record(records, outbox=outbox, written=written)


def test_a_read_waits_for_the_chunk_the_intake_thread_is_applying() -> None:
    """A read while the intake thread applies the last message still sees that message."""
    store = HeldStore()
    client = pqlsdk.Client(store=store)
    client.track("u", "e")
    assert store.entered.wait(10)  # the intake thread took it; nothing is pending
    threading.Timer(0.2, store.release.set).start()
    user = client.user("u")
    client.close()
    assert user is not None


def test_flush_waits_for_the_chunk_the_intake_thread_is_applying() -> None:
    """flush() returns only after the message the intake thread is applying is recorded."""
    store = HeldStore()
    client = pqlsdk.Client(store=store)
    client.track("u", "e")
    assert store.entered.wait(10)
    threading.Timer(0.2, store.release.set).start()
    client.flush()
    recorded = store.count()
    client.close()
    assert recorded == 1


# -- clients dropped without close() ----------------------------------------------


def test_an_unclosed_client_is_garbage_collected() -> None:
    """A client dropped without close() is collected (its exit hooks hold it weakly)."""
    client = pqlsdk.Client(store="memory://")
    client.track("u", "e")
    client.flush()  # applied: the intake lets go of the client
    ref = weakref.ref(client)
    del client
    deadline = time.monotonic() + 5
    while ref() is not None and time.monotonic() < deadline:
        gc.collect()  # the intake thread may still be returning from the apply
        time.sleep(0.01)
    assert ref() is None


def test_a_client_with_pending_messages_lives_until_they_are_applied() -> None:
    """Dropping a client right after track() loses nothing: the intake holds its write path."""
    store = MemoryStore()
    client = pqlsdk.Client(store=store)
    # The intake waits a second before applying: time enough, on a loaded machine, for
    # the collection below to run while the message still waits (0.2 s was not, once).
    client._recorder.intake._gather = 1.0  # type: ignore[union-attr]
    client.track("u", "e")
    ref = weakref.ref(client._recorder)  # what applies the messages: the client's recorder
    del client
    gc.collect()
    held = ref() is not None
    deadline = time.monotonic() + 10
    while store.count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (held, store.count()) == (True, 1)


def test_starting_twice_keeps_one_thread() -> None:
    """A second start (two first puts racing) finds the thread running and leaves it."""
    intake = Intake(lambda chunk: None)
    intake.put(b"x")
    thread = intake._thread
    intake._start()
    assert intake._thread is thread
    intake.close()


def test_a_read_applies_the_backlog_256_messages_at_a_time() -> None:
    """A drain of the whole backlog takes 256 messages per apply; a limited one, 64."""
    sizes: list[int] = []
    intake = Intake(lambda chunk: sizes.append(len(chunk)))
    intake._pending.extend(b"%d" % i for i in range(700))
    intake.drain(limit=100)
    assert sizes == [64, 36]
    sizes.clear()
    intake.drain()
    assert sizes == [256, 256, 88]
    intake.close()
