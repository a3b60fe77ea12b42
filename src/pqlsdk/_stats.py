"""Counters of what the client recorded and what it dropped, and why.

Default-mode clients never raise into the host, so drops must be visible some
other way: each one is counted by reason here and logged to the ``pqlsdk``
logger. ``Throttle`` keeps the logging useful under a flood: the first drop of
each reason is logged at once, later ones at most once a minute per reason,
with how many there were since the last line, so a flood of bad events can
neither flood the host's logs nor go quiet after its first line. The same
throttle paces every repeated pqlsdk warning (a collector that stays down, a
store's full buffer): one mechanism, one rule.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Final

import msgspec

__all__ = ["Counters", "Stats", "Throttle"]

logger: Final = logging.getLogger("pqlsdk")

EVERY: Final = 60.0
"""Seconds between two log lines about the same reason, after the first."""


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


class Throttle:
    """Paces log lines per reason: the first at once, then at most one every ``every`` seconds.

    ``note`` says how many occurrences a line should report now (all of those
    since the previous line), or 0 to stay quiet. Occurrences held back are
    reported by the next ``note`` of the same reason once its interval is over,
    by ``overdue()`` (asked whenever anything is counted, and by
    ``Client.stats()``), and by ``rest()`` at close, so none goes unreported.
    ``monotonic`` is injectable: tests move time instead of waiting a minute.
    """

    def __init__(
        self, *, every: float = EVERY, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every
        self._monotonic = monotonic
        self._lock = threading.RLock()  # re-entrant: signal handlers may count too
        self._last: dict[str, float] = {}  # reason -> when its last line was logged
        self._held: Counter[str] = Counter()  # reason -> occurrences not yet reported
        self._detail: dict[str, str] = {}  # reason -> the latest detail held back

    def note(self, reason: str, count: int = 1, detail: str = "") -> int:
        """Count ``count`` occurrences of ``reason``; return how many to log now, or 0."""
        now = self._monotonic()
        with self._lock:
            self._held[reason] += count
            last = self._last.get(reason)
            if last is not None and now - last < self._every:
                self._detail[reason] = detail
                return 0
            self._last[reason] = now
            self._detail.pop(reason, None)
            return self._held.pop(reason)

    def overdue(self) -> list[tuple[str, int, str]]:
        """Held-back counts whose interval is over: ``(reason, count, latest detail)``.

        They count as reported: the caller logs them.
        """
        now = self._monotonic()
        with self._lock:
            due = [r for r in self._held if now - self._last.get(r, now) >= self._every]
            for reason in due:
                self._last[reason] = now
            return [(r, self._held.pop(r), self._detail.pop(r, "")) for r in due]

    def rest(self) -> list[tuple[str, int, str]]:
        """Every held-back count, due or not (at close): ``(reason, count, latest detail)``."""
        with self._lock:
            held = [(r, n, self._detail.pop(r, "")) for r, n in self._held.items()]
            self._held.clear()
            return held


class Counters:
    """Thread-safe counters behind ``Client.stats()``, with throttled logging."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.RLock()  # re-entrant: signal handlers may count too
        self._recorded = 0
        self._delivered = 0
        self._dropped: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self.monotonic: Final = monotonic
        """The clock that paces log lines (injectable for tests); others pacing lines use it too."""
        self._throttle = Throttle(monotonic=monotonic)

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
        with self._lock:
            self._dropped[reason] += count
        self._log("dropped", reason, count, detail)

    def error(self, reason: str, detail: str, count: int = 1, *, log: bool = True) -> None:
        """Count a fault that lost no message, and log it unless the caller logs it itself."""
        with self._lock:
            self._errors[reason] += count
        if log:
            self._log("error", reason, count, detail)

    def _log(self, kind: str, reason: str, count: int, detail: str) -> None:
        report = self._throttle.note(f"{kind}:{reason}", count, detail)
        if report:
            self._line(f"{kind}:{reason}", report, detail)
        self.log_overdue()

    def _line(self, key: str, count: int, detail: str) -> None:
        kind, reason = key.split(":", 1)
        if kind == "dropped":
            total = self._dropped[reason]
            logger.warning(
                "dropped %d message(s) [%s, %d so far]: %s", count, reason, total, detail
            )
        else:
            logger.warning("error [%s, %d so far]: %s", reason, self._errors[reason], detail)

    def log_overdue(self) -> None:
        """Log the counts held back for a minute or more (any reason)."""
        for key, count, detail in self._throttle.overdue():
            self._line(key, count, detail)

    def log_rest(self) -> None:
        """Log every count held back (the client is closing)."""
        for key, count, detail in self._throttle.rest():
            self._line(key, count, detail)

    def snapshot(self) -> Stats:
        """Return the counters as they stand (and log what is overdue)."""
        self.log_overdue()
        with self._lock:
            return Stats(
                recorded=self._recorded,
                delivered=self._delivered,
                dropped=dict(self._dropped),
                errors=dict(self._errors),
            )
