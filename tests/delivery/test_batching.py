"""The batcher and the outboxes in-process, with a recording transport (fast, exact)."""

from __future__ import annotations

import gc
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk import _lifecycle as lifecycle
from pqlsdk import messages
from pqlsdk._delivery import _batcher
from pqlsdk._delivery._batcher import Batcher, Delivery
from pqlsdk._delivery._outbox import MemoryOutbox
from pqlsdk._pacing import HOST, Pacer
from pqlsdk._retry import RetryPolicy
from pqlsdk._stats import Counters
from pqlsdk.stores._outbox import SQLiteOutbox
from pqlsdk.stores.buffered import BufferedStore
from pqlsdk.stores.sqlite import SQLiteStore
from pqlsdk.testing import RecordingTransport
from pqlsdk.transports import Batch

QUICK = RetryPolicy(base=0.01, cap=0.02, budget=0.1)


def items(count: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"m{i}", b'{"i":%d}' % i) for i in range(start, start + count)]


def memory_outbox(limit: int = 5, policy: str = "drop_newest", wait: float = 0.0) -> MemoryOutbox:
    return MemoryOutbox(max_messages=limit, on_full=policy, block_timeout=wait, counters=Counters())  # type: ignore[arg-type]


def test_memory_outbox_drops_newest_when_full() -> None:
    """drop_newest keeps what was queued first and counts the rest."""
    counters = Counters()
    outbox = MemoryOutbox(max_messages=3, on_full="drop_newest", block_timeout=0, counters=counters)
    assert outbox.put(items(5)) == 3
    leased = outbox.take(10, 1_000)
    assert leased is not None
    assert leased.messages == (b'{"i":0}', b'{"i":1}', b'{"i":2}')
    assert dict(counters.snapshot().dropped) == {"queue_full": 2}


def test_memory_outbox_drops_oldest_when_asked() -> None:
    """drop_oldest keeps the newest messages."""
    outbox = memory_outbox(3, "drop_oldest")
    assert outbox.put(items(5)) == 5
    leased = outbox.take(10, 1_000)
    assert leased is not None
    assert leased.messages == (b'{"i":2}', b'{"i":3}', b'{"i":4}')


def test_memory_outbox_blocks_up_to_its_timeout() -> None:
    """block waits for room: it succeeds when a send frees room, and gives up at the timeout."""
    outbox = memory_outbox(2, "block", wait=0.2)
    outbox.put(items(2))
    leased = outbox.take(1, 1_000)
    assert leased is not None
    threading.Timer(0.05, outbox.ack, args=(leased,)).start()
    assert outbox.put(items(1, 2)) == 1  # room appeared while waiting
    started = time.monotonic()
    assert outbox.put(items(1, 3)) == 0  # nothing frees room: dropped after the wait
    assert 0.15 <= time.monotonic() - started < 2


def test_memory_outbox_release_keeps_order_and_take_respects_bytes() -> None:
    """Released messages come back first; a batch stops before max_bytes (but takes one)."""
    outbox = memory_outbox(10)
    outbox.put(items(4))
    first = outbox.take(2, 1_000)
    assert first is not None
    outbox.release(first)
    again = outbox.take(10, 16)
    assert again is not None
    assert again.messages == (b'{"i":0}', b'{"i":1}')
    assert outbox.take(10, 1) is not None  # one oversized message still goes alone
    assert outbox.pending() == 4
    outbox.forget_inherited()
    assert (outbox.pending(), outbox.take(1, 1)) == (0, None)


def test_sqlite_outbox_take_stops_before_max_bytes_but_takes_one(tmp_path: Path) -> None:
    """A lease ends at the last row within max_bytes; a row larger than that still goes alone."""
    store = SQLiteStore(tmp_path / "b.db")
    outbox = SQLiteOutbox(store, lease=60)
    outbox.put(items(4))  # 7 bytes each
    within = outbox.take(10, 20)
    alone = outbox.take(10, 1)
    assert within is not None
    assert alone is not None
    assert (within.keys, within.messages) == ((1, 2), (b'{"i":0}', b'{"i":1}'))
    assert alone.messages == (b'{"i":2}',)
    store.close()


def test_sqlite_outbox_leases_rows_between_senders(tmp_path: Path) -> None:
    """A leased row is invisible to other senders until acked or released."""
    store = SQLiteStore(tmp_path / "o.db")
    one, two = SQLiteOutbox(store, lease=60), SQLiteOutbox(store, lease=60)
    one.put(items(3))
    leased = one.take(2, 1_000)
    other = two.take(5, 1_000)
    assert leased is not None
    assert other is not None
    assert (len(leased.messages), other.messages) == (2, (b'{"i":2}',))
    assert two.take(5, 1_000) is None
    one.release(leased)
    two.ack(other)
    retaken = two.take(5, 6)
    assert retaken is not None
    assert retaken.messages == (b'{"i":0}',)
    assert one.pending() == 2
    one.forget_inherited()  # rows are shared through the file: nothing to forget
    assert one.pending() == 2
    store.close()


def make_batcher(
    transport: RecordingTransport, outbox: MemoryOutbox | None = None, **options: object
) -> tuple[Batcher, Counters]:
    counters = Counters()
    chosen = outbox or MemoryOutbox(
        max_messages=1000, on_full="drop_newest", block_timeout=0, counters=counters
    )
    delivery = Delivery(retry=QUICK, flush_interval=0.05, **options)  # type: ignore[arg-type]
    return Batcher(chosen, transport, delivery, counters), counters


def test_batches_are_cut_by_count_and_bytes() -> None:
    """flush_at and max_batch_bytes bound each batch."""
    transport = RecordingTransport()
    batcher, counters = make_batcher(transport, flush_at=3, max_batch_bytes=20)
    batcher.outbox.put(items(7))
    batcher.notify(7)
    assert batcher.flush(timeout=5) == pqlsdk.FlushResult(7, 0)
    assert [len(b.messages) for b in transport.batches] == [2, 2, 2, 1]
    assert counters.snapshot().delivered == 7
    batcher.close(timeout=1)


def test_the_sender_naps_between_batches_while_the_host_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch sent while the host called is followed by a nap (it lets the GIL go); all go out."""
    rests: list[int] = []

    class Counting(Pacer):
        __slots__ = ()

        def rest(self) -> None:
            rests.append(1)
            super().rest()

    class Busy(RecordingTransport):
        def send(self, batch: Batch) -> None:
            HOST.calls += 1  # the host called while this batch went out
            super().send(batch)

    monkeypatch.setattr(_batcher, "Pacer", Counting)
    batcher, _ = make_batcher(Busy(), flush_at=2)
    batcher.outbox.put(items(6))
    batcher.notify(6)
    assert batcher.flush(timeout=5) == pqlsdk.FlushResult(6, 0)
    assert len(rests) == 3
    batcher.close(timeout=1)


def test_retryable_failures_are_retried_then_delivered() -> None:
    """Two retryable failures, then success: one batch, delivered once."""
    transport = RecordingTransport(fail=[pqlsdk.RetryableDeliveryError("down")] * 2)
    batcher, _ = make_batcher(transport)
    batcher.outbox.put(items(3))
    batcher.notify(3)
    assert batcher.flush(timeout=5).pending == 0
    assert len(transport.batches) == 1
    batcher.close(timeout=1)


def test_exhausted_retries_hold_the_batch_back_for_the_next_flush() -> None:
    """When the budget runs out the batch stays queued, in order, and on_error hears of it."""
    errors: list[pqlsdk.DeliveryError] = []
    transport = RecordingTransport(fail=[pqlsdk.RetryableDeliveryError("down")] * 50)
    counters = Counters()
    outbox = MemoryOutbox(
        max_messages=100, on_full="drop_newest", block_timeout=0, counters=counters
    )
    batcher = Batcher(
        outbox, transport, Delivery(mode="caller", retry=QUICK), counters, on_error=errors.append
    )
    outbox.put(items(2))
    assert batcher.flush(timeout=5) == pqlsdk.FlushResult(0, 2)
    assert errors
    assert counters.snapshot().errors["delivery_failed"] >= 1
    batcher.close(timeout=0.1)


def test_a_transport_that_raises_anything_does_not_kill_the_sender() -> None:
    """A user transport raising a plain exception is treated as retryable."""

    class Broken(RecordingTransport):
        calls = 0

        def send(self, batch: pqlsdk.transports.Batch) -> None:
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("bug in a custom transport")
            super().send(batch)

    transport = Broken()
    batcher, _ = make_batcher(transport)
    batcher.outbox.put(items(1))
    batcher.notify(1)
    deadline = time.monotonic() + 5
    while not transport.batches and time.monotonic() < deadline:
        batcher.flush(timeout=0.5)
    assert len(transport.batches) == 1
    batcher.close(timeout=1)


def test_a_failing_on_error_hook_is_counted() -> None:
    """The host's on_error raising never stops delivery."""

    def hook(error: pqlsdk.DeliveryError) -> None:
        raise ValueError("host bug")

    transport = RecordingTransport(fail=[pqlsdk.BatchRejectedError("no", status=400)])
    counters = Counters()
    outbox = MemoryOutbox(
        max_messages=10, on_full="drop_newest", block_timeout=0, counters=counters
    )
    batcher = Batcher(outbox, transport, Delivery(mode="caller"), counters, on_error=hook)
    outbox.put(items(1))
    batcher.flush(timeout=1)
    snapshot = counters.snapshot()
    assert (dict(snapshot.dropped), snapshot.errors["callback_error"]) == ({"rejected": 1}, 1)


def test_messages_queued_after_close_are_not_sent_and_exit_drain_skips_closed() -> None:
    """A closed batcher starts no thread; the exit hook leaves it alone."""
    transport = RecordingTransport()
    batcher, _ = make_batcher(transport)
    batcher.close(timeout=0.1)
    batcher.outbox.put(items(1))
    batcher.notify(1)
    batcher.at_exit()
    assert transport.batches == []


def test_the_exit_drain_reports_what_it_could_not_send(caplog: pytest.LogCaptureFixture) -> None:
    """At exit, undeliverable messages are logged with their count."""
    transport = RecordingTransport(fail=[pqlsdk.RetryableDeliveryError("down")] * 100)
    counters = Counters()
    outbox = MemoryOutbox(
        max_messages=10, on_full="drop_newest", block_timeout=0, counters=counters
    )
    batcher = Batcher(outbox, transport, Delivery(retry=QUICK, shutdown_timeout=0.3), counters)
    outbox.put(items(2))
    batcher.notify(2)
    batcher.at_exit()
    assert "dropped 2 message(s) [undelivered_at_close, 2 so far]: at exit: not delivered" in (
        caplog.text
    )
    assert counters.snapshot().dropped == {"undelivered_at_close": 2}


def test_the_fork_hook_gives_the_child_an_empty_memory_outbox() -> None:
    """After fork the child's batcher has no thread and none of the parent's messages."""
    transport = RecordingTransport()
    batcher, _ = make_batcher(transport)
    batcher.outbox.put(items(3))
    batcher.after_fork()
    assert batcher.outbox.pending() == 0
    assert batcher.flush(timeout=0.2) == pqlsdk.FlushResult(0, 0)
    batcher.close(timeout=0.1)


def test_buffered_store_reads_its_own_writes_and_commits_in_batches(tmp_path: Path) -> None:
    """Buffered records are visible in-process at once and in the file after commit."""
    inner = SQLiteStore(tmp_path / "b.db")
    committed: list[int] = []
    store = BufferedStore(inner, interval=30, on_commit=committed.append)
    record = messages.check(
        messages.Group(user_id="u", group_id="g", timestamp=pqlsdk.SystemClock().now())
    )
    store.record([record])
    user, account = store.user("u"), store.account("g")
    assert (user and user.account_id, account and account.members) == ("g", ["u"])
    assert inner.user("u") is None  # not committed yet
    assert store.commit() == 1
    assert (committed, inner.count(), store.commit()) == ([1], 1, 0)
    assert repr(store).startswith("BufferedStore(SQLiteStore(")
    assert store.url == inner.url
    store.close()


def test_buffered_store_holds_no_objects_for_the_garbage_collector(tmp_path: Path) -> None:
    """Buffered messages and overlay states are bytes, which the collector does not track.

    Objects held for a commit interval would reach the collector's oldest generation
    and make it run full collections, which stall every thread of the host.
    """
    store = BufferedStore(SQLiteStore(tmp_path / "g.db"), interval=30)
    now = pqlsdk.SystemClock().now()

    def record(users: range) -> None:
        for n in users:
            props = {"feature": f"f{n}", "tags": ["a", "b"]}
            track = messages.Track(user_id=f"u{n}", event="e", properties=props, timestamp=now)
            group = messages.Group(user_id=f"u{n}", group_id=f"g{n}", timestamp=now)
            store.record([messages.check(track), messages.check(group)])

    record(range(10))  # first use: the store's own structures
    gc.collect()
    before = len(gc.get_objects())
    record(range(10, 510))  # 500 users and 500 accounts, buffered
    gc.collect()
    gc.collect()  # tuples of atoms are untracked a level per pass
    assert store.user("u500") is not None
    assert len(gc.get_objects()) - before < 50  # held as objects: thousands
    store.close()


def test_buffered_store_keeps_its_buffer_when_a_commit_fails(tmp_path: Path) -> None:
    """A failing commit reports the error and retries the same messages later."""
    inner = SQLiteStore(tmp_path / "f.db")
    errors: list[pqlsdk.StoreError] = []
    store = BufferedStore(inner, interval=30, on_error=errors.append)
    conn = sqlite3.connect(tmp_path / "f.db")
    conn.execute(
        "CREATE TRIGGER no BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    conn.commit()
    store.record(
        [
            messages.check(
                messages.Track(user_id="u", event="e", timestamp=pqlsdk.SystemClock().now())
            )
        ]
    )
    assert store.commit() == 0
    assert len(errors) == 1
    conn.execute("DROP TRIGGER no")
    conn.commit()
    conn.close()
    assert store.commit() == 1
    user = store.user("u")
    assert user is not None
    assert user.tracks == 1
    store.close()


def _track(i: int = 0) -> tuple[messages.Message, bytes]:
    return messages.check(
        messages.Track(
            user_id="u", event="e", properties={"i": i}, timestamp=pqlsdk.SystemClock().now()
        )
    )


def test_a_commit_re_entered_on_its_own_thread_returns_at_once(tmp_path: Path) -> None:
    """A commit started from inside a commit (a signal handler, a callback) does nothing."""
    nested: list[int] = []
    store: BufferedStore

    def on_commit(count: int) -> None:
        store.record([_track(1)])
        nested.append(store.commit())

    store = BufferedStore(SQLiteStore(tmp_path / "r.db"), interval=30, on_commit=on_commit)
    store.record([_track(0)])
    assert (store.commit(), nested) == (1, [0])
    assert store.inner.count() == 1  # the nested record waits for the next commit
    store.close()
    assert SQLiteStore(tmp_path / "r.db").count() == 2


def test_a_buffer_that_cannot_commit_keeps_only_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While commits fail, the buffer is capped: the oldest messages go first."""
    monkeypatch.setattr("pqlsdk.stores.buffered._MAX_BUFFER", 3)
    store = BufferedStore(SQLiteStore(tmp_path / "c.db"), interval=30)
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute(
        "CREATE TRIGGER no BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    conn.commit()
    store.record([_track(i) for i in range(5)])
    assert store.commit() == 0
    conn.execute("DROP TRIGGER no")
    conn.commit()
    conn.close()
    assert store.commit() == 3
    assert [m.properties["i"] for m in store.messages()] == [2, 3, 4]  # type: ignore[union-attr]
    store.close()


def test_recording_off_the_main_thread_installs_no_signal_handler(tmp_path: Path) -> None:
    """Only the main thread may touch signal handlers; other threads just buffer."""
    store = BufferedStore(SQLiteStore(tmp_path / "t.db"), interval=30)
    before = signal.getsignal(signal.SIGTERM)
    worker = threading.Thread(target=store.record, args=([_track()],))
    worker.start()
    worker.join()
    assert signal.getsignal(signal.SIGTERM) == before
    assert store.count() == 1
    store.close()


def test_recording_asks_for_the_sigterm_handler_only_until_it_installs_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ask costs a failed enum lookup once a function handles SIGTERM: one ask, then none."""
    monkeypatch.setattr(lifecycle, "_sigterm", False, raising=False)
    asked: list[int] = []
    ask = signal.getsignal

    def counted(number: int) -> object:
        asked.append(number)
        return ask(number)

    monkeypatch.setattr(signal, "getsignal", counted)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    store = BufferedStore(SQLiteStore(tmp_path / "t.db"), interval=30)
    try:
        for _ in range(3):
            store.record([_track()])
        handler = ask(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    store.close()
    assert (asked, handler) == ([signal.SIGTERM], lifecycle._finish_and_die)


def test_a_hosts_own_sigterm_handler_is_kept_and_asked_about_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host that handles SIGTERM keeps its handler; pqlsdk asks again later (it may reset it)."""
    monkeypatch.setattr(lifecycle, "_sigterm", False, raising=False)

    def hosts(number: int, frame: object) -> None:  # pragma: no cover - never delivered
        pass

    previous = signal.signal(signal.SIGTERM, hosts)
    try:
        lifecycle.install_sigterm()
        handler = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (handler, lifecycle._sigterm) == (hosts, False)


def test_the_buffered_stores_fork_hook_starts_the_child_empty(tmp_path: Path) -> None:
    """After fork the child forgets the parent's buffer (the parent commits it)."""
    store = BufferedStore(SQLiteStore(tmp_path / "f.db"), interval=30)
    store.record([_track()])
    lifecycle.run_after_fork()
    assert (store.commit(), store.inner.count()) == (0, 0)
    store.close()


def test_the_exit_hook_logs_and_goes_on_when_a_commit_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At exit, one store's failure does not stop the others from committing."""

    def explode(count: int) -> None:
        raise RuntimeError("host callback bug")

    bad = BufferedStore(SQLiteStore(tmp_path / "bad.db"), interval=30, on_commit=explode)
    good = BufferedStore(SQLiteStore(tmp_path / "good.db"), interval=30)
    bad.record([_track()])
    good.record([_track()])
    lifecycle.run_at_exit()
    assert "exit work failed for BufferedStore" in caplog.text
    assert good.inner.count() == 1
    bad.close = lambda: None  # type: ignore[method-assign]
    good.close()


def test_the_batchers_fork_hook_resets_every_live_batcher() -> None:
    """The process-wide fork hook reaches every live batcher."""
    batcher, _ = make_batcher(RecordingTransport())
    batcher.outbox.put(items(2))
    lifecycle.run_after_fork()
    assert batcher.outbox.pending() == 0
    batcher.notify(0)  # nothing was added: no thread is started
    assert batcher.flush(timeout=0) == pqlsdk.FlushResult(0, 0)
    batcher.close(timeout=0)


def test_a_local_client_flushes_its_buffer(tmp_path: Path) -> None:
    """Without a collector, flush() commits the buffered store and reports nothing pending."""
    with pqlsdk.Client(store=f"sqlite:///{tmp_path}/l.db") as client:
        client.track("u", "e")
        assert client.flush() == pqlsdk.FlushResult(0, 0)
        assert isinstance(client.store, BufferedStore)
        assert client.store.inner.count() == 1


def test_own_records_that_cannot_be_queued_are_counted(tmp_path: Path) -> None:
    """A failing outbox insert for a tier crossing is an error count, not an exception."""
    rules = Path(__file__).resolve().parents[2] / "examples" / "rules" / "playbook.toml"
    delivery = pqlsdk.Delivery(durability="sync", mode="caller", flush_at=1000)
    client = pqlsdk.Client(
        store=f"sqlite:///{tmp_path}/e.db",
        transport=RecordingTransport(),
        rules=rules,
        delivery=delivery,
    )
    conn = sqlite3.connect(tmp_path / "e.db")
    # Records go in with their outbox rows; only pqlsdk's own record (a crossing) is refused.
    conn.execute(
        "CREATE TRIGGER no BEFORE INSERT ON outbox "
        "WHEN instr(CAST(NEW.body AS TEXT), 'pqlsdk_tier_changed') > 0 "
        "BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    conn.commit()
    conn.close()
    for name in ("core_workflow_completed", "limit_hit"):
        client.track("u", name)
    assert client.stats().errors == {"emit_failed": 1}
    client.close(timeout=1)


def test_a_caller_mode_flush_with_no_time_left_sends_nothing() -> None:
    """flush(timeout=0) in caller mode returns at once with everything still pending."""
    transport = RecordingTransport()
    counters = Counters()
    outbox = MemoryOutbox(
        max_messages=10, on_full="drop_newest", block_timeout=0, counters=counters
    )
    batcher = Batcher(outbox, transport, Delivery(mode="caller", flush_at=100), counters)
    outbox.put(items(3))
    batcher.notify(3)
    assert batcher.flush(timeout=0) == pqlsdk.FlushResult(0, 3)
    assert transport.batches == []


def test_the_memory_store_has_no_durable_outbox() -> None:
    """Asking the memory store to queue for the collector is a setup error."""
    with pytest.raises(pqlsdk.ConfigError, match="no durable outbox"):
        pqlsdk.stores.MemoryStore().record([_track()], outbox=True)


def test_buffered_outbox_rows_count_what_is_buffered(tmp_path: Path) -> None:
    """Until a commit, messages bound for the outbox are counted as pending."""
    store = BufferedStore(SQLiteStore(tmp_path / "p.db"), interval=30, outbox=True)
    store.record([_track(0), _track(1)])
    assert store.outbox_size() == 2
    store.enqueue([b'{"own":1}'])
    assert store.outbox_size() == 3
    leased = store.lease(10, 1_000, now=time.time(), until=time.time() + 60)
    assert [body for _, body in leased] == [b'{"own":1}']
    store.commit()
    store.unlease([key for key, _ in leased], delete=True)
    assert store.outbox_size() == 2
    store.close()
