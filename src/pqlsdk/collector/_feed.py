"""The PQL feed: who is hot, why, what to do, and by when.

A sales rep reads it top to bottom: leads ranked by tier then score, each with
the reasons that put it there, the route (customer success, account executive,
sales development, nurture), when it crossed into its tier and the deadline the
tier sets for a response (burning: 4 hours, hot: 24 hours; a PQL contacted
within hours converts several times better than one contacted after days).
Overdue leads are marked. The same rows come as JSON (``/api/leads``) and CSV.

These are pure renderers over lead dicts (the fields of CONTRACT.md plus
``crossed_at`` as a datetime); the app wires them to routes behind a key.
The page is a Jinja2 template (``templates/feed.html``), autoescaped: ids and
reasons come from tracked data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from .._scoring import reason_texts
from ._pages import render

__all__ = [
    "DEFAULT_DEADLINES",
    "feed_context",
    "feed_csv",
    "feed_html",
    "feed_json",
    "filter_leads",
]

DEFAULT_DEADLINES: Final[Mapping[str, timedelta]] = {
    "burning": timedelta(hours=4),
    "hot": timedelta(hours=24),
}
"""How soon a lead in each tier should hear from sales."""

Lead = Mapping[str, Any]

_CSV_COLUMNS: Final = (
    "subject",
    "subject_id",
    "model",
    "tier",
    "score",
    "route",
    "crossed_at",
    "due_at",
    "overdue",
    "team_size",
    "top_features",
    "moments_seen",
    "top_reasons",
)


def filter_leads(
    leads: Sequence[Lead], *, tier: str | None = None, route: str | None = None
) -> list[Lead]:
    """Keep the leads in ``tier`` and on ``route`` (None keeps all)."""
    return [
        lead
        for lead in leads
        if (tier is None or lead["tier"] == tier) and (route is None or lead["route"] == route)
    ]


def due_at(lead: Lead, deadlines: Mapping[str, timedelta]) -> datetime | None:
    """When sales should have responded, for tiers that set a deadline."""
    span = deadlines.get(lead["tier"])
    return None if span is None else lead["crossed_at"] + span


def top_reasons(lead: Lead, count: int = 3) -> list[str]:
    """Return the fired reasons that earned the most, as "label = observed, needs ... (+n)"."""
    return reason_texts(lead.get("reasons") or (), count)


def feed_json(leads: Sequence[Lead], *, now: datetime, deadlines: Mapping[str, timedelta]) -> bytes:
    """Render the feed's rows as JSON: ``{"now": ..., "leads": [...]}``."""
    rows = [_row(lead, now, deadlines) for lead in leads]
    return msgspec.json.encode({"now": now, "leads": rows})


def feed_csv(leads: Sequence[Lead], *, now: datetime, deadlines: Mapping[str, timedelta]) -> str:
    """Render the feed's rows as CSV, one lead per line, lists joined with "; "."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for lead in leads:
        row = _row(lead, now, deadlines)
        writer.writerow(
            [
                _csv_cell("; ".join(map(str, row[c])) if isinstance(row[c], list) else row[c])
                for c in _CSV_COLUMNS
            ]
        )
    return out.getvalue()


def feed_html(
    leads: Sequence[Lead],
    *,
    now: datetime,
    deadlines: Mapping[str, timedelta],
    tier: str | None = None,
    route: str | None = None,
) -> str:
    """Render the feed page: a ranked table with reasons, deadlines and overdue marks."""
    return render(
        "feed.html", **feed_context(leads, now=now, deadlines=deadlines, tier=tier, route=route)
    )


def feed_context(
    leads: Sequence[Lead],
    *,
    now: datetime,
    deadlines: Mapping[str, timedelta],
    tier: str | None = None,
    route: str | None = None,
) -> dict[str, Any]:
    """Return what ``feed.html`` shows: the rows, the instant, and the filters in force."""
    shown = " · ".join(
        f"{name}: {value}" for name, value in (("tier", tier), ("route", route)) if value
    )
    return {
        "leads": [_row(lead, now, deadlines) for lead in leads],
        "now": now,
        "shown": shown,
        "signed_in": None,
        "csrf": None,
    }


def _row(lead: Lead, now: datetime, deadlines: Mapping[str, timedelta]) -> dict[str, Any]:
    due = due_at(lead, deadlines)
    return {
        "subject": lead["subject"],
        "subject_id": lead["subject_id"],
        "model": lead.get("model"),
        "tier": lead["tier"],
        "score": lead["score"],
        "route": lead["route"],
        "crossed_at": lead["crossed_at"],
        "due_at": due,
        "overdue": due is not None and now > due,
        "team_size": lead.get("team_size"),
        "top_features": list(lead.get("top_features") or ()),
        "moments_seen": list(lead.get("moments_seen") or ()),
        "top_reasons": top_reasons(lead),
        "reasons": list(lead.get("reasons") or ()),
    }


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas: ids and labels come from tracked data."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
