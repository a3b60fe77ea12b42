"""The clock: every "now" in pqlsdk comes from one injectable object.

Default timestamps, windows such as "within 7 days", recency, cooldowns and
retention all ask the client's clock, never ``datetime.now()`` directly, so tests
and replays can run at any instant they choose.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from ._exceptions import ConfigError

__all__ = ["Clock", "FixedClock", "SystemClock", "from_micros", "micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_DAY = 86_400_000_000


@runtime_checkable
class Clock(Protocol):
    """Anything with a ``now()`` that returns a timezone-aware UTC datetime.

    Added in version 0.1.0.
    """

    def now(self) -> datetime:
        """Return the current instant, timezone-aware, in UTC.

        Added in version 0.1.0.
        """
        ...


class SystemClock:
    """The wall clock, in UTC.

    Added in version 0.1.0.
    """

    def now(self) -> datetime:
        """Return the wall-clock time in UTC.

        Added in version 0.1.0.
        """
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that stands still until told to move; for tests and replay.

    Thread-safe: several threads may read it while one advances it.

    Added in version 0.1.0.
    """

    def __init__(self, at: datetime | str) -> None:
        self._lock = threading.Lock()
        self._now = _aware(at)

    def now(self) -> datetime:
        """Return the instant the clock was last set to.

        Added in version 0.1.0.
        """
        return self._now

    def set(self, at: datetime | str) -> None:
        """Move the clock to ``at`` (a tz-aware datetime or an ISO-8601 string).

        Added in version 0.1.0.
        """
        moved = _aware(at)
        with self._lock:
            self._now = moved

    def advance(self, by: timedelta) -> None:
        """Move the clock forward by ``by``.

        Added in version 0.1.0.
        """
        with self._lock:
            self._now = self._now + by

    def __repr__(self) -> str:
        return f"FixedClock({self._now.isoformat()!r})"


def _aware(at: datetime | str) -> datetime:
    """Parse and check an instant given to ``FixedClock``; naive times are refused."""
    value = datetime.fromisoformat(at.replace("Z", "+00:00")) if isinstance(at, str) else at
    if value.tzinfo is None:
        raise ConfigError(f"FixedClock needs a timezone-aware instant, got naive {value!r}")
    return value.astimezone(UTC)


def micros(at: datetime) -> int:
    """Return ``at`` as whole microseconds since the Unix epoch (exact, no float)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """Return the UTC datetime for microseconds since the Unix epoch."""
    return _EPOCH + timedelta(microseconds=value)
