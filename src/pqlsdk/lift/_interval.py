"""How sure the lift is: Newcombe's interval for a difference of rates, and a power estimate.

The lift of a moment is the shown arm's conversion rate minus the held-out
arm's. Its 95 % interval is Newcombe's hybrid score interval (method 10 of
Newcombe 1998): each arm's Wilson interval (``pqlsdk.replay.wilson``, the one
replay's bands use), combined as

    low  = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)
    high = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)

with ``p1, l1, u1`` the shown arm's rate and Wilson bounds and ``p2, l2, u2``
the held-out arm's. Unlike the textbook normal interval it stays inside -1..1
and is honest for small arms and rates near 0 or 1, which is where a new
moment's numbers are.

When the interval spans zero the verdict says whether the arms are simply too
small: the users per arm a two-sided 5 % test needs to detect a 5-point lift
with 80 % power, from the normal approximation at the pooled rate. That is an
estimate (it assumes the pooled rate is the held-out arm's true rate), and the
verdict says "about".
"""

from __future__ import annotations

import math
from typing import Final

from ..replay import wilson

__all__ = ["DETECT", "needed_per_arm", "newcombe", "verdict"]

DETECT: Final = 0.05
"""The lift (5 points) the power estimate is for.

Added in version 0.1.0.
"""
_Z95: Final = 1.959963984540054  # two-sided 5 %
_Z80: Final = 0.8416212335729143  # 80 % power


def newcombe(
    converted_shown: int, shown: int, converted_held: int, held: int
) -> tuple[float, float, float] | None:
    """Return the lift (shown rate minus held-out rate) and its 95 % interval, or None.

    None when an arm has no users: there is no rate to compare.

    Added in version 0.1.0.
    """
    if shown == 0 or held == 0:
        return None
    p1, p2 = converted_shown / shown, converted_held / held
    l1, u1 = wilson(converted_shown, shown)
    l2, u2 = wilson(converted_held, held)
    lift = p1 - p2
    low = lift - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = lift + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lift, low, high


def needed_per_arm(pooled: float, detect: float = DETECT) -> int:
    """Users per arm to detect a ``detect`` lift over a ``pooled`` base rate (80 % power).

    The base rate is moved by ``detect`` upwards, or downwards when that would
    pass 100 %.

    Added in version 0.1.0.
    """
    base = min(max(pooled, 0.0), 1.0)
    other = base + detect if base + detect <= 1 else base - detect
    mean = (base + other) / 2
    root = _Z95 * math.sqrt(2 * mean * (1 - mean)) + _Z80 * math.sqrt(
        base * (1 - base) + other * (1 - other)
    )
    return math.ceil(root * root / (detect * detect))


def verdict(converted_shown: int, shown: int, converted_held: int, held: int) -> tuple[str, int]:
    """Say in words what the arms show, and how many more users per arm a 5-point lift needs.

    "shown converts better" or "held out converts better" when the interval
    excludes zero; "no difference detected" when it spans zero though both
    arms are as large as the power estimate asks; else "not enough users yet:
    about N more per arm to detect a 5-point lift".

    Added in version 0.1.0.
    """
    total = shown + held
    pooled = (converted_shown + converted_held) / total if total else 0.0
    # Rounded up to two significant figures: it is an estimate, not a count.
    more = _two_figures(max(0, needed_per_arm(pooled) - min(shown, held)))
    found = newcombe(converted_shown, shown, converted_held, held)
    if found is not None and found[1] > 0:
        return "shown converts better", more
    if found is not None and found[2] < 0:
        return "held out converts better", more
    if more == 0:  # both arms are as large as the estimate asks: not an empty arm
        return "no difference detected", 0
    return (
        f"not enough users yet: about {more:,} more per arm to detect a "
        f"{DETECT * 100:.0f}-point lift",
        more,
    )


def _two_figures(number: int) -> int:
    """Round ``number`` (0 or more) up to two significant figures: 1234 -> 1300."""
    step = int(10 ** max(len(str(number)) - 2, 0))
    return -(-number // step) * step
