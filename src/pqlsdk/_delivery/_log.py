"""What delivery tells the host's logs: a collector that fails, recovers, or is left behind.

A sender that retries quietly looks, from the host, exactly like one that
works. So, on the ``pqlsdk`` logger:

- the first failed attempt of an outage logs one warning: the collector (its
  URL, which never holds credentials), the reason, and how many messages are
  kept where ("in the SQLite outbox at ...", or "in memory", lost if the
  process ends first); every failed attempt counts as
  ``errors["delivery_failed"]``;
- while it lasts, one reminder a minute says how long and how many attempts;
- the first answer from the collector ends it with one info line saying how
  many attempts failed in between;
- ``flush()`` leaving messages waiting says how many and where (paced like the
  reminders: a host may flush after every request), and ``close()`` too: a
  durable outbox sends them at the next start; a memory queue loses them,
  counted as ``dropped["undelivered_at_close"]``.

A collector that fails and recovers again and again is announced at most once
a minute (``Throttle``); the outages in between are counted, not logged.
"""

from __future__ import annotations

import threading
from typing import Final

from .._exceptions import StoreError
from .._stats import Counters, Throttle, logger
from ..stores._outbox import Outbox

__all__ = ["DeliveryLog"]

_STILL: Final = "still failing"
_OUTAGE: Final = "outage"
_FLUSH: Final = "flush"


class DeliveryLog:
    """The log lines and counts of one client's delivery to ``collector``."""

    def __init__(self, collector: str, outbox: Outbox, counters: Counters) -> None:
        self._collector = collector
        self._outbox = outbox
        self._counters = counters
        self._clock = counters.monotonic
        self._throttle = Throttle(monotonic=counters.monotonic)
        self._lock = threading.Lock()
        self._failed = 0  # attempts failed since the collector last answered
        self._since = 0.0  # when the first of them failed
        self._announced = False  # whether this outage's first failure was logged

    def failed(self, reason: str) -> None:
        """One attempt failed (``reason`` names no message content): count, and log if due."""
        self._counters.error("delivery_failed", reason, log=False)
        now = self._clock()
        with self._lock:
            self._failed += 1
            starting = self._failed == 1
            if starting:
                self._since = now
            failed, since = self._failed, self._since
        if starting:
            self._announced = self._throttle.note(_OUTAGE) > 0
            if self._announced:
                self._throttle.note(_STILL)  # the reminders' minute starts now
                logger.warning(
                    "delivery to collector %s failed (%s): %s, retrying",
                    self._collector,
                    reason,
                    self._kept(),
                )
        elif self._throttle.note(_STILL):
            self._announced = True  # its end is news too
            logger.warning(
                "collector %s still failing after %.0f s and %d attempt(s) (%s): %s, retrying",
                self._collector,
                now - since,
                failed,
                reason,
                self._kept(),
            )

    def answered(self) -> None:
        """Note that the collector answered (accepted or refused a batch): an outage is over."""
        with self._lock:
            failed, since = self._failed, self._since
            self._failed = 0
        if failed and self._announced:
            logger.info(
                "collector %s is reachable again after %d failed attempt(s) over %.1f s",
                self._collector,
                failed,
                self._clock() - since,
            )

    def unflushed(self, pending: int) -> None:
        """``flush()`` returned with ``pending`` messages still waiting (paced)."""
        if self._throttle.note(_FLUSH):
            logger.warning(
                "flush() returned with %d message(s) not yet delivered to collector %s: %s",
                pending,
                self._collector,
                f"still waiting {self._outbox.where}",
            )

    def left(self, pending: int, when: str) -> None:
        """``close()`` (or the exit drain, ``when``) leaves ``pending`` messages undelivered."""
        if self._outbox.durable:
            logger.warning(
                "%s: %d message(s) not delivered to collector %s: kept %s, sent at the next start",
                when,
                pending,
                self._collector,
                self._outbox.where,
            )
            return
        self._counters.dropped(
            "undelivered_at_close",
            f"{when}: not delivered to collector {self._collector}, "
            "and a memory queue is lost with the process",
            pending,
        )

    def _kept(self) -> str:
        try:
            pending = self._outbox.pending()
        except StoreError:  # the store's own fault is counted and logged where it happens
            return f"messages kept {self._outbox.where}"
        if self._outbox.durable:
            return f"{pending} message(s) kept {self._outbox.where}"
        return f"{pending} message(s) kept in memory (lost if the process ends before delivery)"
