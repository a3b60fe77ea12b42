"""``Facts``: what a compiled rule may ask about the subject it is scoring.

Compiled expressions are closures over a ``Facts`` object. Scoring builds one
per evaluation from stored state and the clock; replay and the CLI build theirs
the same way, so there is one implementation of every rule.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._aggregates import Aggregate

__all__ = ["Facts"]


class Facts(Protocol):
    """The questions an expression can ask; every answer reflects one instant, ``now``."""

    def aggregate(self, aggregate: Aggregate) -> int:
        """Return the value of ``aggregate`` for the subject at ``now``."""
        ...

    def user_trait(self, name: str) -> Any:
        """Return the user's trait ``name`` (None when absent)."""
        ...

    def account_trait(self, name: str) -> Any:
        """Return the trait ``name`` of the user's account (None when absent or no account)."""
        ...

    def days_since_last_active(self) -> float:
        """Fractional days since the latest track (``inf`` when never active)."""
        ...

    def days_since_first_seen(self) -> float:
        """Fractional days since the earliest message (``inf`` when never seen)."""
        ...

    def team_size(self) -> int:
        """Distinct active users of the subject's account, at least 1."""
        ...

    def variable(self, name: str) -> Any:
        """Return a named value the caller declared (``score``, ``tier``...)."""
        ...
