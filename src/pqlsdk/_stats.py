"""Counters of what the client recorded and what it dropped, and why.

Default-mode clients never raise into the host, so drops must be visible some
other way: each one is counted by reason here and logged to the ``pqlsdk``
logger (the first of each reason, then every ``_LOG_EVERY``-th, so a flood of bad
events cannot flood the host's logs).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Final

import msgspec

__all__ = ["Counters", "Stats"]

logger: Final = logging.getLogger("pqlsdk")
_LOG_EVERY: Final = 1000


class Stats(msgspec.Struct, frozen=True, gc=False):
    """A snapshot of a client's counters (``Client.stats()``).

    pqlsdk never raises on the request path, so these counters are how a host
    sees what was recorded, delivered or dropped: export them to its metrics.

    Added in version 0.1.0.
    """

    recorded: int
    """Messages written to the store."""
    delivered: int
    """Messages the collector accepted."""
    dropped: Mapping[str, int]
    """Messages not recorded, by reason (``not_json``, ``store_error``, ...)."""
    errors: Mapping[str, int]
    """Faults that lost no message (a failed read, a failed prune), by reason."""

    @property
    def dropped_total(self) -> int:
        """All drops, whatever the reason: one number for a dashboard or an alert.

        Added in version 0.1.0.
        """
        return sum(self.dropped.values())


class Counters:
    """Thread-safe counters behind ``Client.stats()``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: signal handlers may count too
        self._recorded = 0
        self._delivered = 0
        self._dropped: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()

    def recorded(self, count: int = 1) -> None:
        """Count ``count`` messages written."""
        with self._lock:
            self._recorded += count

    def delivered(self, count: int) -> None:
        """Count ``count`` messages the collector accepted."""
        with self._lock:
            self._delivered += count

    def dropped(self, reason: str, detail: str, count: int = 1) -> None:
        """Count and log a drop; ``detail`` must not contain traits or properties."""
        if _bump(self._lock, self._dropped, reason, count):
            total = self._dropped[reason]
            logger.warning(
                "dropped %d message(s) [%s, %d so far]: %s", count, reason, total, detail
            )

    def error(self, reason: str, detail: str) -> None:
        """Count and log a fault that lost no message."""
        if _bump(self._lock, self._errors, reason, 1):
            total = self._errors[reason]
            logger.warning("error [%s, %d so far]: %s", reason, total, detail)

    def snapshot(self) -> Stats:
        """Return the counters as they stand."""
        with self._lock:
            return Stats(
                recorded=self._recorded,
                delivered=self._delivered,
                dropped=dict(self._dropped),
                errors=dict(self._errors),
            )


def _bump(lock: threading.RLock, counter: Counter[str], reason: str, count: int) -> bool:
    """Add ``count`` to ``counter[reason]``; True when this occurrence should be logged."""
    with lock:
        before = counter[reason]
        counter[reason] = total = before + count
    return before == 0 or before // _LOG_EVERY != total // _LOG_EVERY
