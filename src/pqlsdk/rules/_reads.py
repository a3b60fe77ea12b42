"""The closures that read one trait or tally, and compare one with a literal.

Written out per scope: nearly every signal of every score is one of these, and a
plain attribute read costs less than an ``attrgetter`` call. The compiler picks
them by scope (``TRAIT_READS["user"]``...) for a trait or a count it reads inline.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Final

from ._facts import Facts

__all__ = ["TALLY_READS", "TALLY_TESTS", "TRAIT_READS", "TRAIT_TESTS"]

_Run = Callable[[Facts], Any]
_Compare = Callable[[Any, Any], bool]


def _user_trait(key: str) -> _Run:
    return lambda facts: facts.user_traits.get(key)


def _account_trait(key: str) -> _Run:
    return lambda facts: facts.account_traits.get(key)


def _user_tally(key: str) -> _Run:
    return lambda facts: facts.user_aggregates.get(key) or 0


def _account_tally(key: str) -> _Run:
    return lambda facts: facts.account_aggregates.get(key) or 0


def _user_tally_test(key: str, compare: _Compare, value: Any) -> _Run:
    return lambda facts: compare(facts.user_aggregates.get(key) or 0, value)


def _account_tally_test(key: str, compare: _Compare, value: Any) -> _Run:
    return lambda facts: compare(facts.account_aggregates.get(key) or 0, value)


def _user_trait_test(key: str, types: frozenset[type], compare: _Compare, value: Any) -> _Run:
    return lambda facts: type(item := facts.user_traits.get(key)) in types and compare(item, value)


def _account_trait_test(key: str, types: frozenset[type], compare: _Compare, value: Any) -> _Run:
    return lambda facts: (
        type(item := facts.account_traits.get(key)) in types and compare(item, value)
    )


TRAIT_READS: Final = MappingProxyType({"user": _user_trait, "account": _account_trait})
TALLY_READS: Final = MappingProxyType({"user": _user_tally, "account": _account_tally})
TALLY_TESTS: Final = MappingProxyType({"user": _user_tally_test, "account": _account_tally_test})
TRAIT_TESTS: Final = MappingProxyType({"user": _user_trait_test, "account": _account_trait_test})
