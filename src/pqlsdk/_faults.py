"""What a run-time fault does: a strict client raises it; any other counts it and carries on.

A host's request must not fail because pqlsdk could not record an event or read
a store, so by default a fault is counted (``Client.stats()``) and logged, and the
call returns. A ``strict=True`` client (for tests) raises it instead. Setup
mistakes (``ConfigError``) never come here: they are always raised.
"""

from __future__ import annotations

from ._exceptions import PQLError, StoreError
from ._stats import Counters
from .stores._base import StoreUnavailableError

__all__ = ["Faults"]


class Faults:
    """One client's fault policy: ``strict`` or not, over its counters."""

    def __init__(self, counters: Counters, *, strict: bool) -> None:
        self.counters = counters
        self.strict = strict

    def drop(self, reason: str, exc: PQLError, *, count: int = 1) -> None:
        """Raise in strict mode; otherwise count ``count`` dropped messages and log."""
        if self.strict:
            raise exc
        self.counters.dropped(reason, str(exc), count)

    def error(self, exc: StoreError) -> None:
        """Raise in strict mode; otherwise count a store fault that lost no message.

        An unavailable store counted the fault itself and logs once per outage.
        """
        if self.strict:
            raise exc
        if not isinstance(exc, StoreUnavailableError):
            self.counters.error("store_error", str(exc))
