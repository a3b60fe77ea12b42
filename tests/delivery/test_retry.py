"""RetryPolicy: full-jitter backoff, Retry-After as a lower bound, budget and attempts."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from pqlsdk._exceptions import ConfigError
from pqlsdk._retry import RetryPolicy

DRAWS = 2_000


@pytest.mark.parametrize("attempt", range(12))
def test_delays_stay_within_the_full_jitter_range(attempt: int) -> None:
    """Every wait lies in [0, min(cap, base * 2**attempt)], and the whole range is used."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    rng = random.Random(attempt)
    ceiling = min(30.0, 0.5 * 2**attempt)

    delays = [policy.delay(attempt, retry_after=None, rng=rng) for _ in range(DRAWS)]

    expected = (True, True, True)
    assert expected == (
        min(delays) >= 0.0,
        max(delays) <= ceiling,
        # Full jitter: draws reach both ends of the interval, not just its top.
        min(delays) < 0.05 * ceiling and max(delays) > 0.95 * ceiling,
    )


def test_same_seed_gives_the_same_delays() -> None:
    """A seeded generator makes the backoff reproducible."""
    policy = RetryPolicy()

    first = [policy.delay(n, retry_after=None, rng=random.Random(7)) for n in range(5)]
    second = [policy.delay(n, retry_after=None, rng=random.Random(7)) for n in range(5)]

    assert first == second


def test_default_generator_stays_in_range() -> None:
    """Without an rng the module's generator draws, within the same bounds."""
    policy = RetryPolicy(base=1.0, cap=4.0)

    delays = [policy.delay(3, retry_after=None) for _ in range(200)]

    outside: list[float] = []
    assert outside == [delay for delay in delays if not 0.0 <= delay <= 4.0]


def test_huge_attempt_numbers_wait_at_most_the_cap() -> None:
    """Far past the point where 2**attempt overflows a float, the ceiling is the cap."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    rng = random.Random(1)

    delays = [policy.delay(5_000, retry_after=None, rng=rng) for _ in range(200)]

    outside: list[float] = []
    assert outside == [delay for delay in delays if not 0.0 <= delay <= 30.0]


def test_cap_below_base_caps_the_first_wait() -> None:
    """The cap wins even over the first ceiling."""
    policy = RetryPolicy(base=10.0, cap=2.0)
    rng = random.Random(3)

    assert max(policy.delay(0, retry_after=None, rng=rng) for _ in range(200)) <= 2.0


def test_retry_after_is_a_lower_bound() -> None:
    """The collector's Retry-After is honoured exactly when it exceeds the jittered wait."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    rng = random.Random(5)

    expected = [5.0] * 50
    assert expected == [policy.delay(0, retry_after=5.0, rng=rng) for _ in range(50)]


def test_jitter_above_retry_after_is_kept() -> None:
    """A small Retry-After does not pull waits down: the jittered wait is used if longer."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    rng = random.Random(9)

    delays = [policy.delay(6, retry_after=0.1, rng=rng) for _ in range(200)]

    expected = (True, True)
    assert expected == (min(delays) >= 0.1, max(delays) > 20.0)


def test_budget_stops_retries() -> None:
    """Another send is allowed only if it would start within the budget."""
    policy = RetryPolicy(budget=60.0)

    actual = [policy.allows(3, 50.0, 9.0), policy.allows(3, 50.0, 10.0), policy.allows(3, 59.0, 5)]

    expected = [True, False, False]
    assert expected == actual


def test_max_attempts_stops_retries() -> None:
    """``max_attempts`` counts every send, the first included."""
    policy = RetryPolicy(max_attempts=3)

    expected = [True, True, False, False]
    assert expected == [policy.allows(n, 0.0, 0.0) for n in range(1, 5)]


def test_no_attempt_limit_by_default() -> None:
    """Without ``max_attempts`` only the budget ends retries."""
    assert RetryPolicy().allows(10_000, 0.0, 1.0)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"base": 0}, "RetryPolicy.base must be a positive number, got 0"),
        ({"cap": -1.0}, "RetryPolicy.cap must be a positive number, got -1.0"),
        ({"budget": math.inf}, "RetryPolicy.budget must be a positive number, got inf"),
        ({"base": math.nan}, "RetryPolicy.base must be a positive number, got nan"),
        ({"max_attempts": 0}, "RetryPolicy.max_attempts must be at least 1 or None, got 0"),
    ],
)
def test_invalid_fields_are_config_errors(options: dict[str, Any], expected: str) -> None:
    """Durations must be positive and finite; an attempt limit must allow one send."""
    with pytest.raises(ConfigError) as caught:
        RetryPolicy(**options)

    assert expected == str(caught.value)
