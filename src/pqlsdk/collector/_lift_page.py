"""The collector's ``/moments`` page and ``/api/moments``: each moment's funnel and lift.

The numbers come from ``pqlsdk.lift`` over the stored messages (folded on as
they arrive, ``_lift_cache``, in a worker thread), so the page, the API and ``pqlsdk moments``
on the same storage always agree. The pictures are inline SVG drawn by the
template from the geometry computed here (no script, nothing loaded): per kind,
the funnel as bars (eligible, shown, clicked, dismissed, held out, and each
arm's conversions) and the lift as a point on a scale from -L to +L points with
its 95 % interval as a bar and zero marked, so "does the interval cross zero"
is read at a glance.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Final

import msgspec

from ..lift import KindReport, MomentsReport

__all__ = ["lift_context", "lift_csv", "lift_json"]

_BAR_WIDTH: Final = 300
"""Pixels of the longest funnel bar (the eligible users)."""
_SCALE_WIDTH: Final = 360
"""Pixels of the lift scale, from -L to +L."""
_CSV_FIELDS: Final = ("kind", "eligible", *KindReport.__struct_fields__[:-1], "relative_lift")


def lift_json(report: MomentsReport) -> bytes:
    """Return the report as ``pqlsdk moments --json`` prints it."""
    return msgspec.json.encode(report.as_json())


def lift_csv(report: MomentsReport) -> str:
    """Return one CSV row per kind: every count, rate, the interval and the verdict."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    for kind, found in report.moments.items():
        values = {"kind": kind, "eligible": found.eligible, "relative_lift": found.relative_lift}
        writer.writerow(
            [
                _cell(values[name] if name in values else getattr(found, name))
                for name in _CSV_FIELDS
            ]
        )
    return out.getvalue()


def _cell(value: object) -> object:
    """Write a missing value as an empty cell (a rate with no users, say)."""
    return "" if value is None else value


def lift_context(report: MomentsReport) -> dict[str, Any]:
    """Return what ``moments.html`` shows: per kind its numbers, bars and lift scale."""
    lifts = [
        abs(bound)
        for found in report.moments.values()
        for bound in (found.lift_low, found.lift_high)
        if bound is not None
    ]
    # One scale for every kind, in whole multiples of 5 points: kinds compare by eye.
    limit = max(0.05, math.ceil(max(lifts, default=0.0) * 20) / 20)
    return {
        "window_days": f"{report.window_days:g}",
        "kinds": [_kind(kind, found, limit) for kind, found in report.moments.items()],
        "limit_points": round(limit * 100),
        "scale_width": _SCALE_WIDTH,
    }


def _kind(kind: str, found: KindReport, limit: float) -> dict[str, Any]:
    most = max(found.eligible, 1)
    steps = [
        ("eligible", found.eligible, "all"),
        ("shown", found.shown, "shown"),
        ("clicked", found.clicked, "shown"),
        ("dismissed", found.dismissed, "shown"),
        ("converted (shown)", found.converted_shown, "won"),
        ("held out", found.held_out, "held"),
        ("converted (held out)", found.converted_held_out, "won"),
    ]
    bars = [
        {"label": label, "count": count, "width": round(_BAR_WIDTH * count / most), "arm": arm}
        for label, count, arm in steps
    ]
    lift = None
    if found.lift is not None and found.lift_low is not None and found.lift_high is not None:
        low, high = _x(found.lift_low, limit), _x(found.lift_high, limit)
        lift = {
            "x": _x(found.lift, limit),
            "low": low,
            "width": max(high - low, 1),
            "points": f"{found.lift * 100:+.1f}",
            "low_points": f"{found.lift_low * 100:+.1f}",
            "high_points": f"{found.lift_high * 100:+.1f}",
            "excludes_zero": found.lift_low > 0 or found.lift_high < 0,
        }
    relative = found.relative_lift
    return {
        "kind": kind,
        "verdict": found.verdict,
        "bars": bars,
        "bar_width": _BAR_WIDTH,
        "rate_shown": _percent(found.rate_shown),
        "rate_held_out": _percent(found.rate_held_out),
        "relative": None if relative is None else f"{relative:+.0%}",
        "lift": lift,
        "zero": _x(0.0, limit),
    }


def _x(value: float, limit: float) -> int:
    """Where ``value`` (a difference of rates) falls on the scale from -limit to +limit."""
    return round((value + limit) / (2 * limit) * _SCALE_WIDTH)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"
