"""The batcher: takes messages from an outbox and delivers them in batches.

Why it looks like this:

- The sender thread starts lazily, on the first message, never at import or
  construction, and is a daemon: a hung collector can never keep the host
  process alive.
- After ``fork()`` (gunicorn ``--preload``, multiprocessing) the child gets fresh
  locks and no thread; the next message starts its own sender. A memory outbox
  forgets what the parent queued (the parent delivers it), so nothing is sent
  twice.
- A batch is sent when ``flush_at`` messages wait, when the oldest has waited
  ``flush_interval``, or at ``max_batch_bytes``; retries use ``RetryPolicy`` with
  full jitter and honour ``Retry-After``; other 4xx drop the batch, count it and
  call ``on_error``.
- ``flush()`` and ``close()`` wait at most their timeout, whatever the collector
  or DNS does, and never deadlock: the locks are re-entrant (a signal handler
  running on a thread that holds one), and the sender thread calling ``flush()``
  (from a callback) returns at once.
- At exit, an ``atexit`` hook drains for ``shutdown_timeout`` and logs how many
  messages it could not send (a durable outbox keeps them for the next run).
- A durable outbox that holds messages from an earlier run (a crash, a close
  that timed out) starts the sender at once (``resume``), not at the next
  message.
- Every failed attempt, the end of an outage and what close leaves behind are
  told to the host's logs by ``DeliveryLog``.
- A store fault (an outbox that cannot be read or counted: a disk fault) never
  kills the sender thread nor escapes from ``flush()``/``close()``: the sender
  counts it, and a host's call hands it to ``on_store_error`` (the client counts
  it, or raises it in strict mode). A flush that cannot count the outbox returns
  at once with the last count it read; ``close()`` stops the sender whatever
  happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Literal, get_args

import msgspec

from .._exceptions import (
    BatchRejectedError,
    ConfigError,
    DeliveryError,
    RetryableDeliveryError,
    StoreError,
)
from .._lifecycle import DRAIN, unwatch, watch
from .._pacing import Pacer
from .._retry import RetryPolicy
from .._stats import Counters, logger
from ..messages import new_message_id
from ..stores._outbox import Lease, Outbox
from ..transports import AsyncTransport, Batch, Transport
from ._log import DeliveryLog
from ._outbox import FullPolicy

__all__ = ["Batcher", "Delivery", "FlushResult"]


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """How messages reach the collector. Every field has a default that suits a web app.

    - ``mode``: ``"background"`` (a sender thread) or ``"caller"`` (send in the
      calling thread, for scripts and serverless functions).
    - ``durability`` (SQLite stores): ``"buffered"`` commits in batches at least
      every ``buffer_interval`` seconds (a SIGKILL loses at most that window; a
      normal exit loses nothing); ``"sync"`` commits each message to the outbox
      before the call returns.
    - ``flush_at`` / ``flush_interval`` / ``max_batch_bytes``: when a batch goes.
    - ``max_queue``: the memory outbox's bound. ``backlog_bytes`` (buffered
      SQLite stores): how many bytes of accepted messages may wait for the
      intake in its journal on disk (256 MiB, over a million calls; only the
      first 16 MiB are also held in memory).
    - ``on_full`` / ``block_timeout``: what happens at either bound, never an
      unbounded stall: ``"drop_newest"`` drops the new message,
      ``"drop_oldest"`` makes room by dropping the oldest queued for the
      collector (the journal never drops what it accepted: there it drops the
      new one), ``"block"`` waits up to ``block_timeout`` seconds for room, then
      drops the new one. Every drop is counted and logged.
    - ``retry``: backoff and budget per batch. ``shutdown_timeout``: the atexit
      drain's budget. ``lease``: how long a sender holds SQLite or Redis outbox entries.

    Added in version 0.1.0.
    """

    mode: Literal["background", "caller"] = "background"
    durability: Literal["buffered", "sync"] = "buffered"
    buffer_interval: float = 0.2
    flush_at: int = 500
    flush_interval: float = 1.0
    max_batch_bytes: int = 500_000
    max_queue: int = 10_000
    on_full: FullPolicy = "drop_newest"
    block_timeout: float = 0.05
    backlog_bytes: int = 256 << 20
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    shutdown_timeout: float = 5.0
    lease: float = 60.0

    def __post_init__(self) -> None:
        for name in ("buffer_interval", "flush_interval", "shutdown_timeout", "lease"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"Delivery.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("flush_at", "max_batch_bytes", "max_queue", "backlog_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"Delivery.{name} must be at least 1, got {getattr(self, name)!r}"
                )
        if self.on_full not in get_args(FullPolicy):
            choices = ", ".join(map(repr, get_args(FullPolicy)))
            raise ConfigError(f"Delivery.on_full must be one of {choices}, got {self.on_full!r}")
        if self.block_timeout < 0:
            raise ConfigError(f"Delivery.block_timeout must be >= 0, got {self.block_timeout!r}")


class FlushResult(msgspec.Struct, frozen=True, gc=False):
    """What a flush achieved: messages delivered during it, and still waiting.

    Added in version 0.1.0.
    """

    delivered: int
    pending: int


class Batcher:
    """Delivers an outbox's messages through a transport."""

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport | None,
        options: Delivery,
        counters: Counters,
        *,
        on_error: Callable[[DeliveryError], None] | None = None,
        on_store_error: Callable[[StoreError], None] | None = None,
        collector: str = "(custom transport)",
    ) -> None:
        self._outbox = outbox
        self.log = DeliveryLog(collector, outbox, counters)
        self._transport = transport
        self._options = options
        self._counters = counters
        self._on_error = on_error
        self._on_store_error = on_store_error
        import random  # noqa: PLC0415 - delivery is optional: not loaded by import pqlsdk

        self._rng = random.Random()  # noqa: S311 - jitter, not secrets
        self._reset()
        watch(self, exit_phase=DRAIN)

    def _reset(self) -> None:
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._urgent = False
        self._delivered = 0
        self._queued = 0  # notified since the last drain: cheap, unlike outbox.pending()
        self._oldest: float | None = None
        self._known = 0  # the outbox's size as last counted, plus queued, minus delivered since

    @property
    def outbox(self) -> Outbox:
        """Where messages wait."""
        return self._outbox

    def expect(self, added: int) -> None:
        """Count ``added`` messages a buffered store will queue when it commits.

        Only for ``flush()``'s answer when the outbox cannot be counted; the
        commit's ``notify(counted=True)`` wakes the sender.
        """
        with self._lock:
            self._known += added

    def notify(self, added: int, *, counted: bool = False) -> None:
        """Tell the batcher ``added`` messages were queued; start or wake the sender.

        ``counted``: ``expect()`` already counted them.
        """
        if added <= 0:
            return
        with self._lock:
            self._queued += added
            if not counted:
                self._known += added
            send_now = self._options.mode == "caller" and self._queued >= self._options.flush_at
            if send_now:
                self._queued = 0
        if self._options.mode == "caller" or self._transport is None:
            if send_now and self._transport is not None:
                self._drain(deadline=None)  # outside the lock: other callers keep queueing
            return
        with self._lock:
            if self._closing:
                return
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._ensure_thread()
            if self._queued >= self._options.flush_at:
                self._wake.notify()

    def resume(self, waiting: int) -> None:
        """Start sending now: an earlier run left ``waiting`` messages in a durable outbox.

        The sender thread starts here rather than at the first new message. Caller
        mode sends only when called, and an asyncio transport only when awaited.
        """
        self._known = waiting
        if waiting <= 0 or self._transport is None or self._options.mode == "caller":
            return
        logger.info("%d message(s) wait %s: sending them now", waiting, self._outbox.where)
        with self._lock:
            self._urgent = True
            self._ensure_thread()
            self._wake.notify()

    def _pending(self) -> int | None:
        """Count what waits in the outbox; None if it cannot be counted (the fault is handled)."""
        try:
            self._known = self._outbox.pending()
        except StoreError as exc:
            self._store_failed(exc)
            return None
        return self._known

    def result(self, delivered: int) -> FlushResult:
        """``delivered``, and what waits as best known: the last count read, if none can be now."""
        self._pending()
        return FlushResult(delivered, self._known)

    def _store_failed(self, exc: StoreError) -> None:
        """Count a store fault in the sender thread; hand one in a host's call to the client."""
        if self._on_store_error is None or threading.current_thread() is self._thread:
            self._counters.error("store_error", str(exc))
        else:
            self._on_store_error(exc)

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Deliver what waits, for at most ``timeout`` seconds; report progress.

        In caller mode the caller's thread sends. Called from the sender thread
        itself (a callback), it returns at once instead of waiting on itself.
        """
        start = self._delivered
        if self._transport is None:  # an asyncio transport: only adrain() sends
            return self.result(0)
        if self._options.mode == "caller":
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._lock:
                self._queued = 0
            self._drain(deadline=deadline)
            return self.result(self._delivered - start)
        if threading.current_thread() is self._thread:
            return self.result(0)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._ensure_thread()
            self._urgent = True
            self._wake.notify()
        # Poll with plain sleeps: a flush() from a signal handler may interrupt this
        # very thread inside any lock's wait, and must not try to take it again.
        nudged = time.monotonic()
        while self._pending():  # 0, or None: the outbox cannot be counted, so stop waiting
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            time.sleep(0.01 if left is None else min(0.01, left))
            if time.monotonic() - nudged >= 0.1:
                # Rows leased by another (perhaps dead) sender come free later:
                # wake ours again, so it takes them as soon as their lease ends.
                nudged = time.monotonic()
                with self._lock:
                    self._urgent = True
                    self._wake.notify()
        return FlushResult(self._delivered - start, self._known)

    def close(self, timeout: float | None = None, *, when: str = "close()") -> FlushResult:
        """Flush for at most ``timeout`` seconds, then stop the sender; log what is left.

        ``when`` names the caller in that log line (``close()``, ``at exit``). The
        sender stops even when the flush raised (a strict client's store fault).
        """
        try:
            result = self.flush(timeout)
        finally:
            with self._lock:
                self._closing = True
                self._wake.notify()
            unwatch(self)
        if result.pending:
            self.log.left(result.pending, when)
        return result

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="pqlsdk-sender", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closing and not self._due():
                    self._wake.wait(self._wait_time())
                if self._closing:
                    return
                self._urgent = False
                self._queued = 0
                self._oldest = None
            self._drain(deadline=None)

    def _due(self) -> bool:
        """Whether to drain now: asked to, a full batch waits, or the oldest waited long enough."""
        if self._urgent or self._queued >= self._options.flush_at:
            return True
        if not self._queued or self._oldest is None:
            return False
        return time.monotonic() - self._oldest >= self._options.flush_interval

    def _wait_time(self) -> float:
        if self._oldest is None:
            return self._options.flush_interval
        return max(0.001, self._options.flush_interval - (time.monotonic() - self._oldest))

    def _drain(self, *, deadline: float | None) -> None:
        """Send batches until the outbox is empty, a batch is held back, ``deadline`` or a fault.

        The sender thread naps between batches while the host is calling (see
        ``_pacing``): a host thread waiting for the GIL gets it then, rather
        than when the interpreter forces a switch (up to 5 ms).
        """
        # Naps grow only where what waits meanwhile is not bounded in memory.
        pacer = Pacer(back_off=self._outbox.durable)
        sender = threading.current_thread() is self._thread
        try:
            while deadline is None or time.monotonic() < deadline:
                leased = self._outbox.take(self._options.flush_at, self._options.max_batch_bytes)
                if leased is None or not self._deliver(leased, deadline):
                    return
                if sender and pacer.calling():
                    pacer.rest()
        except StoreError as exc:  # the outbox cannot be read or updated: try at the next flush
            self._store_failed(exc)

    def _deliver(self, leased: Lease, deadline: float | None) -> bool:
        """Send one batch with retries, in this thread; True when the outbox can move on."""
        plan = self._plan(leased, deadline)
        step = next(plan)
        try:
            while True:
                if isinstance(step, Batch):
                    try:
                        self._transport.send(step)  # type: ignore[union-attr]  # not None here
                    except Exception as exc:  # the plan classifies every failure
                        step = plan.send(exc)
                    else:
                        step = plan.send(None)
                else:
                    self._sleep(step)
                    step = next(plan)
        except StopIteration as done:
            return bool(done.value)

    async def adrain(self, transport: AsyncTransport, *, deadline: float | None) -> None:
        """Send batches from the event loop until the outbox is empty, ``deadline``, or a fault."""
        try:
            while deadline is None or time.monotonic() < deadline:
                leased = self._outbox.take(self._options.flush_at, self._options.max_batch_bytes)
                if leased is None or not await self._adeliver(transport, leased, deadline):
                    return
        except StoreError as exc:
            self._store_failed(exc)

    async def _adeliver(
        self, transport: AsyncTransport, leased: Lease, deadline: float | None
    ) -> bool:
        """Send one batch with retries, awaiting; the same plan as ``_deliver``."""
        plan = self._plan(leased, deadline)
        step = next(plan)
        try:
            while True:
                if isinstance(step, Batch):
                    try:
                        await transport.send(step)
                    except Exception as exc:  # the plan classifies every failure
                        step = plan.send(exc)
                    else:
                        step = plan.send(None)
                else:
                    await _sleep(step)
                    step = next(plan)
        except StopIteration as done:
            return bool(done.value)

    def _plan(
        self, leased: Lease, deadline: float | None
    ) -> Generator[Batch | float, BaseException | None, bool]:
        """Decide one batch's attempts: yield the batch to send, or seconds to wait.

        The driver sends the outcome of each send back (None for success, else the
        exception). One plan serves the thread sender and the asyncio one, so
        retries, backoff and budgets can never differ between them.
        """
        batch = Batch(id=new_message_id(), messages=leased.messages, sent_at=datetime.now(UTC))
        policy = self._options.retry
        started = time.monotonic()
        attempt = 0
        while True:
            failure = yield batch
            if failure is None or isinstance(failure, BatchRejectedError):
                self.log.answered()
                self._known = max(0, self._known - len(batch))
            if failure is None:
                self._outbox.ack(leased)
                self._delivered += len(batch)
                self._counters.delivered(len(batch))
                return True
            if isinstance(failure, BatchRejectedError):
                self._outbox.ack(leased)
                self._counters.dropped(
                    "rejected", f"collector refused a batch: {failure}", len(batch)
                )
                self._report(failure)
                return True
            if not isinstance(failure, RetryableDeliveryError):
                # A user-supplied transport raised something else: never kill the sender.
                error = RetryableDeliveryError(f"transport raised {type(failure).__name__}")
                self.log.failed(str(error))
                return self._give_up(leased, error)
            self.log.failed(str(failure))
            delay = policy.delay(attempt, retry_after=failure.retry_after, rng=self._rng)
            attempt += 1
            elapsed = time.monotonic() - started
            waits_past = deadline is not None and time.monotonic() + delay > deadline
            if not policy.allows(attempt, elapsed, delay) or waits_past or self._closing:
                return self._give_up(leased, failure)
            yield delay

    def _give_up(self, leased: Lease, exc: DeliveryError) -> bool:
        """Retries are over for now: the batch goes back to the outbox, in order.

        The next flush tries again. A memory outbox stays bounded by its own cap
        (new messages are dropped and counted when it is full); a durable one
        keeps everything. The failed attempts were counted and logged as they
        failed.
        """
        self._outbox.release(leased)
        self._report(exc)
        return False

    def _sleep(self, seconds: float) -> None:
        """Wait between attempts; ``close()`` cuts the wait short."""
        with self._lock:
            self._wake.wait_for(lambda: self._closing, seconds)

    def _report(self, exc: DeliveryError) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(exc)
        except Exception as hook_error:  # the host's hook must not kill the sender
            self._counters.error("callback_error", f"on_error raised {type(hook_error).__name__}")

    def after_fork(self) -> None:
        """In a forked child: fresh locks, no thread, none of the parent's queue."""
        self._reset()
        self._outbox.forget_inherited()

    def at_exit(self) -> None:
        """Drain for ``shutdown_timeout``; ``close`` logs what could not be sent."""
        if self._closing:
            return
        self.close(self._options.shutdown_timeout, when="at exit")


async def _sleep(seconds: float) -> None:
    """Await ``asyncio.sleep``, imported on first use.

    asyncio (with ssl and sockets) costs tens of milliseconds at import, and
    most hosts never await pqlsdk.
    """
    import asyncio  # noqa: PLC0415 - see above

    await asyncio.sleep(seconds)
