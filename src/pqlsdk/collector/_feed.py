"""The PQL feed: who is hot, why, what to do, and by when.

A sales rep reads it top to bottom: leads ranked by tier then score, each with
the reasons that put it there, the route (customer success, account executive,
sales development, nurture), when it crossed into its tier and the deadline the
tier sets for a response (burning: 4 hours, hot: 24 hours; a PQL contacted
within hours converts several times better than one contacted after days).
Overdue leads are marked. The same rows come as JSON (``/api/leads``) and CSV.

These are pure renderers over lead dicts (the fields of CONTRACT.md plus
``crossed_at`` as a datetime); the app wires them to routes behind a key.
Everything shown is escaped: ids and reasons come from tracked data.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from .._scoring import reason_texts, show

__all__ = ["DEFAULT_DEADLINES", "feed_csv", "feed_html", "feed_json", "filter_leads"]

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
_STYLE: Final = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .25rem}
.meta{color:#5b6474;margin-bottom:1rem}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0001}
th,td{text-align:left;padding:.55rem .7rem;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:#5b6474}
.tier{font-weight:600;border-radius:1rem;padding:.1rem .55rem;font-size:.85rem}
.burning{background:#ffe1dc;color:#a3200c}.hot{background:#fff0d6;color:#8a4b00}
.warm{background:#fff9d6;color:#6b5900}.cold{background:#e8eef7;color:#3a4d6b}
.overdue{color:#a3200c;font-weight:600}
ul{margin:0;padding-left:1.1rem}
.muted{color:#8a93a3}
"""


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
    e = html.escape
    rows = []
    for rank, lead in enumerate(leads, 1):
        due = due_at(lead, deadlines)
        overdue = due is not None and now > due
        deadline = (
            ""
            if due is None
            else (
                f'<span class="overdue">overdue by {_span(now - due)}</span>'
                if overdue
                else f"within {_span(due - now)}"
            )
        )
        reasons = "".join(f"<li>{e(text)}</li>" for text in top_reasons(lead)) or "<li>-</li>"
        who = f"{e(lead['subject'])} <strong>{e(str(lead['subject_id']))}</strong>"
        features = ", ".join(e(str(f)) for f in lead.get("top_features") or ()) or "-"
        moments = ", ".join(e(str(m)) for m in lead.get("moments_seen") or ()) or "none"
        ident, tier_class = e(str(lead["subject_id"])), e(lead["tier"])
        rows.append(
            f'<tr class="lead" data-id="{ident}" data-tier="{tier_class}">'
            f"<td>{rank}</td><td>{who}</td>"
            f'<td><span class="tier {e(lead["tier"])}">{e(lead["tier"])}</span><br>'
            f"{show(lead['score'])}</td>"
            f"<td>{e(lead['route'].replace('_', ' '))}</td>"
            f"<td>{_span(now - lead['crossed_at'])} ago<br>{deadline}</td>"
            f"<td><ul>{reasons}</ul></td>"
            f"<td>team of {int(lead.get('team_size') or 1)}<br>"
            f'<span class="muted">features:</span> {features}<br>'
            f'<span class="muted">moments seen:</span> {moments}</td></tr>'
        )
    shown = " · ".join(
        f"{name}: {e(value)}" for name, value in (("tier", tier), ("route", route)) if value
    )
    body = "".join(rows) or '<tr><td colspan="7" class="muted">No leads yet.</td></tr>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>PQL feed</title><style>{_STYLE}</style></head><body>"
        "<h1>PQL feed</h1>"
        f'<div class="meta">{len(leads)} lead(s) as of {e(now.strftime("%Y-%m-%d %H:%M UTC"))}'
        f"{' · ' + shown if shown else ''} · "
        '<a href="/api/leads">JSON</a> · <a href="/api/leads.csv">CSV</a></div>'
        "<table><thead><tr><th>#</th><th>Who</th><th>Tier</th><th>Route</th>"
        "<th>Crossed / respond</th><th>Why</th><th>Context</th></tr></thead>"
        f"<tbody>{body}</tbody></table></body></html>"
    )


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


def _span(delta: timedelta) -> str:
    """Write a short human duration: 45m, 3h 10m, 2d 4h."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def _csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas: ids and labels come from tracked data."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
