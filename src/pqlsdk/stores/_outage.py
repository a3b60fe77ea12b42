"""Outages of a store's server: refuse fast, hold new messages, replay them on return.

A store on another machine (Redis) can be unreachable or slow; the host's
request path must not wait for it or fail with it. ``Outage`` is the state a
store keeps for that, kept out of the store so the rules read in one place:

- The first call that fails with a connection error or a timeout begins the
  outage: one warning is logged, and from then on calls are refused at once
  (``StoreUnavailableError``, counted as ``errors["store_unavailable"]``)
  without touching the network, so ``gate()`` answers its fallback and
  ``decide()`` no moment in microseconds.
- Recorded messages are not refused: they wait, in order, in a bounded local
  buffer (``errors["store_buffered"]`` counts each). A full buffer turns new
  messages away, counted as ``dropped["buffer_full"]`` and warned about at
  once, then at most once a minute with the count (the client's ``Throttle``).
- At most every ``probe_interval`` seconds one call (whichever comes; others
  never wait for it) probes the server. When it answers, that call replays the
  buffer oldest first, the outage ends, and one info line says how long it
  lasted and how many messages were replayed. Replaying is safe to repeat:
  stores skip messageIds they already hold, so a message whose write timed out
  after it landed is not counted twice.

The counts reach ``Client.stats()`` through ``fault_counts()`` (the client
merges them with its own), because the store, not the client, sees every
refused call and knows when an outage begins and ends.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from itertools import islice
from typing import Final

from .._exceptions import StoreError
from .._stats import Throttle, logger
from ._base import FaultCounts, Record, StoreUnavailableError

__all__ = ["Outage"]

_CHUNK: Final = 100
"""Buffered messages replayed per write: one store round trip per user, not one per message."""


class Outage:
    """Whether a store's server is away, the messages waiting for it, and the counts."""

    def __init__(
        self,
        where: str,
        *,
        capacity: int,
        probe_interval: float,
        probe: Callable[[], None],
        write: Callable[[list[Record]], int],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Track outages of the server ``where`` names (no credentials: it is logged).

        ``probe()`` checks the server (and does any work deferred until it
        returns); ``write(records)`` records messages and returns how many
        were new. Both raise ``StoreError`` while the server is still away.
        ``monotonic`` paces the full-buffer warnings (tests move it by hand).
        """
        self._where = where
        self._capacity = capacity
        self._probe_interval = probe_interval
        self._probe = probe
        self._write = write
        self._recorded = 0
        self._dropped: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._throttle = Throttle(monotonic=monotonic)
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._recovery = threading.Lock()
        self._recoverer: int | None = None  # the thread replaying, while it replays
        self._down = False
        self._since = 0.0
        self._next_probe = 0.0
        self._replayed = 0
        self._buffer: deque[Record] = deque()

    @property
    def down(self) -> bool:
        """Whether an outage is under way."""
        return self._down

    @property
    def buffered(self) -> int:
        """How many messages wait for the server."""
        return len(self._buffer)

    def began(self, exc: Exception, action: str) -> StoreUnavailableError:
        """Note that a call failed to reach the server; return the error to raise.

        The first failure begins the outage and logs the one warning about it.
        """
        now = time.monotonic()
        with self._lock:
            starting = not self._down
            if starting:
                self._down, self._since, self._replayed = True, now, 0
                self._errors["store_outages"] += 1
            self._errors["store_unavailable"] += 1
            self._next_probe = now + self._probe_interval
        if starting:
            logger.warning(
                "%s unreachable (%s): gates answer their fallback, decide() shows "
                "nothing, and new messages wait in a local buffer (up to %d) until it returns",
                self._where,
                exc,
                self._capacity,
            )
        return StoreUnavailableError(f"{self._where}: {action} failed: {exc}")

    def check(self, action: str) -> None:
        """Let a call go to the server, or refuse it at once while the server is away."""
        if not self._down or self._recoverer == threading.get_ident():
            return
        if self._recover():
            return
        with self._lock:
            self._errors["store_unavailable"] += 1
        raise StoreUnavailableError(f"{self._where}: {action} refused: unreachable")

    def hold(self, records: list[Record]) -> bool:
        """Keep ``records`` for later if the server is away (or older ones still wait).

        Returns False when the caller should write them now.
        """
        if not self._down and not self._buffer:
            return False
        if self._recover() and not self._buffer:
            return False
        self.keep(records)
        return True

    def keep(self, records: list[Record]) -> None:
        """Append ``records`` to the buffer; what does not fit is dropped and counted."""
        with self._lock:
            room = max(0, self._capacity - len(self._buffer))
            self._buffer.extend(records[:room])
            self._errors["store_buffered"] += min(room, len(records))
            lost = len(records) - room
            if lost > 0:
                self._dropped["buffer_full"] += lost
            total = self._dropped["buffer_full"]
        report = self._throttle.note("buffer_full", lost) if lost > 0 else 0
        if report:
            logger.warning(
                "%s: the local buffer is full (%d messages); %d new message(s) dropped "
                "[buffer_full, %d so far] until the store returns",
                self._where,
                self._capacity,
                report,
                total,
            )

    def _recover(self, *, force: bool = False) -> bool:
        """Probe the server if a probe is due; if it answers, replay the buffer.

        One thread at a time, and no thread waits for another: a call that finds
        a probe under way is answered as during the outage.
        """
        if not force and time.monotonic() < self._next_probe:
            return False
        if not self._recovery.acquire(blocking=False):
            return False
        self._recoverer = threading.get_ident()
        try:
            try:
                self._probe()
                while True:
                    with self._lock:
                        chunk = list(islice(self._buffer, _CHUNK))
                        if not chunk:
                            self._down = False
                            break
                    try:
                        added = self._write(chunk)
                    except StoreError:  # refused, not away: one at a time, drop only those
                        added = sum(self._write_or_drop(record) for record in chunk)
                    with self._lock:
                        for _ in chunk:
                            self._buffer.popleft()
                        self._recorded += added
                        self._replayed += len(chunk)
            except StoreError:
                with self._lock:
                    self._next_probe = time.monotonic() + self._probe_interval
                return False
        finally:
            self._recoverer = None
            self._recovery.release()
        logger.info(
            "%s back after %.1f s: replayed %d buffered message(s)",
            self._where,
            time.monotonic() - (self._since or time.monotonic()),
            self._replayed,
        )
        self._since = 0.0
        return True

    def _write_or_drop(self, record: Record) -> int:
        """Replay one message; drop it (as a live write would) if the store refuses it.

        A refused message left in the buffer would block every message after it.
        """
        try:
            return self._write([record])
        except StoreUnavailableError:  # pragma: no cover - Redis left again mid-replay: a race
            raise
        except StoreError as exc:
            with self._lock:
                self._dropped["store_error"] += 1
            logger.warning("%s: a buffered message was dropped: %s", self._where, exc)
            return 0

    def finish(self) -> None:
        """Replay what waits if the server answers now; otherwise say what is lost."""
        for _, count, _ in self._throttle.rest():  # drops whose minute had not come yet
            logger.warning("%s: %d more message(s) dropped [buffer_full]", self._where, count)
        if not self._buffer or self._recover(force=True):
            return
        logger.warning(
            "%s still unreachable: %d buffered message(s) lost",
            self._where,
            len(self._buffer),
        )

    def fault_counts(self) -> FaultCounts:
        """Return the counts as they stand."""
        with self._lock:
            return FaultCounts(self._recorded, dict(self._dropped), dict(self._errors))

    def after_fork(self) -> None:
        """Start afresh in a forked child: the parent replays what it buffered."""
        self._reset()
