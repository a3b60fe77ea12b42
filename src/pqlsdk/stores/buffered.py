"""Buffered durability: a write-behind layer in front of the SQLite store.

The request path pays for an in-process update only; a writer thread commits
the buffered messages (and their outbox rows) in one transaction at least every
``interval`` seconds. What the process recorded is visible to it at once (an
in-process overlay of the states it changed); other processes see it after
the next commit.

What a commit writes: the overlay already holds each state with the buffered
messages folded in, so when nothing else wrote to the file since this store's
last commit (SQLite's ``data_version`` tells another connection's commits; the
store knows its own updates and rebuilds), the overlay's states are written as
they are: one multi-row insert per table, no message decoded or applied again.
Otherwise the writer re-applies the messages to the states *as committed*,
inside the transaction, so updates from other processes sharing the file are
never overwritten. States stay in the overlay after their commit while no
other connection commits (at most ``_KEEP``), so a busy user's next messages
neither read nor decode it from the file; a read may then miss another
process's commit for up to ``interval``, as that process's own buffer would.

``update_user()`` and ``update_account()`` (tier compare-and-set, moment caps)
do not commit the buffer first: they run in the file's transaction on the
committed state, and the overlay takes the fields they change (tiers, moment
records), which no message changes.

The buffer and the overlay hold encoded bytes (each message's JSON, each
state's msgpack), not objects. They live for up to ``interval``, long enough
for the garbage collector to move every object in them into its oldest
generation, and a steady stream of objects arriving there is what triggers the
full collections that stall every thread of the host (about 12 ms each in a
small process, far more in a large app). Bytes are not tracked by the
collector, so the overlay costs a decode per read and an encode per write
instead (about a microsecond each, on the recording thread). The exception is
the intake's burst (``hold()``): the states it changes stay decoded from one
chunk to the next, each decoded once and encoded once per commit, and go back
to bytes at the first commit that finds the intake idle (or more than
``_HOLD`` of them): they reach the oldest generation once per burst, not once
per chunk.

What can be lost: a SIGKILL or power cut loses at most the last ``interval`` of
messages recorded here, unless they are journaled: a client's calls are (see
``pqlsdk._journal``; ``follow()`` tells the journal what each commit made
durable), so for them a SIGKILL loses nothing.

When the writer thread falls behind (a busy process starves it of the GIL:
SQLite releases the GIL around every statement, and a thread waiting to get it
back waits up to the switch interval each time), the recording caller commits
inline as soon as the oldest buffered message is ``interval`` old: the
producer pays for its own backlog, and the window holds. Not while the writer
is committing: it commits what came meanwhile as soon as it is done.

A normal exit commits everything (``atexit``), and so does SIGTERM when nobody
else handles it (a chained handler is installed lazily, only if SIGTERM still
has its default action, only from the main thread).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping
from datetime import datetime
from itertools import chain
from operator import itemgetter
from typing import Any, Final

from .._aggregates import Aggregate
from .._clock import micros
from .._exceptions import StoreError
from .._lifecycle import COMMIT, install_sigterm, unwatch, watch
from .._pacing import Pacer
from ..messages import Message
from ._base import Record, T, Written
from ._buffered_parts import PIECE, FileCalls, Held
from ._state import AccountState, UserState, apply, decode_account, decode_user, encode
from .sqlite import Folded, SQLiteStore

__all__ = ["BufferedStore"]

_MAX_BUFFER: Final = 100_000  # messages held while commits fail, before the oldest go
_KEEP: Final = 10_000
"""Overlay states kept past their commit (bytes: a few MiB), for the messages that follow."""
_HOLD: Final = 2_000
"""States kept decoded across commits while the intake keeps applying (see ``Held.hold``)."""
_Key = str
""""u" or "a" (user or account) followed by the id: an overlay state. A str, not a
pair: a buffered entry is then a tuple of atoms, which the collector untracks at
its first pass."""
_Entry = tuple[str, str, int, bytes, *tuple[_Key, ...]]
"""A buffered message: its id, subject, timestamp (µs) and JSON, as the log keeps them
(``sqlite.Row``), then the overlay states it touched. Flat: a tuple nested in it
kept it tracked until a pass of the middle generation, which moved many to the
oldest one (see the module's docstring)."""

_first: Final = itemgetter(0)
"""A buffered entry's message id."""
_touched: Final = itemgetter(slice(4, None))
"""A buffered entry's overlay states."""


def _pieces(batch: list[_Entry]) -> Iterator[list[_Entry]]:
    """``batch`` in pieces of ``4 * PIECE`` messages; the writer makes way after each full one."""
    for at in range(0, len(batch), 4 * PIECE):
        yield batch[at : at + 4 * PIECE]


class BufferedStore(Held, FileCalls):
    """A ``Store`` that buffers writes in memory and commits them in batches.

    Added in version 0.1.0.
    """

    def __init__(
        self,
        inner: SQLiteStore,
        *,
        interval: float = 0.2,
        outbox: bool = False,
        on_commit: Callable[[int], None] | None = None,
        on_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        """Buffer writes to ``inner``; with ``outbox``, commits also queue for the collector.

        ``on_commit(count)`` runs after each commit (the batcher's wake-up);
        ``on_error`` receives commit failures (the buffer is kept and retried).
        """
        self._inner = inner
        self._interval = interval
        self._outbox = outbox
        self._on_commit = on_commit
        self._on_error = on_error
        self._follower: tuple[Callable[[], int], Callable[[int], None]] | None = None
        self._reset()
        watch(self, exit_phase=COMMIT)

    def _reset(self) -> None:
        self._lock = threading.RLock()
        self._commit_lock = threading.RLock()
        self._committing = False
        self._stop = threading.Event()
        # Buffered messages, each with the overlay states it touched; overlay states
        # as msgpack. Bytes and atoms, not objects: see the module's docstring.
        self._buffer: list[_Entry] = []
        self._users: dict[str, bytes] = {}
        self._accounts: dict[str, bytes] = {}
        # Buffered messages per overlay state; a state without any is the file's,
        # kept until another connection commits (see ``_commit``).
        self._waiting: dict[_Key, int] = {}
        # Overlay states that may miss a write made to the file around the overlay
        # (another connection's commit, a rebuild, messages given up): until they
        # leave the overlay, commits that touch them fold their messages again.
        self._inexact: set[_Key] = set()
        self._version: int | None = None  # the file's data_version as of the last commit
        self._updates = self._updated = 0  # update_user() / update_account() begun, ended
        self._buffered_ids: set[str] = set()
        # Ids looked up at once by ``look_up()`` (asked, and found in the file or committed
        # since), until the next look-up.
        self._asked: set[str] = set()
        self._logged: set[str] = set()
        # States decoded by ``record()`` while a thread holds them (``hold()``), newer
        # than their bytes in ``_users`` / ``_accounts`` until released or flushed.
        self._holder: int | None = None
        self._held_users: dict[str, UserState] = {}
        self._held_accounts: dict[str, AccountState] = {}
        self._thread: threading.Thread | None = None
        self._pacer = Pacer(back_off=False)  # the writer's commits, while the host calls
        self._pacing: int | None = None
        self._oldest: float | None = None  # monotonic time the oldest buffered message came

    def follow(self, mark: Callable[[], int], durable: Callable[[int], None]) -> None:
        """After each commit, call ``durable`` with what ``mark()`` said as the batch was taken.

        For a journal: ``mark()`` counts the messages recorded so far, and once
        a commit holding them all succeeds, their journal records can go.
        Only after a successful commit, an empty one included.

        Added in version 0.1.0.
        """
        self._follower = (mark, durable)

    def record(
        self, records: Iterable[Record], *, outbox: bool = False, written: Written | None = None
    ) -> int:
        """Fold ``records`` into the in-process view now; commit them within ``interval``.

        Added in version 0.1.0.
        """
        del outbox  # whether commits queue for the collector was fixed at construction
        added = 0
        with self._lock:
            if self._oldest is None:
                self._oldest = time.monotonic()
            if self._version is None and not self._waiting:
                # Before any state is read into the overlay: from here on, a commit by
                # another connection moves it (see ``_commit``).
                self._version = self._inner.data_version()
            overdue = time.monotonic() - self._oldest >= self._interval
            waiting, buffered_ids, buffer = self._waiting, self._buffered_ids, self._buffer
            asked, logged, has_message = self._asked, self._logged, self._inner.has_message
            aggregates = self.aggregates
            # The states recording changes, decoded once: while this thread holds
            # them (``hold()``) they stay objects across calls, else they are encoded
            # when the call ends (the lock is held throughout: nobody sees them between).
            holding = self._holder == threading.get_ident()
            if not holding:
                self._release_held()  # another thread's: as bytes, for this call to read
            users, accounts = self._held_users, self._held_accounts
            mine_users: dict[str, UserState] = {}
            mine_accounts: dict[str, AccountState] = {}

            def load_user(user_id: str) -> UserState | None:
                found = users.get(user_id)
                return self._load_user(user_id) if found is None else found

            def load_account(account_id: str) -> AccountState | None:
                found = accounts.get(account_id)
                return self._load_account(account_id) if found is None else found

            try:
                for message, data in records:
                    mid = message.message_id
                    if mid in buffered_ids or (mid in logged if mid in asked else has_message(mid)):
                        continue  # recording is idempotent, buffered or not
                    buffered_ids.add(mid)
                    at = micros(message.timestamp)
                    changes = apply(message, load_user, load_account, aggregates, at)
                    touched: list[_Key] = []
                    for user in changes.users:
                        users[user.user_id] = mine_users[user.user_id] = user
                        touched.append("u" + user.user_id)
                    for account in changes.accounts:
                        accounts[account.account_id] = mine_accounts[account.account_id] = account
                        touched.append("a" + account.account_id)
                    for key in touched:
                        waiting[key] = waiting.get(key, 0) + 1
                    subject = message.user_id or message.anonymous_id or ""  # .subject, inline
                    buffer.append((mid, subject, at, data, *touched))
                    added += 1
            finally:  # a read that failed midway: what was buffered keeps its states
                if not holding:
                    self._release_held()
            if written is not None:
                written.users.update(mine_users)
                written.accounts.update(mine_accounts)
            self._ensure_writer()
            install_sigterm()
        if overdue and not self._committing:
            # Outside the lock: commit() takes the commit lock first. Not while the writer
            # commits: this call would wait for that commit (the intake's lock held, so
            # nothing applies meanwhile), then commit what came since, as the writer does
            # as soon as it is done.
            self.commit()
        return added

    def look_up(self, message_ids: list[str], *, new: Iterable[str] = ()) -> None:
        """Ask the file at once which of ``message_ids`` it holds, for the records that follow.

        The intake records a chunk of messages one at a time (each its own tier
        check); one query for the chunk replaces one per message. The answers
        hold until the next call (a commit meanwhile adds the ids it logged, so a
        commit by the writer thread amid the chunk costs no query per message).
        ``new`` are ids the caller knows no log holds yet (made by this process
        for messages it records once): answered without asking, and without a
        query at all when they are the whole chunk (the query is a read that
        finds its page cache stale after each commit: some 100 µs a chunk).

        Added in version 0.1.0.
        """
        logged = self._inner.logged(message_ids) if message_ids else set()
        with self._lock:
            self._asked, self._logged = {*message_ids, *new}, logged

    def _load_user(self, user_id: str) -> UserState | None:
        found = self._users.get(user_id)
        return self._inner.user(user_id) if found is None else decode_user(found)

    def _load_account(self, account_id: str) -> AccountState | None:
        found = self._accounts.get(account_id)
        return self._inner.account(account_id) if found is None else decode_account(found)

    def commit(self) -> int:
        """Commit everything buffered now; return how many messages were committed.

        Added in version 0.1.0.
        """
        with self._commit_lock:
            if self._committing:
                return 0  # re-entered (a signal handler): the outer commit is under way
            self._committing = True
            if threading.current_thread() is self._thread:
                self._pacing = threading.get_ident()  # see ``_make_way``
            try:
                return self._commit()
            finally:
                self._committing = False
                self._pacing = None

    def _commit(self) -> int:
        """Commit the buffer (the commit lock is held).

        The overlay already holds each state with the buffer's messages folded
        in, so when nothing else wrote to the file since the last commit, its
        states are written as they are; otherwise (another process committed,
        an ``update_user()`` raced with this commit...) the messages are folded
        again into the states as committed (``SQLiteStore.record_folded``).
        """
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._oldest = None
            follower = self._follower
            mark = 0 if follower is None else follower[0]()
            held = len(self._held_users) + len(self._held_accounts)
            if self._holder is None and (not batch or held > _HOLD):
                self._release_held()  # idle, or too many: the states go back to bytes
            else:
                self._flush_held()  # encoded for the commit, kept for the next chunks
            # The batch is the whole buffer: the states its messages touched, and how many
            # of them each, are what ``_waiting`` counts (no need to go through the batch).
            counts = dict(self._waiting)
            states = self._snapshot(counts.keys())
            begun = self._updates
            fault = None if batch else self._look_outside()
        if fault is not None and self._on_error is not None:
            self._on_error(fault)
        if not batch:
            if follower is not None:
                follower[1](mark)
            return 0
        version = self._version

        def folded() -> Folded | None:
            # Asked under the file's write lock: an update begun since the snapshot
            # may have written a state the snapshot predates.
            return states if self._updates == begun else None

        try:
            _, self._version = self._inner.record_folded(
                batch,
                folded,
                outbox=self._outbox,
                version=version,
            )
        except StoreError as exc:
            with self._lock:
                self._buffer[:0] = batch
                self._oldest = time.monotonic()
                excess = len(self._buffer) - _MAX_BUFFER
                if excess > 0:
                    self._forget(self._buffer[:excess], None, keep=False)
                    del self._buffer[:excess]
                    self._inexact.update(self._waiting)  # they hold what is never committed
            if self._on_error is not None:
                self._on_error(exc)
            return 0
        with self._lock:
            foreign = version != self._version
            asked, logged = self._asked, self._logged
            logged.update(asked.intersection(map(_first, batch)))
            self._forget(batch, counts, keep=not foreign)
            if foreign:
                # Another connection committed: what the overlay still holds may miss it.
                self._drop_kept()
                self._inexact.update(self._waiting)
            elif len(self._users) + len(self._accounts) > _KEEP:
                self._drop_kept()
        if follower is not None:
            follower[1](mark)
        if self._on_commit is not None:
            self._on_commit(len(batch))
        return len(batch)

    def _look_outside(self) -> StoreError | None:
        """Idle: drop the kept states if another connection changed the file (lock held).

        No commit will tell what others commit meanwhile, so ask once. A file
        that cannot be asked drops them too: reads then go to it, and fail.
        """
        if not (self._users or self._accounts):
            return None
        try:
            now: int | None = self._inner.data_version()
            fault = None
        except StoreError as exc:
            now, fault = None, exc
        if now is None or now != self._version:
            self._drop_kept()
            self._version = now
        return fault

    def _snapshot(self, keys: KeysView[_Key]) -> Folded | None:
        """Return the overlay's states ``keys``, if they can be written as they are.

        Not while an update is under way, nor if one of them may miss a write
        to the file (lock held).
        """
        if self._updates != self._updated or not keys.isdisjoint(self._inexact):
            return None
        users, accounts = self._users, self._accounts
        return (
            {key[1:]: users[key[1:]] for key in keys if key[0] == "u"},
            {key[1:]: accounts[key[1:]] for key in keys if key[0] == "a"},
        )

    def _forget(
        self, batch: list[_Entry], counts: Mapping[_Key, int] | None, *, keep: bool
    ) -> None:
        """Count ``batch``'s messages out of their overlay states (lock held).

        ``counts`` are the batch's messages per state, if the caller has them
        (else they are counted here). A state whose buffered messages are all
        committed is the file's state: with ``keep`` (and if exact) it stays, so
        the next messages of a busy user neither read nor decode it from the file
        again; else it goes.
        """
        # Per state, not one message at a time: the same counts, a fraction of the
        # writer's time under the GIL (a state's messages all counted out at once is
        # what a state counted out one message at a time ends as). A piece of
        # messages at a time, each in a few calls.
        waiting, counted = self._waiting, Counter[_Key]()
        for part in _pieces(batch):
            self._buffered_ids.difference_update(map(_first, part))
            if counts is None:
                counted.update(chain.from_iterable(map(_touched, part)))
            if len(part) == 4 * PIECE:
                self._make_way()
        if counts is None:
            counts = counted
        for done, (key, count) in enumerate(counts.items(), 1):
            if not done % (4 * PIECE):
                self._make_way()
            left = waiting[key] - count
            if left > 0:
                waiting[key] = left
            elif keep and key not in self._inexact:
                del waiting[key]
            else:
                self._drop(key)

    def _drop_kept(self) -> None:
        """Drop the overlay states no buffered message needs: reads go to the file (lock held)."""
        waiting = self._waiting
        for user_id in [k for k in (*self._users, *self._held_users) if "u" + k not in waiting]:
            self._users.pop(user_id, None)
            self._held_users.pop(user_id, None)
        for account_id in [
            k for k in (*self._accounts, *self._held_accounts) if "a" + k not in waiting
        ]:
            self._accounts.pop(account_id, None)
            self._held_accounts.pop(account_id, None)

    def _drop(self, key: _Key) -> None:
        self._waiting.pop(key, None)
        self._inexact.discard(key)
        if key[0] == "u":
            self._users.pop(key[1:], None)
            self._held_users.pop(key[1:], None)
        else:
            self._accounts.pop(key[1:], None)
            self._held_accounts.pop(key[1:], None)

    def _ensure_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._write_loop, name="pqlsdk-writer", daemon=True
            )
            self._thread.start()

    def _write_loop(self) -> None:
        """Commit each batch once its oldest message is half an interval old.

        Not ``interval`` after the last commit ended: a commit of a busy
        interval's messages takes a good part of one, and the recording thread
        commits inline once the oldest is ``interval`` old, which then happened
        at nearly every commit of a burst, stalling the intake for the length
        of the commit. Idle, the buffer is looked at every half interval and
        ``commit()`` (which checks whether others changed the file) runs
        about once per interval, as before.
        """
        half = self._interval / 2
        idle_since = time.monotonic()
        while not self._stop.wait(self._delay(half)):
            oldest, now = self._oldest, time.monotonic()
            if now - (idle_since if oldest is None else oldest) < (
                2 * half if oldest is None else half
            ):
                continue
            self.commit()
            idle_since = time.monotonic()

    def _delay(self, half: float) -> float:
        """How long the writer sleeps: until the oldest buffered message is ``half`` old."""
        oldest = self._oldest
        return half if oldest is None else max(0.0, oldest + half - time.monotonic())

    # -- reads see the overlay; everything else commits first -----------------

    def user(self, user_id: str) -> UserState | None:
        """Return the user as this process last changed it, else as committed.

        Added in version 0.1.0.
        """
        with self._lock:
            held = self._held_users.get(user_id)
            found = self._users.get(user_id) if held is None else encode(held)  # a copy
        return self._inner.user(user_id) if found is None else decode_user(found)

    def account(self, account_id: str) -> AccountState | None:
        """Return the account as this process last changed it, else as committed.

        Added in version 0.1.0.
        """
        with self._lock:
            held = self._held_accounts.get(account_id)
            found = self._accounts.get(account_id) if held is None else encode(held)  # a copy
        return self._inner.account(account_id) if found is None else decode_account(found)

    def maintain(self, aggregates: Iterable[Aggregate]) -> int:
        """Commit, then let the inner store rebuild new aggregates.

        Added in version 0.1.0.
        """
        self.commit()
        try:
            return self._inner.maintain(aggregates)
        finally:
            with self._lock:  # states rebuilt in the file: the overlay's may miss it
                self._drop_kept()
                self._inexact.update(self._waiting)

    def update_user(self, user_id: str, change: Callable[[UserState], T]) -> T:
        """Update atomically in the file (exact across processes), and in the overlay.

        ``change`` sees the user as committed, without the messages still
        buffered: it changes what messages never do (tiers, moment records),
        and the overlay takes those fields from the file's new state.

        Added in version 0.1.0.
        """
        return self._update("u", user_id, change, self._inner.update_user)

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Update atomically in the file, and in the overlay (see ``update_user``).

        Added in version 0.1.0.
        """
        return self._update("a", account_id, change, self._inner.update_account)

    def _update(
        self,
        kind: str,
        key: str,
        change: Callable[[Any], T],
        update: Callable[[str, Callable[[Any], T]], T],
    ) -> T:
        """Run ``change`` in the file; copy the fields it may change into the overlay's state.

        Messages fold into the overlay meanwhile: one that read the state from the
        file before this commit finds its fields replaced here; one that reads it
        after finds them in the file. A commit taking its snapshot meanwhile
        folds its messages again (``_commit``).
        """
        written: list[Any] = []

        def keep(state: Any) -> T:
            result = change(state)
            written.append(state)
            return result

        with self._lock:
            self._updates += 1
        try:
            result = update(key, keep)
            with self._lock:
                held: UserState | AccountState | None = (
                    self._held_users if kind == "u" else self._held_accounts
                ).get(key)
                states = self._users if kind == "u" else self._accounts
                found = states.get(key)
                if held is not None:  # newer than its bytes, which the release replaces
                    if isinstance(held, UserState):
                        held.moments = written[-1].moments
                    held.tiers = written[-1].tiers
                elif found is not None:
                    mine: UserState | AccountState
                    if kind == "u":
                        mine = decode_user(found)
                        mine.moments = written[-1].moments
                    else:
                        mine = decode_account(found)
                    mine.tiers = written[-1].tiers
                    states[key] = encode(mine)
        finally:
            with self._lock:
                self._updated += 1
        return result

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Commit, then read the log.

        Added in version 0.1.0.
        """
        self.commit()
        return self._inner.messages(subject)

    def count(self) -> int:
        """Commit, then count the log.

        Added in version 0.1.0.
        """
        self.commit()
        return self._inner.count()

    def prune(self, before: datetime) -> int:
        """Commit, then prune the log.

        Added in version 0.1.0.
        """
        self.commit()
        return self._inner.prune(before)

    def close(self) -> None:
        """Commit what is buffered, stop the writer and close the inner store.

        Added in version 0.1.0.
        """
        self._stop.set()
        self.commit()
        unwatch(self)
        self._inner.close()

    def after_fork(self) -> None:
        """Start empty: the parent commits what it buffered.

        Added in version 0.1.0.
        """
        self._reset()

    def at_exit(self) -> None:
        """Commit what is buffered.

        Added in version 0.1.0.
        """
        self.commit()

    def __repr__(self) -> str:
        return f"BufferedStore({self._inner!r}, interval={self._interval})"
