"""Aggregates: incremental, exact at window edges, bounded by the window."""

from __future__ import annotations

from typing import Any

import pytest

from pqlsdk import _aggregates
from pqlsdk._aggregates import Aggregate, aggregate_value, fold_event

S = 1_000_000  # µs per second
DAY = 86_400 * S
NOW = 100 * DAY


def fold(aggregate: Aggregate, events: list[tuple[int, dict[str, Any]]]) -> Any:
    state = None
    for at, properties in events:
        if aggregate.matches("e", properties):
            state = fold_event(aggregate, state, at, properties)
    return state


@pytest.mark.parametrize(
    ("offset", "counted"),
    [(7 * DAY - S, 1), (7 * DAY, 1), (7 * DAY + S, 0)],
    ids=["a second inside", "exactly 7 days", "a second outside"],
)
def test_windowed_count_includes_exactly_the_window(offset: int, counted: int) -> None:
    """ "within 7 days" means now - t <= 7 days, to the second."""
    aggregate = Aggregate("count", "e", window=7 * 86_400)
    state = fold(aggregate, [(NOW - offset, {}), (NOW - 30 * DAY, {})])
    assert aggregate_value(aggregate, state, NOW) == counted


def test_windowed_count_forgets_events_older_than_the_window() -> None:
    """A windowed count keeps only what can still be inside its window."""
    aggregate = Aggregate("count", None, window=86_400)
    state = fold(aggregate, [(i * DAY, {}) for i in range(100)])
    assert state == [98 * DAY, 99 * DAY]
    assert aggregate_value(aggregate, state, 99 * DAY) == 2


def test_out_of_order_events_count_the_same() -> None:
    """Folding is order-independent for counts inside the window."""
    aggregate = Aggregate("count", "e", window=3 * 86_400)
    times = [NOW - DAY, NOW - 2 * DAY, NOW, NOW - 3 * DAY + S]
    forward = fold(aggregate, [(t, {}) for t in times])
    backward = fold(aggregate, [(t, {}) for t in reversed(times)])
    assert (
        aggregate_value(aggregate, forward, NOW) == aggregate_value(aggregate, backward, NOW) == 4
    )


def test_filters_match_property_values_exactly() -> None:
    """A property filter matches equal values only; a bool never matches a number."""
    aggregate = Aggregate("count", "e", where=(("flag", True),))
    assert aggregate.matches("e", {"flag": True})
    assert not aggregate.matches("e", {"flag": 1})
    assert not aggregate.matches("e", {})
    assert not aggregate.matches("other", {"flag": True})
    numeric = Aggregate("count", "e", where=(("n", 1),))
    assert not numeric.matches("e", {"n": True})


def test_distinct_counts_values_not_events() -> None:
    """distinct counts different property values; events without the property are ignored."""
    aggregate = Aggregate("distinct", "e", field="feature")
    assert not aggregate.matches("e", {"other": 1})
    state = fold(
        aggregate,
        [
            (1, {"feature": "a"}),
            (2, {"feature": "a"}),
            (3, {"feature": "b"}),
            (4, {"feature": 1}),
            (5, {"feature": "1"}),
        ],
    )
    assert aggregate_value(aggregate, state, NOW) == 4


def test_windowed_distinct_uses_each_values_latest_time() -> None:
    """A value counts when its latest occurrence is inside the window."""
    aggregate = Aggregate("distinct", "e", field="f", window=86_400)
    state = fold(
        aggregate,
        [(NOW - 3 * DAY, {"f": "old"}), (NOW - DAY, {"f": "edge"}), (NOW - 5 * DAY, {"f": "edge"})],
    )
    assert aggregate_value(aggregate, state, NOW) == 1
    assert sorted(state) == ['"edge"']


def test_active_days_count_distinct_utc_days() -> None:
    """Activity a minute either side of UTC midnight is two days."""
    aggregate = Aggregate("active_days")
    midnight = 50 * DAY
    state = fold(
        aggregate, [(midnight - 60 * S, {}), (midnight + 60 * S, {}), (midnight + 2 * 60 * S, {})]
    )
    assert aggregate_value(aggregate, state, NOW) == 2


def test_windowed_active_days_count_a_day_by_its_latest_event() -> None:
    """A day counts when its latest track is within the window, exact to the second."""
    aggregate = Aggregate("active_days", window=14 * 86_400)
    edge = NOW - 14 * DAY
    state = fold(aggregate, [(edge - S, {}), (edge - 2 * S, {})])
    assert aggregate_value(aggregate, state, NOW) == 0
    state = fold_event(aggregate, state, edge, {})
    assert aggregate_value(aggregate, state, NOW) == 1


@pytest.mark.parametrize(
    "aggregate",
    [Aggregate("distinct", "e", field="f", window=86_400), Aggregate("active_days", window=86_400)],
    ids=["windowed distinct", "windowed active days"],
)
def test_windowed_sets_keep_tracks_from_before_1970(aggregate: Aggregate) -> None:
    """A track timed before 1970 (a negative instant) is kept: its value or day counts."""
    before_1970 = -DAY
    state = fold(aggregate, [(before_1970, {"f": "x"})])
    assert aggregate_value(aggregate, state, before_1970 + S) == 1


def test_unfed_aggregates_are_zero() -> None:
    """An aggregate no event fed reads as zero."""
    for kind in ("count", "distinct", "active_days"):
        assert aggregate_value(Aggregate(kind, field="f"), None, NOW) == 0


def test_keys_name_the_definition() -> None:
    """The stored key is stable text that differs whenever the definition differs."""
    a = Aggregate("count", "page_viewed", where=(("path", "/pricing"),), window=604_800)
    assert a.key == 'user:count:page_viewed::path="/pricing":604800'
    assert Aggregate("count").key == "user:count:*:::"
    assert (
        len(
            {
                a.key,
                Aggregate("count", "page_viewed").key,
                Aggregate("count", "page_viewed", scope="account").key,
            }
        )
        == 3
    )


def test_an_all_time_count_folds_by_adding_one() -> None:
    """fold_event's tally (stores inline it; replays of old state may call it)."""
    tally = Aggregate("count", event="e")
    assert [fold_event(tally, None, 0, {}), fold_event(tally, 3, 0, {})] == [1, 4]


def test_day_interning_starts_afresh_when_days_are_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared day numbers are bounded: past the limit the table empties; values stay right."""
    monkeypatch.setattr(_aggregates, "_MAX_DAYS", 1)
    days = Aggregate("active_days")
    state = None
    for day in range(3):
        state = fold_event(days, state, day * 86_400_000_000, {})
    assert (state, len(_aggregates._DAYS) <= 2) == ([0, 1, 2], True)


def test_value_texts_start_afresh_when_values_are_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """The texts kept for str values are bounded: past the limit they empty; values stay right."""
    monkeypatch.setattr(_aggregates, "_KEYS", {}, raising=False)
    monkeypatch.setattr(_aggregates, "_MAX_KEYS", 2, raising=False)
    aggregate = Aggregate("distinct", "e", field="f")
    state = fold(aggregate, [(i, {"f": value}) for i, value in enumerate("abcab")])
    assert (state, 0 < len(_aggregates._KEYS) <= 2) == (['"a"', '"b"', '"c"'], True)
