"""The retry policy: how long to wait between attempts at one batch, and when to stop.

Why it looks like this:

- Waits use exponential backoff with *full* jitter (a uniform draw between 0 and
  the exponential ceiling). When a collector comes back after an outage, every
  host that was retrying would otherwise return at the same instants; spreading
  them over the whole interval avoids that thundering herd.
- A collector's ``Retry-After`` is honoured exactly as a lower bound: the wait
  is never shorter than what the collector asked for.
- A time budget bounds how long one batch can be held (waits included), so a
  long outage cannot pin a batch, and the messages queued behind it, forever.
  ``max_attempts`` optionally bounds the number of sends as well.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import msgspec

from ._exceptions import ConfigError

if TYPE_CHECKING:
    import random

__all__ = ["RetryPolicy", "retry_after_seconds", "retryable_status"]

# Statuses that say "not now" rather than "never"; every 5xx is retryable too.
_RETRYABLE_STATUSES: Final = frozenset({408, 429})


class RetryPolicy(msgspec.Struct, frozen=True, gc=False):
    """Backoff and limits for retrying one batch; times are in seconds.

    - ``base``: the ceiling of the first wait; each retry doubles it.
    - ``cap``: the largest ceiling, however many retries came before.
    - ``budget``: the total time one batch may take, sends and waits included.
    - ``max_attempts``: the most sends of one batch, the first included (None:
      only the budget limits them).

    Raise ``ConfigError`` for a duration that is not a positive finite number or
    an attempt limit below one.
    """

    base: float = 0.5
    cap: float = 30.0
    budget: float = 300.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("base", "cap", "budget"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"RetryPolicy.{name} must be a positive number, got {value!r}")
        limit = self.max_attempts
        if limit is not None and limit < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be at least 1 or None, got {limit!r}")

    def delay(
        self, attempt: int, *, retry_after: float | None, rng: random.Random | None = None
    ) -> float:
        """Return how long to wait before retry number ``attempt`` (0 for the first retry).

        The wait is drawn uniformly from ``[0, min(cap, base * 2**attempt)]``;
        when the collector sent ``retry_after``, the result is at least that.
        ``rng`` makes the draws reproducible (the module's generator otherwise).
        """
        # Comparing exponents first: 2**attempt itself overflows a float for
        # attempt >= 1024, long after the ceiling has reached the cap.
        if attempt >= math.log2(self.cap / self.base):
            ceiling = self.cap
        else:
            ceiling = self.base * 2.0**attempt
        # Jitter spreads hosts apart; it needs no cryptographic randomness.
        if rng is None:
            import random  # noqa: PLC0415 - loaded on the first retry, not at import

            draw = random.uniform
        else:
            draw = rng.uniform
        jittered = draw(0.0, ceiling)
        return jittered if retry_after is None else max(retry_after, jittered)

    def allows(self, attempt: int, elapsed: float, next_delay: float) -> bool:
        """Return whether one more send fits after ``attempt`` sends (the first included).

        ``elapsed`` is the time since the first send began and ``next_delay`` the
        wait before the next one; the next send must start within the budget.
        """
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return False
        return elapsed + next_delay < self.budget


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status says "not now" (408, 429, any 5xx) rather than "never".

    Shared by the SDK's delivery and the collector's alerts, so both give up on
    the same answers.
    """
    return status in _RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds, or None.

    Accept delta-seconds (``"120"``) or an HTTP date; a date in the past means no
    wait (0.0). A missing, negative, non-finite or unreadable value is None: the
    retry policy then decides alone.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - rare: a date, not seconds

    try:
        when = parsedate_to_datetime(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        # "-0000" dates parse naive; HTTP dates are always GMT.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
