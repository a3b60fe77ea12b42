"""The PQL feed: who is hot, why, what to do, and by when.

A sales rep reads it top to bottom: leads ranked by tier then score, each with
every reason that put it there (points times the multiplier make the score),
the route (customer success, account executive, sales development, nurture),
when it crossed into its tier and the deadline the tier sets for a response
(burning: 4 hours, hot: 24 hours; a PQL contacted within hours converts several
times better than one contacted after days). The page says what the deadlines
are; a lead past its deadline and not marked contacted is overdue. A contact
made after the latest crossing stops the clock. Accounts that became product-
qualified (PQAs) rank with users and list the members that qualify, and why.
Do-not-contact leads are set apart below the others, with no deadline: they
are context, never a call to make. The same rows come as JSON (``/api/leads``)
and CSV.

These are pure renderers over lead dicts (the fields of ``Lead``, with
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

from .._scoring import reason_texts, show
from ._pages import render

__all__ = [
    "DEFAULT_DEADLINES",
    "DO_NOT_CONTACT",
    "deadline_texts",
    "due_at",
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

DO_NOT_CONTACT: Final = "do_not_contact"
"""The route of a lead that asked not to be contacted (the rules' ``do_not_contact``)."""

Lead = Mapping[str, Any]

_TOP: Final = 3
"""Reasons shown at once; the rest open under "+N more"."""
_CSV_COLUMNS: Final = (
    "subject",
    "subject_id",
    "model",
    "tier",
    "score",
    "multiplier",
    "route",
    "crossed_at",
    "due_at",
    "overdue",
    "contacted_by",
    "contacted_at",
    "team_size",
    "top_features",
    "moments_seen",
    "top_reasons",
    "all_reasons",
    "members",
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
    """When sales should respond, for tiers that set a deadline (never for do-not-contact)."""
    span = deadlines.get(lead["tier"])
    if span is None or lead["route"] == DO_NOT_CONTACT:
        return None
    crossed: datetime = lead["crossed_at"]
    return crossed + span


def deadline_texts(deadlines: Mapping[str, timedelta]) -> list[str]:
    """Say each tier's deadline as a person reads it, most urgent first: "burning: 4 h"."""
    return [f"{tier}: {_hours(span)}" for tier, span in sorted(deadlines.items(), key=_by_span)]


def feed_json(leads: Sequence[Lead], *, now: datetime, deadlines: Mapping[str, timedelta]) -> bytes:
    """Render the feed's rows as JSON: ``{"now", "deadlines", "leads": [...]}``."""
    rows = [_row(lead, now, deadlines) for lead in leads]
    for row in rows:
        del row["why_more"], row["moments"]  # page-only views of "all_reasons" and titles
    hours = {tier: span.total_seconds() / 3600 for tier, span in deadlines.items()}
    return msgspec.json.encode({"now": now, "deadlines_hours": hours, "leads": rows})


def feed_csv(leads: Sequence[Lead], *, now: datetime, deadlines: Mapping[str, timedelta]) -> str:
    """Render the feed's rows as CSV, one lead per line, lists joined with "; "."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for lead in leads:
        row = _row(lead, now, deadlines)
        row["members"] = [
            f"{m['user_id']} ({m['tier']} {show(m['score'])})" for m in row["members"]
        ]
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
    """Render the feed page: ranked leads with reasons and deadlines, do-not-contact apart."""
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
    """Return what ``feed.html`` shows: the two lists, the deadlines, the filters in force.

    ``signed_in`` and ``csrf`` are None here; the app sets them for a rep's session
    (the "Mark contacted" forms need both).
    """
    shown = " · ".join(
        f"{name}: {value}" for name, value in (("tier", tier), ("route", route)) if value
    )
    rows = [_row(lead, now, deadlines) for lead in leads]
    return {
        "leads": [row for row in rows if row["route"] != DO_NOT_CONTACT],
        "quiet": [row for row in rows if row["route"] == DO_NOT_CONTACT],
        "deadlines": deadline_texts(deadlines),
        "now": now,
        "shown": shown,
        "signed_in": None,
        "csrf": None,
    }


def _row(lead: Lead, now: datetime, deadlines: Mapping[str, timedelta]) -> dict[str, Any]:
    """Return one lead as the feed shows it, in every format."""
    due = due_at(lead, deadlines)
    reasons = list(lead.get("reasons") or ())
    every = reason_texts(reasons, len(reasons))
    contacted_at: datetime | None = lead.get("contacted_at")
    # A contact counts for the crossing it followed: a lead that crossed again since
    # (hot, then burning) is due again.
    contacted = contacted_at is not None and contacted_at >= lead["crossed_at"]
    kinds = list(lead.get("moments_seen") or ())
    titles = list(lead.get("moment_titles") or ())
    return {
        "subject": lead["subject"],
        "subject_id": lead["subject_id"],
        "model": lead.get("model"),
        "tier": lead["tier"],
        "previous_tier": lead.get("previous_tier"),
        "direction": lead.get("direction"),
        "score": lead["score"],
        "multiplier": lead.get("multiplier", 1.0),
        "points": sum(r.get("earned") or 0 for r in reasons if r.get("fired")),
        "route": lead["route"],
        "crossed_at": lead["crossed_at"],
        "due_at": due,
        "overdue": due is not None and not contacted and now > due,
        "contacted": contacted,
        "contacted_by": lead.get("contacted_by"),
        "contacted_at": contacted_at,
        "team_size": lead.get("team_size"),
        "top_features": list(lead.get("top_features") or ()),
        "moments_seen": kinds,
        "moments": titles if len(titles) == len(kinds) else [_title(kind) for kind in kinds],
        "top_reasons": every[:_TOP],
        "all_reasons": every,
        "why_more": every[_TOP:],
        "reasons": reasons,
        "members": [_member(m) for m in lead.get("members") or ()],
    }


def _member(member: Mapping[str, Any]) -> dict[str, Any]:
    """Return a PQA member as the feed shows it: who, tier, score, and why."""
    reasons = list(member.get("reasons") or ())
    return {
        "user_id": member.get("user_id"),
        "tier": member.get("tier"),
        "score": member.get("score"),
        "qualifies": bool(member.get("qualifies", True)),
        "why": reason_texts(reasons, len(reasons)),
    }


def _title(kind: str) -> str:
    """Name a moment whose title did not travel (an older SDK): trial_ending -> Trial ending."""
    return kind.replace("_", " ").capitalize()


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{show(hours)} h" if hours >= 1 else f"{show(span.total_seconds() / 60)} min"


def _by_span(item: tuple[str, timedelta]) -> timedelta:
    return item[1]


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas: ids and labels come from tracked data."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
