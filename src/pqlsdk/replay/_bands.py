"""Bands: groups of subjects by score, and each group's conversion statistics.

A replay groups subjects two ways: by the model's tiers, and by fixed score
bands (``--bands 0,26,51,76``; by default every 10 points from 0 to 100, then
``100+``). A band holds scores from its low edge up to, not including, the next
edge; scores below the first edge count in the first band, as ``tier_for``
places them in the lowest tier.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from .._scoring import show
from ..rules._model import Model

__all__ = ["DEFAULT_EDGES", "Bands", "Row", "parse_edges", "rows", "wilson"]

DEFAULT_EDGES: Final = tuple(float(edge) for edge in range(0, 101, 10))
"""Score bands of ten points (0, 10, ... 100): even, so a first replay shows the shape.

Added in version 0.1.0.
"""

_Z95: Final = 1.959963984540054  # the normal quantile for a two-sided 95 % interval
_DAY: Final = 86_400_000_000  # µs


@attrs.frozen
class Bands:
    """Named score ranges: ``lows[i]`` up to ``lows[i + 1]`` is ``labels[i]``.

    Added in version 0.1.0.
    """

    kind: str
    """``"tiers"`` or ``"bands"``."""
    lows: tuple[float, ...]
    labels: tuple[str, ...]

    @classmethod
    def of_tiers(cls, model: Model) -> Bands:
        """Make bands of the model's own tiers.

        Added in version 0.1.0.
        """
        return cls("tiers", tuple(t for t, _ in model.tiers), tuple(n for _, n in model.tiers))

    @classmethod
    def of_edges(cls, edges: Sequence[float]) -> Bands:
        """Make fixed score bands from ascending ``edges``: ``0-10``, ..., ``100+``.

        Added in version 0.1.0.
        """
        labels = [f"{show(low)}-{show(high)}" for low, high in itertools.pairwise(edges)]
        return cls("bands", tuple(edges), (*labels, f"{show(edges[-1])}+"))

    def index(self, score: float) -> int:
        """Return the band ``score`` falls in.

        Added in version 0.1.0.
        """
        return max(bisect.bisect_right(self.lows, score) - 1, 0)

    def high(self, index: int) -> float | None:
        """Return the band's upper edge (exclusive), None for the last band.

        Added in version 0.1.0.
        """
        return self.lows[index + 1] if index + 1 < len(self.lows) else None


def parse_edges(text: str) -> tuple[float, ...]:
    """Parse ``--bands`` (comma-separated, strictly ascending numbers); ValueError if bad.

    Added in version 0.1.0.
    """
    edges = tuple(float(part) for part in text.split(",") if part.strip())
    if not edges or any(not math.isfinite(e) for e in edges):
        raise ValueError("give finite numbers, e.g. 0,26,51,76")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError("band edges must be strictly ascending")
    return edges


def wilson(converted: int, total: int, z: float = _Z95) -> tuple[float, float]:
    """Return the Wilson score interval for ``converted`` of ``total`` (95 % by default).

    Unlike the normal approximation it stays within 0..1 and is honest for small
    bands and rates near 0 or 1, which is where threshold tuning looks.

    Added in version 0.1.0.
    """
    if total == 0:
        return 0.0, 1.0
    p = converted / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@attrs.frozen
class Row:
    """One band's subjects and conversions.

    Added in version 0.1.0.
    """

    label: str
    low: float
    high: float | None
    subjects: int
    converted: int
    rate: float | None
    """Converted / subjects; None for an empty band."""
    interval: tuple[float, float] | None
    """Wilson 95 % interval of the rate; None for an empty band."""
    median_days: float | None
    """Median days from entering the band to converting, over its converters."""
    revenue: float | None
    """Summed values of its converters; None when no converter had a value."""

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON output.

        Added in version 0.1.0.
        """
        return {
            "band": self.label,
            "low": self.low,
            "high": self.high,
            "subjects": self.subjects,
            "converted": self.converted,
            "rate": self.rate,
            "ci95": list(self.interval) if self.interval else None,
            "median_days_to_convert": self.median_days,
            "revenue": self.revenue,
        }


Member = tuple[int, int | None, float | None]
"""A subject as a band sees it: band index, µs from entering the band to converting
(None for a non-converter), revenue (None when not given)."""


def rows(bands: Bands, members: Iterable[Member]) -> list[Row]:
    """Tabulate ``members`` by band: counts, rate with Wilson interval, median delay, revenue.

    Added in version 0.1.0.
    """
    size = len(bands.lows)
    counts, converted = [0] * size, [0] * size
    delays: list[list[float]] = [[] for _ in range(size)]
    revenue: list[float | None] = [None] * size
    for index, delay, value in members:
        counts[index] += 1
        if delay is None:
            continue
        converted[index] += 1
        delays[index].append(delay / _DAY)
        if value is not None:
            revenue[index] = (revenue[index] or 0.0) + value
    table = []
    for i in range(size):
        n, k = counts[i], converted[i]
        table.append(
            Row(
                label=bands.labels[i],
                low=bands.lows[i],
                high=bands.high(i),
                subjects=n,
                converted=k,
                rate=k / n if n else None,
                interval=wilson(k, n) if n else None,
                median_days=statistics.median(delays[i]) if delays[i] else None,
                revenue=revenue[i],
            )
        )
    return table
