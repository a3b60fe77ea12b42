"""The buffered store under the intake: a chunk's look-up, held states, many-row commits.

The intake records a chunk in several ``record()`` calls. The ids it looked up
for the chunk stay answered across a commit; the states it changes stay decoded
for the chunk (``hold()``) while every other reader and writer of the overlay
sees them; commits insert many rows per statement. Each test checks what a
reader, another thread or the file sees.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk.stores import AccountState, UserState, _rows, _state, buffered
from pqlsdk.stores._buffered_parts import PIECE
from pqlsdk.stores.buffered import BufferedStore
from pqlsdk.stores.sqlite import SQLiteStore

from .records import group as _group
from .records import track as _track
from .records import tracks as _tracks


def _tier(state: UserState | AccountState) -> None:
    state.tiers["m"] = "hot"


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Count the user states the buffered store decodes from its overlay from now on."""
    decoded: list[bytes] = []
    decode = _state.decode_user

    def counted(data: bytes) -> UserState:
        decoded.append(data)
        return decode(data)

    monkeypatch.setattr(buffered, "decode_user", counted)
    return decoded


def test_looked_up_ids_stay_answered_after_a_commit(tmp_path: Path) -> None:
    """After a commit amid a chunk, its messages are not asked of the file one by one."""
    store = BufferedStore(SQLiteStore(tmp_path / "a.db"), interval=30)
    first, second = _track(), _track("v")
    store.look_up([first[0].message_id, second[0].message_id])
    store.record([first])
    store.commit()
    statements: list[str] = []
    store.inner._reading().set_trace_callback(statements.append)
    assert store.record([second, first]) == 1  # the committed one is still known
    assert [s for s in statements if "FROM messages" in s] == []
    assert (store.commit(), store.count()) == (1, 2)
    store.close()


def test_held_states_are_read_and_committed_as_the_latest(tmp_path: Path) -> None:
    """While held, a state is what reads return and what a commit writes."""
    store = BufferedStore(SQLiteStore(tmp_path / "b.db"), interval=30)
    other = SQLiteStore(tmp_path / "b.db")
    with store.hold():
        store.record([_group(), _track()])
        store.record([_track()])
        assert _tracks(store) == 2
        account = store.account("g")
        assert account is not None
        assert account.members == ["u"]
        store.commit()
        assert _tracks(other) == 2
        store.record([_track()])
    assert _tracks(store) == 3
    store.commit()
    assert _tracks(other) == 3
    other.close()
    store.close()


def test_an_update_during_a_hold_reaches_the_held_states(tmp_path: Path) -> None:
    """A tier set while states are held stays when they are released and committed."""
    store = BufferedStore(SQLiteStore(tmp_path / "c.db"), interval=30)
    with store.hold():
        store.record([_group(), _track()])
        store.update_user("u", _tier)
        store.update_account("g", _tier)
        store.record([_track()])
        user, account = store.user("u"), store.account("g")
        assert user is not None
        assert account is not None
        assert (user.tiers, account.tiers) == ({"m": "hot"}, {"m": "hot"})
    store.commit()
    inner = SQLiteStore(tmp_path / "c.db")
    user, account = inner.user("u"), inner.account("g")
    assert user is not None
    assert account is not None
    assert (user.tiers, user.tracks, account.tiers) == ({"m": "hot"}, 2, {"m": "hot"})
    inner.close()
    store.close()


def test_another_threads_record_during_a_hold_folds_into_the_held_state(tmp_path: Path) -> None:
    """Messages recorded by another thread meanwhile are neither lost nor folded twice."""
    store = BufferedStore(SQLiteStore(tmp_path / "d.db"), interval=30)
    with store.hold():
        store.record([_track()])
        elsewhere = threading.Thread(target=store.record, args=([_track()],))
        elsewhere.start()
        elsewhere.join()
        store.record([_track()])
    assert _tracks(store) == 3
    store.commit()
    inner = SQLiteStore(tmp_path / "d.db")
    assert (_tracks(inner), inner.count()) == (3, 3)
    inner.close()
    store.close()


def test_a_commit_of_more_rows_than_a_statement_takes_logs_them_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows go in several statements, in the order they came."""
    monkeypatch.setattr(_rows, "_ROWS", 3)
    store = BufferedStore(SQLiteStore(tmp_path / "e.db"), interval=30, outbox=True)
    records = [_track(f"u{i}") for i in range(7)]
    store.record(records)
    assert store.commit() == 7
    inner = SQLiteStore(tmp_path / "e.db")
    logged = [message.message_id for message in inner.messages()]
    assert logged == [message.message_id for message, _ in records]
    assert (inner.outbox_size(), _tracks(inner, "u6")) == (7, 1)
    inner.close()
    store.close()


def test_a_lease_leaves_rows_another_sender_holds_among_its_own(tmp_path: Path) -> None:
    """Leasing the rows around one held elsewhere does not take that one over."""
    store = SQLiteStore(tmp_path / "f.db")
    store.enqueue([b"0", b"1", b"2", b"3"])
    now = time.time()
    first = store.lease(2, 1_000, now=now, until=now + 60)
    store.unlease([first[0][0]], delete=False)  # the first is free again, the second held
    taken = store.lease(10, 1_000, now=now, until=now + 90)
    assert [body for _, body in taken] == [b"0", b"2", b"3"]
    assert store.lease(10, 1_000, now=now + 45, until=now + 99) == []  # none ran out
    assert [body for _, body in store.lease(10, 1_000, now=now + 61, until=now + 99)] == [b"1"]
    store.close()


def test_commits_of_every_size_compile_few_distinct_statements(tmp_path: Path) -> None:
    """Commits of 1 to 300 messages use a few statement texts, not one per size.

    The connection keeps each distinct text compiled: one per row count was tens of MiB.
    """
    store = BufferedStore(SQLiteStore(tmp_path / "g.db"), interval=30)
    statements: set[str] = set()
    store.inner._connection().set_trace_callback(statements.add)
    for size in range(1, 301):
        store.record([_track(f"u{size}-{i}") for i in range(size)])
        store.commit()
    inserts = {text.split(" VALUES")[0] for text in statements if " VALUES " in text}
    shapes = {text.count("), (") for text in statements if text.startswith("INSERT")}
    assert len(inserts) >= 2  # the messages and the states, at least
    assert len(shapes) <= 10  # sizes 1, 2, 4 ... 256 (and the full statement): not 300
    assert store.count() == 300 * 301 // 2
    store.close()


def test_held_states_stay_decoded_from_one_chunk_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next chunk of a burst finds its states decoded, across a commit between chunks."""
    store = BufferedStore(SQLiteStore(tmp_path / "h.db"), interval=30)
    store.record([_track()])
    store.commit()  # idle: the state is the file's and the overlay's bytes
    decoded = _decodes(monkeypatch)
    with store.hold():
        store.record([_track()])
    store.commit()
    with store.hold():
        store.record([_track()])
    assert (len(decoded), _tracks(store)) == (1, 3)
    store.commit()
    inner = SQLiteStore(tmp_path / "h.db")
    assert _tracks(inner) == 3
    inner.close()
    store.close()


def test_an_idle_commit_lets_the_held_states_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: once the intake is idle, a commit turns the held states back into bytes."""
    store = BufferedStore(SQLiteStore(tmp_path / "i.db"), interval=30)
    with store.hold():
        store.record([_track()])
    store.commit()
    store.commit()  # nothing buffered: the intake is idle
    decoded = _decodes(monkeypatch)
    with store.hold():
        store.record([_track()])
    assert (len(decoded), _tracks(store)) == (1, 2)
    store.close()


def test_a_commit_lets_the_held_states_go_past_their_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: past ``_HOLD`` held states, the next commit turns them back into bytes."""
    monkeypatch.setattr(buffered, "_HOLD", 1)
    store = BufferedStore(SQLiteStore(tmp_path / "j.db"), interval=30)
    with store.hold():
        store.record([_group(), _track()])  # a user and an account: two states
    store.commit()
    decoded = _decodes(monkeypatch)
    with store.hold():
        store.record([_track()])
    assert (len(decoded), _tracks(store)) == (1, 2)
    store.close()


def test_a_record_between_chunks_folds_into_the_held_state(tmp_path: Path) -> None:
    """Guard: another thread's record between two chunks is neither lost nor folded twice."""
    store = BufferedStore(SQLiteStore(tmp_path / "k.db"), interval=30)
    with store.hold():
        store.record([_group(), _track()])
    store.update_user("u", _tier)
    elsewhere = threading.Thread(target=store.record, args=([_track()],))
    elsewhere.start()
    elsewhere.join()
    with store.hold():
        store.record([_track()])
    store.commit()
    inner = SQLiteStore(tmp_path / "k.db")
    user = inner.user("u")
    assert user is not None
    assert (user.tracks, user.tiers, inner.count()) == (3, {"m": "hot"}, 4)
    inner.close()
    store.close()


def test_buffered_messages_leave_the_collectors_lists_at_its_first_pass(tmp_path: Path) -> None:
    """A buffered message is a tuple of atoms, which the youngest generation's pass untracks.

    A tuple nested in it kept it tracked into the oldest generation, where a
    burst's buffer triggered full collections.
    """
    store = BufferedStore(SQLiteStore(tmp_path / "l.db"), interval=30)
    store.record([_group(), _track()])
    gc.collect(0)
    assert not any(gc.is_tracked(entry) for entry in store._buffer)
    store.close()


def test_a_commit_starts_no_pass_of_the_garbage_collector(tmp_path: Path) -> None:
    """Committing thousands of messages copies none of them into a tuple of its own.

    Thousands of new tuples alive at once started a pass of the collector in
    the middle of the writer's commit, and every thread of the host waited for it.
    """
    store = BufferedStore(SQLiteStore(tmp_path / "m.db"), interval=30, outbox=True)
    store.record([_track() for _ in range(3000)])
    passes: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.collect()
    gc.callbacks.append(counted)
    try:
        committed = store.commit()
    finally:
        gc.callbacks.remove(counted)
    assert (committed, passes) == (3000, [])
    store.close()


class _Host:
    """The writer's pacer, faked: the host calls throughout, and each nap is counted."""

    def __init__(self, nap: float = 0.0) -> None:
        self.naps = 0
        self._nap = nap

    def calling(self) -> bool:
        return True

    def rest(self) -> None:
        self.naps += 1
        if self._nap:  # else back at once, however loaded the machine
            time.sleep(self._nap)


def _commit_as_the_writer(
    store: BufferedStore, host: _Host, monkeypatch: pytest.MonkeyPatch
) -> int:
    """Commit from this thread as if it were the store's writer thread, under ``host``'s pacing."""
    monkeypatch.setattr(store, "_pacer", host)
    monkeypatch.setattr(store, "_thread", threading.current_thread())
    return store.commit()


def test_the_writers_commit_makes_way_for_a_calling_host_between_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding, snapshot and counting out nap every few dozen states while the host calls.

    In one stretch under the GIL, a commit of a busy interval kept a host call
    waiting a millisecond or more.
    """
    store = BufferedStore(SQLiteStore(tmp_path / "n.db"), interval=30)
    host = _Host()
    with store.hold():
        store.record([_track(f"u{i}") for i in range(8 * PIECE)])
        store.record([_group(f"u{i}", f"g{i}") for i in range(PIECE)])
        committed = _commit_as_the_writer(store, host, monkeypatch)
    # 8 pieces of users encoded and 1 of accounts, then the count-out of 9 * PIECE
    # messages, 2 pieces, and of their 9 * PIECE states, 2 pieces (the snapshot
    # takes the states the store counts: no piece)
    assert (committed, host.naps) == (9 * PIECE, 8 + 1 + 2 + 2)
    store.close()


def test_a_nap_that_came_back_late_ends_the_commits_pacing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host calls back to back: each return costs it a forced switch; the rest goes at once."""
    store = BufferedStore(SQLiteStore(tmp_path / "o.db"), interval=30)
    host = _Host(nap=0.002)
    with store.hold():
        store.record([_track(f"u{i}") for i in range(8 * PIECE)])
        assert _commit_as_the_writer(store, host, monkeypatch) == 8 * PIECE
    assert host.naps == 1
    store.close()


def test_a_commit_on_a_host_thread_never_naps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: a flush or a read that commits is the host's own call; it goes at full speed."""
    store = BufferedStore(SQLiteStore(tmp_path / "p.db"), interval=30)
    host = _Host()
    monkeypatch.setattr(store, "_pacer", host)
    with store.hold():
        store.record([_track(f"u{i}") for i in range(8 * PIECE)])
        assert store.commit() == 8 * PIECE
    assert host.naps == 0
    store.close()


_ASK = "SELECT message_id FROM messages WHERE message_id"


def _sitting(tmp_path: Path) -> pqlsdk.Client:
    """A client on a SQLite file whose intake thread sits on what it accepts."""
    client = pqlsdk.Client(store=f"sqlite:///{tmp_path}/c.db", retention=None)
    intake = client._recorder.intake
    assert intake is not None
    intake._gather = 5.0  # applied by the next read, in this thread
    return client


@pytest.mark.parametrize("given", [0, 1])
def test_a_chunk_asks_the_file_only_about_ids_this_process_did_not_make(
    tmp_path: Path, given: int
) -> None:
    """Ids the client made are in no log yet: the chunk's look-up asks only about the others."""
    client = _sitting(tmp_path)
    store = client.store
    assert isinstance(store, BufferedStore)
    statements: list[str] = []
    store.inner._reading().set_trace_callback(statements.append)
    for i in range(5):
        client.track("u", "tick", {"i": i}, message_id="given" if i < given else None)
    found = client.user("u")
    client.close()
    asked = [s for s in statements if "FROM messages" in s]
    assert found is not None
    assert (found.tracks, asked) == (5, [f"{_ASK} IN ('given')"] * given)


def test_an_id_this_process_made_passed_back_is_recorded_once(tmp_path: Path) -> None:
    """Guard: an id the client made, passed back by a caller (from the log), is recorded once."""
    client = _sitting(tmp_path)
    client.track("u", "tick")
    store = client.store
    (logged,) = store.messages()  # applies and commits it
    client.track("u", "tick", message_id=logged.message_id)
    client.track("u", "tock")
    found = client.user("u")
    count = store.count()
    client.close()
    assert found is not None
    assert (found.tracks, count) == (2, 2)
