"""The PQL feed's renderers: ranked, explained, escaped, with deadlines."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pqlsdk.collector import _pages
from pqlsdk.collector._feed import (
    DEFAULT_DEADLINES,
    feed_context,
    feed_csv,
    feed_html,
    feed_json,
    filter_leads,
)

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


def lead(
    subject_id: str, tier: str, score: float, *, hours_ago: float = 1, **extra: Any
) -> dict[str, Any]:
    return {
        "subject": "user",
        "subject_id": subject_id,
        "model": "playbook",
        "tier": tier,
        "score": score,
        "route": extra.pop("route", "sales_development"),
        "crossed_at": NOW - timedelta(hours=hours_ago),
        "reasons": [
            {
                "signal": "checkout",
                "label": "checkouts started",
                "points": 40,
                "earned": 40,
                "fired": True,
                "observed": 1,
                "needs": ">= 1",
            },
            {
                "signal": "limit",
                "label": "limits hit",
                "points": 30,
                "earned": 30,
                "fired": True,
                "observed": 2,
                "needs": ">= 1",
            },
            {
                "signal": "vip",
                "label": "vip",
                "points": 5,
                "earned": 5,
                "fired": True,
                "observed": True,
                "needs": None,
            },
            {
                "signal": "demo",
                "label": "demo requests",
                "points": 30,
                "earned": 0,
                "fired": False,
                "observed": 0,
                "needs": ">= 1",
            },
        ],
        "top_features": ["reports", "exports"],
        "team_size": 4,
        "moments_seen": ["upgrade_widget"],
        **extra,
    }


def test_the_page_lists_leads_in_order_with_their_reasons() -> None:
    """Rows come in the given order with rank, tier, route, top reasons and context."""
    page = feed_html(
        [lead("ada", "burning", 105.0), lead("lin", "hot", 70.5)],
        now=NOW,
        deadlines=DEFAULT_DEADLINES,
    )
    assert page.index('data-id="ada"') < page.index('data-id="lin"')
    assert "checkouts started = 1, needs &gt;= 1 (+40)" in page
    assert "vip = yes (+5)" in page
    assert "demo requests" not in page  # not fired
    assert "sales development" in page
    assert "team of 4" in page
    assert "upgrade_widget" in page
    assert "70.5" in page
    assert "<br>105</td>" in page  # 105.0 reads as 105


def test_deadlines_mark_overdue_leads() -> None:
    """Burning leads are due within 4 hours and hot within 24; past that they are overdue."""
    page = feed_html(
        [
            lead("late", "burning", 90, hours_ago=5),
            lead("fresh", "hot", 60, hours_ago=2),
            lead("warm", "warm", 30, hours_ago=50),
        ],
        now=NOW,
        deadlines=DEFAULT_DEADLINES,
    )
    assert "overdue by 1h 0m" in page
    assert "within 22h 0m" in page
    assert "2d 2h ago" in page
    rows = json.loads(
        feed_json([lead("late", "burning", 90, hours_ago=5)], now=NOW, deadlines=DEFAULT_DEADLINES)
    )["leads"]
    assert (rows[0]["overdue"], rows[0]["due_at"]) == (True, "2026-03-15T11:00:00Z")


def test_everything_shown_is_escaped() -> None:
    """Ids and labels come from tracked data: markup in them is shown, never run."""
    evil = lead("<script>alert(1)</script>", "hot", 60)
    evil["reasons"][0]["label"] = "<img src=x onerror=alert(1)>"
    page = feed_html([evil], now=NOW, deadlines=DEFAULT_DEADLINES, tier="<b>")
    assert "<script>alert(1)" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert "tier: &lt;b&gt;" in page


def test_an_empty_feed_says_so() -> None:
    """No leads: the page says so instead of showing an empty table."""
    assert "No leads yet." in feed_html([], now=NOW, deadlines=DEFAULT_DEADLINES)


def test_filters_by_tier_and_route() -> None:
    """Filtering keeps the leads in the tier and on the route asked for."""
    leads = [
        lead("a", "hot", 60),
        lead("b", "burning", 80, route="account_executive"),
        lead("c", "hot", 55, route="customer_success"),
    ]
    assert [x["subject_id"] for x in filter_leads(leads, tier="hot")] == ["a", "c"]
    assert [x["subject_id"] for x in filter_leads(leads, route="account_executive")] == ["b"]
    assert [x["subject_id"] for x in filter_leads(leads, tier="hot", route="customer_success")] == [
        "c"
    ]
    assert filter_leads(leads) == leads


def test_csv_export_has_one_row_per_lead_and_defuses_formulas() -> None:
    """CSV rows carry the same facts; a cell that would be a formula is quoted."""
    text = feed_csv(
        [lead("=HYPERLINK(1)", "hot", 61.25, hours_ago=30)], now=NOW, deadlines=DEFAULT_DEADLINES
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    row = rows[0]
    assert row["subject_id"] == "'=HYPERLINK(1)"
    assert (row["tier"], row["score"], row["overdue"]) == ("hot", "61.25", "True")
    assert row["top_features"] == "reports; exports"
    assert row["top_reasons"].startswith("checkouts started = 1, needs >= 1 (+40); ")
    assert row["crossed_at"] == "2026-03-14T06:00:00+00:00"


def test_the_page_is_a_packaged_jinja2_template_that_escapes_everything() -> None:
    """feed.html ships in the package and is rendered by an autoescaping Jinja2 environment."""
    assert (_pages.TEMPLATES / "feed.html").is_file()
    assert _pages.TEMPLATES.is_relative_to(Path(_pages.__file__).parent)
    assert _pages.templates.env.autoescape is True
    page = _pages.render(
        "feed.html",
        **feed_context([lead('"><b>x', "hot", 60)], now=NOW, deadlines=DEFAULT_DEADLINES),
    )
    assert '"><b>x' not in page
    assert "&#34;&gt;&lt;b&gt;x" in page
