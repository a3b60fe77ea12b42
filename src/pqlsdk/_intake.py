"""The intake: accepted messages on their way into the store, off the request path.

``track()``, ``identify()`` and ``group()`` check and encode a message on the
caller's thread (so a bad event is refused at once, and the caller may reuse its
dicts), append the encoded bytes here and return: a few microseconds. Folding
the message into state, its aggregates, tier-crossing checks and queueing it for
the collector (tens of microseconds with rules loaded) happen on the intake
thread, a lazily started daemon that wakes when a message arrives and lets a
burst gather for ``gather`` seconds first, so one wake-up applies many. While
the host calls, that thread makes way for it (``_pacing``): slices of a few
messages, each followed by a nap, and the backlog applied at full speed in
the host's next lull. A store whose writes cost round trips to a server
(``stores.PaysPerRoundTrip``: Redis) is fed otherwise while the host calls:
whatever gathered over its ``intake_window`` (a millisecond or two), one chunk
at a time, so a chunk's round trips are paid once for many messages.

Reads must see every write the same client accepted, so a read (``score()``,
``decide()``, ``gate()``, ``user()``, ``stats()``, ``flush()``...) first applies
whatever is still pending, in its own thread, under the same lock as the intake
thread: messages are applied once each and in the order they were accepted.

Bounds, without a journal: at most ``max_pending`` messages wait (1,000: a request burst fits,
and what a SIGKILL can lose stays a few tens of milliseconds of applying).
Past that the accepting call sleeps in steps of a fraction of a millisecond
(handing the GIL to the intake thread) until there is room, and after
``_THROTTLE`` seconds applies a chunk itself: memory stays bounded, nothing is
dropped, a producer faster than the intake is slowed to its pace, and no
single call pays for the whole backlog. Pending items are encoded bytes, not
object graphs, so they add no work to GC passes.

With a journal (a buffered SQLite store: see ``_journal``), the call also
writes the message to the journal file before it returns, so a SIGKILL loses
nothing that was accepted, and the bounds are in bytes. Up to ``memory_bytes``
(16 MiB, some 80,000 calls) of waiting messages are also kept in memory; past
that, messages go to the journal only and the intake reads them back from the
file when it reaches them (a ``_Spill`` in the queue stands for them, so they
keep their place among the others and are applied once each): a burst far
faster than the intake piles up on disk, not in the process. Only past
``max_bytes`` of messages waiting (``Delivery.backlog_bytes``, 256 MiB) does
``on_full`` apply, and never as an unbounded stall: ``"block"`` waits up to
``block_timeout`` for the intake to make room, then drops the message; the
others drop it at once (what was accepted is never dropped to make room).
Each drop is counted (``backlog_full``) and logged. A journal that cannot be
written (a full disk) costs the crash safety of that message, not the
message: it is queued in memory all the same and the fault counted
(``journal_error``).

After ``fork()`` the child forgets what its parent had pending (the parent applies
it) and starts its own thread on first use; at exit, pending messages are applied
before buffered stores commit and outboxes drain (exit phase ``APPLY``).
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice, repeat
from typing import Final, cast

from ._journal import Journal
from ._lifecycle import APPLY, install_sigterm, unwatch, watch
from ._pacing import HOST, SHORTEST_NAP, Pacer
from ._stats import logger

__all__ = ["Intake"]

_CHUNK: Final = 64
"""Messages a calling thread takes from the queue at once (one intake lock for many),
yet few enough that a caller paying for a backlog waits about a millisecond."""
_READ_CHUNK: Final = 256
"""Messages a reader applying the whole backlog (``drain()`` without a limit: a read, a
flush, close) takes at once. A chunk's own work (looking up its ids, holding its states,
setting up its tier checks) is then paid a quarter as often as with ``_CHUNK``; the thread
applying the next chunk waits for this one, about a millisecond."""
_BATCH: Final = 128
"""Messages the intake thread takes at once while the host makes no calls. Each
chunk is followed by a nap (``_HANDOFF``) that hands the GIL to a host thread
waiting for it; between chunks the intake looks whether the host called
meanwhile, so a host that starts calling waits for the rest of one chunk at
most (a millisecond or two), not for a whole backlog. A reader waits for at
most this chunk before applying the rest. For a store that pays per round
trip, also the most the intake takes while the host calls (``_gathered``)."""
_HANDOFF: Final = 0.00005
"""The nap after a full chunk, s: long enough for a thread woken to take the GIL
to take it (a store statement did this until the chunk's ids were no longer
asked of the file); a reader applying the backlog meanwhile takes the next chunk."""
_SLICE: Final = 2
"""Messages the intake thread takes at once while the host is calling (some 40 µs
holding the GIL, the longest a host call waits for it: see ``_pacing``), each
slice followed by a nap, while fewer than ``_BEHIND`` wait; ``_SLICE_BEHIND``
past that, so the intake keeps up with a host calling 10,000 times a second on
a loaded machine (slices of 2 fell behind there). Without a journal the backlog's
bound is ``max_pending``, so slices are taken only while the queue is under
half of it: past that, full chunks make room (the caller waits in
``_throttle``, calls no more, and so lets the intake run)."""
_BEHIND: Final = 64
"""Messages waiting from which the intake, while the host calls, takes larger slices."""
_SLICE_BEHIND: Final = 8
"""Messages per slice while the intake is behind (some 150 µs under the GIL)."""
_THROTTLE: Final = 0.05
"""Longest a call waits for the intake thread before applying a chunk itself, s."""
_STEP: Final = 0.0002
"""Polling step while waiting for the intake thread, s."""
_POLL: Final = 0.05
"""Longest the intake thread sleeps while something may be pending, s."""


class _Marker:
    """Put in the queue by ``settle()``; flagged when everything before it was applied."""

    __slots__ = ("reached",)

    def __init__(self) -> None:
        self.reached = False


class _Spill:
    """Stands in the queue for messages that are in the journal only, from a place on."""

    __slots__ = ("offset", "ready", "segment", "size", "unread")

    def __init__(self, segment: int, offset: int) -> None:
        self.segment = segment  # where the next message not yet read back starts
        self.offset = offset
        self.unread = 0  # messages in the journal from there on (appends add to them)
        self.size = 0  # and their bytes
        self.ready: deque[bytes] = deque()  # read back, not yet taken


def _parted(items: Sequence[object]) -> tuple[list[bytes], list[_Marker]]:
    """Part taken items into their messages and their flush markers, each in order."""
    messages = [item for item in items if type(item) is bytes]
    markers = [item for item in items if type(item) is _Marker]
    return messages, markers


class Intake:
    """Encoded messages accepted by the client and not yet applied."""

    def __init__(
        self,
        apply: Callable[[list[bytes]], None],
        *,
        max_pending: int = 1_000,
        gather: float = 0.002,
        journal: Journal | None = None,
        max_bytes: int = 256 << 20,
        memory_bytes: int = 16 << 20,
        on_full: str = "drop_newest",
        block_timeout: float = 0.05,
        on_fault: Callable[[str, str], None] | None = None,
        on_drop: Callable[[str, str, int], None] | None = None,
        window: float | None = None,
    ) -> None:
        """Hand pending messages to ``apply`` (in order, a chunk at a time).

        ``apply`` must not raise for run-time faults: it counts them (the client's
        ``_write`` does); anything it does raise is logged and the chunk is lost.
        With a ``journal``, each message is written to it before ``put()``
        returns, up to ``memory_bytes`` of them are also kept in memory, and up
        to ``max_bytes`` of messages (not ``max_pending``) wait; past that,
        ``on_full`` and ``block_timeout`` apply. ``on_fault(reason, detail)`` is
        told of journal write errors (``journal_error``) and ``on_drop(reason,
        detail)`` of each message dropped (``backlog_full``, or
        ``journal_lost``: journal files deleted before they were read back).
        With a ``window`` (seconds), the intake takes what gathered over it
        while the host calls, not slices of a few messages (``_gathered``).
        """
        # The intake thread must not keep a dropped client alive: a bound method is
        # held weakly, and strongly (``_hold``) only while messages wait for it.
        self._apply: Callable[[], Callable[[list[bytes]], None] | None] = (
            weakref.WeakMethod(apply) if inspect.ismethod(apply) else lambda: apply
        )
        self._max_pending = max_pending
        self._gather = gather
        self._journal = journal
        self._max_bytes = max_bytes
        self._memory_bytes = memory_bytes
        self._block = on_full == "block"
        self._block_timeout = block_timeout
        self._window = window
        self._on_fault = on_fault or _log_fault
        self._on_drop = on_drop or _log_drop
        self._reset()
        watch(self, exit_phase=APPLY)

    def _reset(self) -> None:
        self._pending: deque[bytes | _Marker | _Spill] = deque()
        self._lock = threading.RLock()
        self._owner: int | None = None  # the thread applying, while it applies
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._hold: Callable[[list[bytes]], None] | None = None
        # Accounts kept under the journal's lock (or this one), appends and takes alike.
        self._books = threading.Lock() if self._journal is None else self._journal.lock
        self._waiting = 0  # bytes of the messages pending (in memory or the journal only)
        self._memory = 0  # bytes of the messages pending in memory
        self._spilled = 0  # messages pending in the journal only
        self._spills = 0  # the ``_Spill`` items standing for them in the queue
        self._applied = 0  # messages applied (or lost to a failed apply) since the reset
        self._pacer = Pacer(back_off=self._journal is not None)  # the journal holds a backlog
        self._passed = 0  # messages of the chunk being taken that the journal lost

    @property
    def applied(self) -> int:
        """How many messages were applied: the journal's records up to this one are in the store."""
        return self._applied

    def put(self, data: bytes) -> None:
        """Accept one encoded message; the intake thread applies it within milliseconds.

        With a journal, ``data`` is written to it and queued under its lock, in
        one order for every thread: in memory, unless past ``memory_bytes`` in
        memory, or while the newest messages are in the journal only, it joins
        them there (``_spill``); a message that could not be written is queued
        in memory, after them. All in this one frame: it runs on every call.
        """
        HOST.calls += 1
        journal = self._journal
        if journal is None:
            self._pending.append(data)
        else:
            size = len(data)
            if self._waiting + size > self._max_bytes and not self._room(size):
                self._on_drop("backlog_full", "the journal's backlog is full: message dropped", 1)
                return
            # The journal's lock, without ``with``: a lock's ``__enter__`` and ``__exit__``
            # (Python 3.11) cost a fifth of a microsecond more than these two calls.
            books = self._books
            books.acquire()
            try:
                try:
                    at: tuple[int, int] | None = journal.append(data)
                except OSError as exc:  # queued all the same: only its crash safety is lost
                    self._on_fault("journal_error", f"cannot write the journal: {exc}")
                    at = None
                pending = self._pending
                if at is not None and (
                    self._memory >= self._memory_bytes or (pending and type(pending[-1]) is _Spill)
                ):
                    self._spill(at, size)
                else:
                    pending.append(data)
                    self._memory += size
                self._waiting += size
            finally:
                books.release()
        if self._hold is None:  # keep the client alive until this is applied
            self._hold = self._apply()
        if journal is None and self._full():
            self._throttle()
        elif not self._wake.is_set():
            if self._thread is None:
                self._start()
            self._wake.set()

    def _room(self, size: int) -> bool:
        """Under ``on_full="block"``, wait up to ``block_timeout`` for the intake to make room.

        Never from the intake's own work (a callback that tracks): it would wait for itself.
        """
        if not self._block or threading.get_ident() in (self._owner, self._thread_id()):
            return False
        if self._thread is None:
            self._start()
        self._wake.set()
        deadline = time.monotonic() + self._block_timeout
        while time.monotonic() < deadline:
            time.sleep(_STEP)
            if self._waiting + size <= self._max_bytes:
                return True
        return False

    def _spill(self, at: tuple[int, int], size: int) -> None:
        """Count a message written at ``at`` in the journal only (the journal's lock is held).

        It joins the newest ``_Spill`` if the queue ends with one, else starts one there.
        """
        pending = self._pending
        spill = pending[-1] if pending else None
        if not isinstance(spill, _Spill):
            spill = _Spill(*at)
            pending.append(spill)
            self._spills += 1
        spill.unread += 1
        spill.size += size
        self._spilled += 1

    def _full(self) -> bool:
        """Whether the pending messages (no journal) reached their bound."""
        return len(self._pending) >= self._max_pending

    def pending(self) -> int:
        """How many accepted messages (and flush markers) wait to be applied."""
        return len(self._pending) - self._spills + self._spilled

    def drain(self, *, limit: int | None = None, chunk: int | None = None) -> None:
        """Apply what was pending when called (or its oldest ``limit``), in this thread.

        The lock is taken per ``chunk`` messages (``_READ_CHUNK`` for the whole backlog,
        else ``_CHUNK``), so a caller paying for a backlog never waits
        for more than one chunk of another thread's work; messages accepted
        during the call are left to the intake thread. Called from inside an
        apply (an ``on_tier_change`` callback that reads the client, or a signal
        handler that interrupted one), it returns at once: the state is already
        that of the message being applied, and the apply must not be re-entered.
        """
        pending = self._pending
        if not pending and self._owner is None:
            return  # the common case: nothing pending, nothing being applied
        me = threading.get_ident()
        if self._owner == me:
            return
        if chunk is None:
            chunk = _READ_CHUNK if limit is None else _CHUNK
        waiting = self.pending()
        left = waiting if limit is None else min(limit, waiting)
        if not left:
            with self._lock:  # nothing to take: wait out the chunk another thread applies
                return
        while left > 0:
            with self._lock:
                # The owner is set before the chunk leaves the queue, so a reader that
                # finds the queue empty also finds the chunk still being applied.
                self._owner = me
                try:
                    messages, markers = self._take(min(chunk, left))
                    if not (messages or markers):  # applied by another thread, or lost
                        self._applied += self._passed
                        self._passed = 0
                        return
                    left -= len(messages) + len(markers)
                    self._apply_chunk(messages, markers)
                finally:
                    self._owner = None
        if not pending:
            # Let go of the client; a put racing with this sees None and holds it again.
            self._hold = None
            if pending:  # pragma: no cover - a put between the two lines above: a race window
                self._hold = self._apply()

    def _take(self, count: int) -> tuple[list[bytes], list[_Marker]]:
        """Take up to ``count`` items off the front of the queue: its messages, its markers.

        The lock is held. While no ``_Spill`` is among them (the queue in memory:
        the usual case), they are taken in a few calls for the chunk (``islice``,
        ``map``, ``sum``), not a loop of tests per message: that loop cost the
        thread applying a backlog a fifth of a microsecond a message.
        """
        pending = self._pending
        head = list(islice(pending, count))
        kinds = set(map(type, head))
        if _Spill in kinds:
            return self._take_spilled(count)
        for _ in repeat(None, len(head)):  # not clear(): a put() may append meanwhile
            pending.popleft()
        if _Marker in kinds:
            messages, markers = _parted(head)
        else:
            messages, markers = cast("list[bytes]", head), []
        memory = sum(map(len, messages))
        with self._books:
            self._memory -= memory
            self._waiting -= memory
        return messages, markers

    def _take_spilled(self, count: int) -> tuple[list[bytes], list[_Marker]]:
        """``_take`` when a ``_Spill`` is among the items: read back from the journal in turn."""
        pending = self._pending
        taken: list[bytes | _Marker] = []
        memory = spilled = size = 0
        while pending and len(taken) < count:
            head = pending[0]
            if not isinstance(head, _Spill):
                pending.popleft()
                taken.append(head)
                if type(head) is bytes:
                    memory += len(head)
                continue
            if not head.ready:
                self._read_back(head)
            while head.ready and len(taken) < count:
                data = head.ready.popleft()
                taken.append(data)
                spilled += 1
                size += len(data)
            with self._books:
                if not head.ready and not head.unread:
                    pending.popleft()  # appends from now on start a new one
                    self._spills -= 1
        with self._books:
            self._memory -= memory
            self._spilled -= spilled
            self._waiting -= memory + size
        return _parted(taken)

    def _read_back(self, spill: _Spill) -> None:
        """Read the next messages of ``spill`` from the journal; count those that are gone."""
        journal = cast("Journal", self._journal)  # only a journal spills
        unread = spill.unread
        records, spill.segment, spill.offset = journal.read(spill.segment, spill.offset, unread)
        spill.ready.extend(records)
        size = sum(len(data) for data in records)
        lost = 0 if records else unread
        with self._books:
            spill.unread -= len(records) + lost
            spill.size -= size
            if lost:
                self._spilled -= lost
                self._waiting -= spill.size
                spill.size = 0
        if lost:
            self._passed += lost  # their places in the journal count as applied with the chunk
            self._on_drop(
                "journal_lost", "the journal was deleted before its messages were applied", lost
            )

    def _apply_chunk(self, messages: list[bytes], markers: list[_Marker]) -> None:
        apply = self._apply()
        try:
            if messages and apply is not None:
                apply(messages)
        except Exception as exc:  # a bug, not a fault: log it, count it, keep the thread alive
            logger.exception("pqlsdk: applying %d message(s) failed", len(messages))
            # Counted as well, so that ``stats()`` shows it: some of the chunk may have
            # been recorded before the failure, but none can be told apart here. The
            # exception's type only: its text may hold a message's values.
            self._on_drop(
                "apply_error",
                f"applying the message(s) failed ({type(exc).__name__}), see the log",
                len(messages),
            )
        finally:
            self._applied += len(messages) + self._passed
            self._passed = 0
        for marker in markers:
            marker.reached = True

    def settle(self, deadline: float | None) -> bool:
        """Wait until what was accepted before this call is applied, or ``deadline``.

        For ``flush()``: the intake thread does the applying and this polls, taking
        no lock, so a flush from a signal handler cannot deadlock with the code
        it interrupted. Returns whether everything before the call was applied.
        """
        if not self._pending and self._owner is None:
            return True
        if threading.get_ident() in (self._owner, self._thread_id()):
            return not self._pending  # nested in an apply: it cannot wait for itself
        marker = _Marker()
        self._pending.append(marker)
        if self._thread is None:
            self._start()
        while not marker.reached:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_STEP)
        return True

    def _thread_id(self) -> int | None:
        thread = self._thread
        return None if thread is None else thread.ident

    def _throttle(self) -> None:
        """Let the intake thread catch up with a backlog, or apply a chunk here."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._wake.set()
            deadline = time.monotonic() + _THROTTLE
            while self._full() and time.monotonic() < deadline:
                time.sleep(_STEP)
        if self._full():
            self.drain(limit=_CHUNK)

    def _start(self) -> None:
        install_sigterm()  # SIGTERM skips atexit; pending messages must not be lost
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="pqlsdk-intake", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        me = threading.current_thread()
        # A reset (fork) retires the thread, and so does its client being collected.
        while not self._closed and self._thread is me and self._apply() is not None:
            # Woken by the first message of a burst; the timeout finds markers that
            # a flush appended without waking us (setting an Event takes a lock).
            if self._wake.wait(_POLL) and self._gather:
                time.sleep(self._gather)  # let a burst gather; releases the GIL
            self._wake.clear()
            while self._pending and not self._closed:  # what came during a drain, too
                self._step()

    def _step(self) -> None:
        """Apply the next chunk: a full one while the host makes no calls, else a slice and a nap.

        See ``_pacing``: while the host calls, the intake makes way for it. A
        store that pays per round trip is fed otherwise (``_gathered``).
        """
        if self._window is not None:
            self._gathered(self._window if self._pacer.calling() else _HANDOFF)
        elif self._pacer.calling() and (
            self._journal is not None or len(self._pending) < self._max_pending // 2
        ):
            size = _SLICE if self.pending() < _BEHIND else _SLICE_BEHIND
            self.drain(limit=size, chunk=size)
            self._pacer.rest()
        else:
            self.drain(limit=_BATCH, chunk=_BATCH)
            time.sleep(_HANDOFF)

    def _gathered(self, window: float) -> None:
        """Apply what gathered (up to ``_BATCH``), then nap for the rest of ``window``.

        For a store that pays round trips per write, not per message: on Redis
        a chunk costs three round trips, tens of µs of client CPU each under the
        GIL, so slices of 2 spent most of the intake's CPU on them and fell
        behind a host calling 10,000 times a second on a loaded machine (its
        backlog reached ``max_pending`` and calls waited in ``_throttle``). A
        chunk started at most once a window (while the host calls) holds what
        the host sent meanwhile (20 messages at that rate, for a 2 ms window);
        the network waits release the GIL. An apply that took longer than the
        window is followed by the shortest nap, and the next chunk, larger,
        holds what came during it: as round trips slow down (a loaded machine
        schedules the server and this thread late), chunks grow, and the
        intake keeps up with fewer round trips per message. They stop at a full
        chunk, as when the host makes no calls (512 did no better on a loaded
        machine, and a reader waits for the whole chunk being applied).
        """
        started = time.monotonic()
        self.drain(limit=_BATCH, chunk=_BATCH)
        time.sleep(max(window - (time.monotonic() - started), SHORTEST_NAP))

    def close(self) -> None:
        """Apply what is pending and stop the intake thread."""
        self.drain()
        self._closed = True
        self._wake.set()
        unwatch(self)

    def after_fork(self) -> None:
        """Forget the parent's pending messages (it applies them) and its thread."""
        if self._journal is not None:
            self._journal.after_fork()
        self._reset()

    def at_exit(self) -> None:
        """Apply what is pending before stores commit and outboxes drain."""
        self.drain()


def _log_fault(reason: str, detail: str) -> None:
    """Tell the host's logs of a journal fault when nobody counts them."""
    logger.warning("pqlsdk: %s (%s)", detail, reason)


def _log_drop(reason: str, detail: str, count: int) -> None:
    """Tell the host's logs of dropped messages when nobody counts them."""
    logger.warning("pqlsdk: dropped %d message(s): %s (%s)", count, detail, reason)
