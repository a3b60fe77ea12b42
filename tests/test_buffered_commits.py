"""The buffered store's commits: the overlay's states written as they are, or folded again.

A commit writes the states the overlay folded when nothing else wrote to the
file since the last commit, and folds the messages again into the file's
states whenever something may have: another connection's commit, an update
racing with the commit, a rebuild. Each test checks the file afterwards.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk._aggregates import Aggregate
from pqlsdk.stores import UserState
from pqlsdk.stores import sqlite as sqlite_module
from pqlsdk.stores.buffered import BufferedStore
from pqlsdk.stores.sqlite import SQLiteStore

from .records import group as _group
from .records import track as _track
from .records import tracks as _tracks


def _set_tier(tier: str) -> Any:
    def change(state: UserState) -> str:
        state.tiers["m"] = tier
        return tier

    return change


def test_a_commit_writes_the_overlays_states_without_folding_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone on the file, a commit neither decodes nor applies a message again."""
    store = BufferedStore(SQLiteStore(tmp_path / "a.db"), interval=30, outbox=True)
    store.record([_track(), _track(), _track("v")])

    def refold(*args: object, **kwargs: object) -> None:
        raise AssertionError("folded again")

    monkeypatch.setattr(sqlite_module, "apply", refold)
    assert store.commit() == 3
    inner = SQLiteStore(tmp_path / "a.db")
    assert (_tracks(inner), _tracks(inner, "v"), inner.count(), inner.outbox_size()) == (2, 1, 3, 3)
    inner.close()
    store.close()


def test_another_connections_commit_is_folded_in_not_overwritten(tmp_path: Path) -> None:
    """What another process committed meanwhile stays, and the overlay reads it after."""
    store = BufferedStore(SQLiteStore(tmp_path / "b.db"), interval=30)
    other = SQLiteStore(tmp_path / "b.db")
    store.record([_track()])
    other.record([_track()])
    assert store.commit() == 1
    assert (_tracks(other), _tracks(store)) == (2, 2)
    other.record([_track()])  # the state this store kept from its commit is stale now
    store.record([_track()])
    assert store.commit() == 1
    assert (_tracks(other), _tracks(store)) == (4, 4)
    other.close()
    store.close()


def test_an_idle_store_drops_what_it_kept_when_another_connection_commits(
    tmp_path: Path,
) -> None:
    """With nothing buffered, the writer's empty commit asks the file whether others wrote."""
    store = BufferedStore(SQLiteStore(tmp_path / "c.db"), interval=30)
    store.record([_track()])
    store.commit()
    assert store.commit() == 0  # nobody else wrote: the kept state stays
    other = SQLiteStore(tmp_path / "c.db")
    other.record([_track()])
    assert store.commit() == 0
    assert _tracks(store) == 2
    other.close()
    store.close()


def test_an_update_does_not_commit_and_keeps_the_buffered_messages(tmp_path: Path) -> None:
    """update_user() writes its change to the file at once; buffered messages wait, and stay."""
    store = BufferedStore(SQLiteStore(tmp_path / "d.db"), interval=30)
    store.record([_track()])
    assert store.update_user("u", _set_tier("hot")) == "hot"
    assert store.inner.count() == 0  # not committed by the update
    user = store.user("u")
    assert user is not None
    assert (user.tracks, user.tiers) == (1, {"m": "hot"})
    store.record([_group()])
    assert store.update_user("nobody", _set_tier("cold")) == "cold"  # not in the overlay
    store.update_account("g", _set_tier("warm"))
    account = store.account("g")
    assert account is not None
    assert (account.members, account.tiers) == (["u"], {"m": "warm"})
    store.commit()
    committed, team = store.inner.user("u"), store.inner.account("g")
    assert committed is not None
    assert team is not None
    assert (committed.tracks, committed.tiers, team.tiers) == (1, {"m": "hot"}, {"m": "warm"})
    store.close()


def test_an_update_racing_with_a_commit_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update landing between the commit's snapshot and its transaction is not overwritten."""
    store = BufferedStore(SQLiteStore(tmp_path / "e.db"), interval=30)
    store.record([_track()])
    original = store.inner.record_folded

    def late(*args: Any, **kwargs: Any) -> tuple[int, int]:
        store.update_user("u", _set_tier("hot"))
        return original(*args, **kwargs)

    monkeypatch.setattr(store.inner, "record_folded", late)
    assert store.commit() == 1
    user = store.inner.user("u")
    assert user is not None
    assert (user.tracks, user.tiers) == (1, {"m": "hot"})
    store.close()


def test_messages_folded_during_a_commit_that_found_others_writes_are_folded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state still buffered when a commit finds another connection's writes may miss them."""
    store = BufferedStore(SQLiteStore(tmp_path / "f.db"), interval=30)
    other = SQLiteStore(tmp_path / "f.db")
    store.record([_track()])
    original = store.inner.record_folded

    def meanwhile(*args: Any, **kwargs: Any) -> tuple[int, int]:
        store.record([_group()])  # folded into the overlay, which predates other's write
        return original(*args, **kwargs)

    monkeypatch.setattr(store.inner, "record_folded", meanwhile)
    other.record([_track()])
    store.commit()
    monkeypatch.undo()
    other.record([_track()])  # unseen by the overlay, which still holds "u"
    store.commit()
    assert _tracks(other) == 3
    other.close()
    store.close()


def test_a_state_a_message_folded_during_a_commit_touched_is_written_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit counts out its own messages only: the state stays buffered for the one after."""
    store = BufferedStore(SQLiteStore(tmp_path / "m.db"), interval=30)
    store.record([_track(), _track()])
    original = store.inner.record_folded

    def meanwhile(*args: Any, **kwargs: Any) -> tuple[int, int]:
        store.record([_track()])  # after the commit's snapshot, before its count-out
        return original(*args, **kwargs)

    monkeypatch.setattr(store.inner, "record_folded", meanwhile)
    assert store.commit() == 2
    monkeypatch.undo()
    assert store.commit() == 1
    assert _tracks(store.inner) == 3
    store.close()


def test_a_rebuild_makes_buffered_states_fold_again(tmp_path: Path) -> None:
    """States rebuilt by maintain() are not overwritten by an overlay that predates them."""
    store = BufferedStore(SQLiteStore(tmp_path / "g.db"), interval=30)
    store.record([_track(event="a")])
    store.commit()
    store.record([_track(event="b")])
    counted = Aggregate(kind="count", event="a")
    original = store.inner.maintain

    def with_a_message_buffered_meanwhile(aggregates: Any) -> int:
        store.record([_track(event="a")])  # folded before the rebuild: the count misses it
        return original(aggregates)

    store._inner.maintain = with_a_message_buffered_meanwhile  # type: ignore[method-assign]
    assert store.maintain([counted]) == 1
    store.commit()
    user = store.inner.user("u")
    assert user is not None
    assert (user.tracks, user.aggregates[counted.key]) == (3, 2)
    store.close()


def test_kept_states_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``_KEEP`` states the committed ones go; reads take them from the file."""
    monkeypatch.setattr("pqlsdk.stores.buffered._KEEP", 1)
    store = BufferedStore(SQLiteStore(tmp_path / "h.db"), interval=30)
    store.record([_track("u"), _group("v")])
    store.commit()
    assert (store._users, store._accounts, _tracks(store)) == ({}, {}, 1)
    store.close()


@pytest.mark.parametrize("reported", [True, False])
def test_an_unreadable_file_at_an_idle_commit_drops_the_kept_states(
    tmp_path: Path, reported: bool
) -> None:
    """The idle check cannot read the file: no raise, the fault reported, reads go to the file."""
    faults: list[pqlsdk.StoreError] = []
    store = BufferedStore(
        SQLiteStore(tmp_path / "a.db"), interval=30, on_error=faults.append if reported else None
    )
    store.record([_track()])
    store.commit()
    assert _tracks(store) == 1  # kept in the overlay after its commit
    for path in tmp_path.glob("a.db*"):
        path.write_bytes(b"\xff" * path.stat().st_size)
    assert store.commit() == 0
    assert len(faults) == (1 if reported else 0)
    with pytest.raises(pqlsdk.StoreError, match="not a database"):
        store.user("u")


def test_a_record_past_the_interval_commits_inline(tmp_path: Path) -> None:
    """When the writer thread is late, the recording call commits what is overdue itself."""
    store = BufferedStore(SQLiteStore(tmp_path / "i.db"), interval=30)
    store.record([_track()])  # the writer thread now sleeps until this is 15 s old
    assert store._oldest is not None
    store._oldest -= 31  # as if it came 31 s ago: overdue, and the writer still asleep
    store.record([_track()])
    other = SQLiteStore(tmp_path / "i.db")
    assert (other.count(), _tracks(other)) == (2, 2)  # both in the file, no commit() called
    other.close()
    store.close()


def test_a_record_past_the_interval_leaves_it_to_the_writer_amid_its_commit(
    tmp_path: Path,
) -> None:
    """Overdue while the writer commits: the call returns without waiting for that commit."""
    store = BufferedStore(SQLiteStore(tmp_path / "w.db"), interval=30)
    store.record([_track()])
    assert store._oldest is not None
    store._oldest -= 31
    committing = threading.Event()
    release = threading.Event()

    def writer() -> None:  # a commit under way in another thread
        with store._commit_lock:
            store._committing = True
            committing.set()
            release.wait(10)
            store._committing = False

    thread = threading.Thread(target=writer)
    thread.start()
    committing.wait(10)
    recorder = threading.Thread(target=store.record, args=([_track()],))
    recorder.start()
    recorder.join(5)
    returned = not recorder.is_alive()
    release.set()
    thread.join()
    recorder.join()
    assert (returned, store.commit(), store.count()) == (True, 2, 2)
    store.close()
