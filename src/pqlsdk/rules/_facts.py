"""``Facts``: what a compiled rule may ask about the subject it is scoring.

Compiled expressions are closures over a ``Facts`` object. Scoring builds one
per evaluation from stored state and the clock; replay and the CLI build theirs
the same way, so there is one implementation of every rule.

What is stored (traits, aggregate states, the instant) and what follows from it
alone (days since, team size) is plain data read once when the facts are built:
a closure reads it with one attribute and one ``get``, not a method call per
value, which is what keeps scoring a user to microseconds. Variables are asked
for by name, as some are derived only when an expression reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["Facts"]


class Facts(Protocol):
    """The questions an expression can ask; every answer reflects one instant, ``now``."""

    @property
    def now(self) -> int:
        """The instant, µs since the epoch: windowed aggregates count back from it."""
        ...

    @property
    def user_traits(self) -> Mapping[str, Any]:
        """The user's traits (empty for no user)."""
        ...

    @property
    def account_traits(self) -> Mapping[str, Any]:
        """The traits of the user's account (empty when the user has none)."""
        ...

    @property
    def user_aggregates(self) -> Mapping[str, Any]:
        """The user's stored aggregate states, by ``Aggregate.key``."""
        ...

    @property
    def account_aggregates(self) -> Mapping[str, Any]:
        """The account's stored aggregate states, by ``Aggregate.key``."""
        ...

    @property
    def days_since_last_active(self) -> float:
        """Fractional days since the latest track (``inf`` when never active)."""
        ...

    @property
    def days_since_first_seen(self) -> float:
        """Fractional days since the earliest message (``inf`` when never seen)."""
        ...

    @property
    def team_size(self) -> int:
        """Distinct active users of the subject's account, at least 1."""
        ...

    def variable(self, name: str) -> Any:
        """Return a named value the caller declared (``score``, ``tier``...)."""
        ...
