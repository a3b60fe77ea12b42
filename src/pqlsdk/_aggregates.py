"""Aggregates: the running values that rules read, kept up to date as events arrive.

The rules compiler lists the ``Aggregate``s an expression needs (``count("limit_hit")``,
``active_days(within=14d)``...). The store keeps exactly those, per user (and per
account for account models), updating each in O(1) amortised work per event, so
scoring never scans history: its cost does not grow with the user's past events.

Windows ("within 7 days") are exact to the second: an event at ``t`` counts when
``now - t <= window``. A windowed aggregate therefore keeps the timestamps (or the
latest timestamp per day or value) of events inside its window, and drops older
ones as newer events arrive: its size is bounded by the window, not by history.
"""

from __future__ import annotations

import bisect
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "DAY",
    "TEXTS",
    "Aggregate",
    "Kind",
    "Scalar",
    "Scope",
    "aggregate_value",
    "by_event",
    "fold_event",
    "fold_for",
]

Kind = Literal["count", "distinct", "active_days"]
Scope = Literal["user", "account"]
Scalar = str | int | float | bool | None

DAY: Final = 86_400_000_000  # µs
_DAYS: dict[int, int] = {}
"""One int object per day number: every user active on a day shares it (days are
few, users many: it saves most of an all-time ``active_days`` list's memory)."""
_MAX_DAYS: Final = 100_000
_KEYS: dict[str, str] = {}
"""Each str value of a ``distinct`` field seen lately, to its JSON text (see ``_value_key``)."""
_MAX_KEYS: Final = 10_000
TEXTS: Final[Mapping[str, str]] = _KEYS
"""``_KEYS``, read-only: folding checks inline whether a value is the latest one seen."""
_MISSING: Final = object()
_encode_value = msgspec.json.Encoder().encode


class Aggregate(msgspec.Struct, frozen=True, dict=True):
    """One running value a rule needs, defined by data only (hashable, comparable).

    - ``count``: tracks of ``event`` (any event when None) whose properties equal
      ``where``; within ``window`` when set.
    - ``distinct``: distinct values of property ``field`` on such tracks.
    - ``active_days``: distinct UTC calendar days with any track.

    ``window`` is in whole seconds; ``scope`` says whose events feed it: the user's
    own, or every member's for an account model.
    """

    kind: Kind
    event: str | None = None
    where: tuple[tuple[str, Scalar], ...] = ()
    field: str | None = None
    window: int | None = None
    scope: Scope = "user"

    @functools.cached_property
    def key(self) -> str:
        """A stable text id, used as the aggregate's name in stored state."""
        where = ",".join(f"{name}={_encode_value(value).decode()}" for name, value in self.where)
        parts = (
            self.scope,
            self.kind,
            self.event or "*",
            self.field or "",
            where,
            self.window or "",
        )
        return ":".join(map(str, parts))

    @property
    def tally(self) -> bool:
        """Whether this is an all-time count, whose stored state is its value (an int)."""
        return self.kind == "count" and self.window is None

    def matches(self, event: str, properties: Mapping[str, Any]) -> bool:
        """Say whether a track of ``event`` with ``properties`` feeds this aggregate."""
        if self.event is not None and event != self.event:
            return False
        for name, value in self.where:
            actual = properties.get(name, _MISSING)
            # True == 1 in Python; a filter on a flag must not match a number.
            if actual != value or isinstance(actual, bool) != isinstance(value, bool):
                return False
        return self.kind != "distinct" or properties.get(self.field or "") is not None


Fold = Callable[[Any, int, Mapping[str, Any]], Any]
"""One aggregate's fold: ``(state, at, properties) -> new state``, made once per aggregate."""

Step = tuple[
    str, bool, "Callable[[str, Mapping[str, Any]], bool] | None", Fold | None, str | None, bool
]
"""How to fold one aggregate: (key, user-scoped, filter or None, fold or None for a tally,
the field of an all-time ``distinct`` without ``where``, whether it is all-time ``active_days``).

A tally is an all-time count: its fold is ``+ 1``, which folding does inline
because most aggregates are tallies. The filter is ``Aggregate.matches`` for an
aggregate with a ``where``, None when the event name says it all. The two
all-time sets (a ``distinct`` field's values, the active days) are checked
inline too: most events bring the latest value (or day) again, and change nothing.
"""


@functools.lru_cache(maxsize=16)
def by_event(aggregates: frozenset[Aggregate]) -> dict[str | None, tuple[Step, ...]]:
    """Index ``aggregates`` by the event that can feed them, as fold steps.

    Key None holds those any event feeds (``active_days``, ``count()`` of every
    event); an event's own entry holds its aggregates and those. Folding a track
    then visits only what it can change, however many aggregates the rules keep,
    and checks properties only for aggregates with a filter or a field. Cached
    per set: stores pass the same frozenset for every message.
    """
    ordered = sorted(aggregates, key=_key_of)
    wildcard = tuple(_step(a) for a in ordered if a.event is None)
    index: dict[str | None, tuple[Step, ...]] = {None: wildcard}
    for aggregate in ordered:
        if aggregate.event is not None:
            index[aggregate.event] = (*index.get(aggregate.event, wildcard), _step(aggregate))
    return index


def _step(aggregate: Aggregate) -> Step:
    timeless = aggregate.window is None
    field: str | None = None
    matches: Callable[[str, Mapping[str, Any]], bool] | None = None
    if aggregate.where:
        matches = aggregate.matches
    elif aggregate.kind == "distinct":
        # ``matches`` without its checks that cannot fail here: the index puts a step
        # under its own event only, and there is no ``where``. Inline for an all-time one.
        field = aggregate.field or ""
        if not timeless:
            matches, field = functools.partial(_has_field, field), None
    return (
        aggregate.key,
        aggregate.scope == "user",
        matches,
        None if aggregate.tally else fold_for(aggregate),
        field,
        timeless and aggregate.kind == "active_days",
    )


def _has_field(field: str, event: str, properties: Mapping[str, Any]) -> bool:
    """Whether a track has a value for ``field``: what a ``distinct`` without ``where`` needs."""
    return properties.get(field) is not None


def _key_of(aggregate: Aggregate) -> str:
    return aggregate.key


def fold_event(aggregate: Aggregate, state: Any, at: int, properties: Mapping[str, Any]) -> Any:
    """Return ``state`` with one matching event at ``at`` (µs) folded in.

    ``state`` is the aggregate's stored value, None before the first event. It is
    plain data (ints, lists, dicts) so every store can serialise it.
    """
    return fold_for(aggregate)(state, at, properties)


@functools.lru_cache(maxsize=256)
def fold_for(aggregate: Aggregate) -> Fold:
    """Return the fold of ``aggregate``, specialised once for its kind and window.

    Folding runs for every event of every history replayed, so the choice between
    kinds and windows is made here, once, not per event.
    """
    if aggregate.kind == "count":
        if aggregate.window is None:
            return _tally
        return functools.partial(_count_within, aggregate.window * 1_000_000)
    if aggregate.kind == "distinct":
        field = aggregate.field or ""
        if aggregate.window is None:
            return functools.partial(_distinct, field)
        return functools.partial(_distinct_within, field, aggregate.window * 1_000_000)
    if aggregate.window is None:
        return _days
    return functools.partial(_days_within, aggregate.window * 1_000_000)


def _tally(state: Any, at: int, properties: Mapping[str, Any]) -> int:
    return (state or 0) + 1


def _count_within(window: int, state: Any, at: int, properties: Mapping[str, Any]) -> list[int]:
    times: list[int] = state or []
    bisect.insort(times, at)
    return _trim_sorted(times, times[-1] - window)


def _value_key(field: str, properties: Mapping[str, Any]) -> str:
    """Return the property's value as JSON text: ``1`` and ``"1"`` are different values.

    A str's text is kept (``_KEYS``): a feature name comes back in most events.
    """
    value = properties[field]
    if type(value) is str:
        found = _KEYS.get(value)
        if found is None:
            if len(_KEYS) >= _MAX_KEYS:  # values far and wide: keeping them stops paying
                _KEYS.clear()
            found = _KEYS[value] = sys.intern(_encode_value(value).decode())
        return found
    return sys.intern(_encode_value(value).decode())


def _distinct(field: str, state: Any, at: int, properties: Mapping[str, Any]) -> list[str]:
    return _seen(state, _value_key(field, properties))


def _distinct_within(
    field: str, window: int, state: Any, at: int, properties: Mapping[str, Any]
) -> dict[str, int]:
    return _latest(state, _value_key(field, properties), at, window)


def _days(state: Any, at: int, properties: Mapping[str, Any]) -> list[int]:
    day = at // DAY
    if state and state[-1] == day:
        return state  # type: ignore[no-any-return]  # the usual case: another event on the latest day
    return _seen(state, _day(day))


def _days_within(window: int, state: Any, at: int, properties: Mapping[str, Any]) -> dict[str, int]:
    return _latest(state, str(at // DAY), at, window)


def _day(day: int) -> int:
    """Return the one shared int object for ``day``."""
    if len(_DAYS) > _MAX_DAYS:  # timestamps far and wide: interning stops paying
        _DAYS.clear()
    return _DAYS.setdefault(day, day)


def _seen(state: Any, key: Any) -> list[Any]:
    """Add ``key`` to the sorted list of values (or days) seen in all time.

    Only which values were seen matters, so a sorted list holds them: it decodes
    far faster than a dict of times.
    """
    seen: list[Any] = state or []
    if seen and seen[-1] == key:
        return seen  # the usual case: the same value as the latest one
    index = bisect.bisect_left(seen, key)
    if index == len(seen) or seen[index] != key:
        seen.insert(index, key)
    return seen


def _latest(state: Any, key: str, at: int, window: int) -> dict[str, int]:
    """Keep, within the window, the latest time per value or day (keyed by text)."""
    latest: dict[str, int] = state or {}
    # Not ``get(key, -1)``: a time before 1970 is negative, and must be kept too.
    if key not in latest or latest[key] < at:
        latest[key] = at
    horizon = max(latest.values()) - window
    if min(latest.values()) < horizon:  # rarely: scanning in Python only when one is stale
        for stale in [k for k, t in latest.items() if t < horizon]:
            del latest[stale]
    return latest


def aggregate_value(aggregate: Aggregate, state: Any, now: int) -> int:
    """Return the aggregate's value at ``now`` (µs) from its stored ``state``."""
    if state is None:
        return 0
    if aggregate.window is None:
        return state if aggregate.kind == "count" else len(state)
    cutoff = now - aggregate.window * 1_000_000
    if aggregate.kind == "count":
        return len(state) - bisect.bisect_left(state, cutoff)
    return sum(1 for t in state.values() if t >= cutoff)


def _trim_sorted(times: list[int], horizon: int) -> list[int]:
    """Drop timestamps before ``horizon``; they can never be inside the window again."""
    cut = bisect.bisect_left(times, horizon)
    if cut:
        del times[:cut]
    return times
