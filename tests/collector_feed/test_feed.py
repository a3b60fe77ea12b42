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
    assert "Upgrade widget" in page  # an older sender's moment, named from its kind
    assert "upgrade_widget" not in page
    assert "70.5" in page
    assert "<strong>105</strong>" in page  # 105.0 reads as 105


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


def fired(n: int) -> list[dict[str, Any]]:
    return [
        {
            "signal": f"s{i}",
            "label": f"signal {i}",
            "points": 10 + i,
            "earned": 10 + i,
            "fired": True,
            "observed": i,
            "needs": None,
        }
        for i in range(n)
    ]


def test_the_page_states_each_tiers_response_deadline() -> None:
    """The page says what "overdue" means: each tier's deadline, most urgent first."""
    page = feed_html([lead("a", "hot", 60)], now=NOW, deadlines=DEFAULT_DEADLINES)
    assert "<strong>Respond within</strong> burning: 4 h, hot: 24 h of a lead crossing" in page
    other = feed_html([], now=NOW, deadlines={"hot": timedelta(minutes=30)})
    assert "hot: 30 min" in other
    assert "No tier sets a response deadline." in feed_html([], now=NOW, deadlines={})


def test_every_reason_is_shown_with_the_rest_under_more() -> None:
    """Three reasons show at once, the rest under "+N more"; their points make the score."""
    page = feed_html(
        [lead("a", "burning", 95, reasons=fired(5))], now=NOW, deadlines=DEFAULT_DEADLINES
    )
    assert "<summary>+2 more</summary>" in page
    for i in range(5):
        assert f"signal {i} = {i} (+{10 + i})" in page
    assert "60 pts \u00d7 1</div>" in page
    row = json.loads(
        feed_json([lead("a", "burning", 95, reasons=fired(5))], now=NOW, deadlines={})
    )["leads"][0]
    assert len(row["all_reasons"]) == 5
    assert (row["points"], row["multiplier"]) == (60, 1.0)


def test_the_multiplier_is_shown_beside_the_points() -> None:
    """A score halved by recency says so: points x multiplier."""
    page = feed_html([lead("a", "hot", 52.5, multiplier=0.5)], now=NOW, deadlines=DEFAULT_DEADLINES)
    assert "75 pts \u00d7 0.5 recency" in page


def test_moments_are_shown_by_their_titles() -> None:
    """Moments seen read as their titles, not their ids."""
    page = feed_html(
        [
            lead(
                "a",
                "hot",
                60,
                moments_seen=["trial_ending"],
                moment_titles=["Your trial ends in [days left] days"],
            )
        ],
        now=NOW,
        deadlines=DEFAULT_DEADLINES,
    )
    assert "Your trial ends in [days left] days" in page
    assert "trial_ending" not in page


def test_do_not_contact_leads_are_listed_apart_with_no_deadline() -> None:
    """A do-not-contact lead is never ranked with the others, and is never overdue."""
    leads = [
        lead("quiet", "burning", 120, route="do_not_contact", hours_ago=30),
        lead("ada", "hot", 60),
    ]
    page = feed_html(leads, now=NOW, deadlines=DEFAULT_DEADLINES)
    heading = page.index('<h2 id="do-not-contact">Do not contact (1)</h2>')
    assert page.index('data-id="ada"') < heading < page.index('data-id="quiet"')
    assert "overdue" not in page[heading:]
    assert "1 lead(s) to contact" in page
    rows = json.loads(feed_json(leads, now=NOW, deadlines=DEFAULT_DEADLINES))["leads"]
    assert (rows[0]["due_at"], rows[0]["overdue"]) == (None, False)


def test_a_contact_after_the_crossing_stops_the_clock() -> None:
    """Marked contacted after it crossed: not overdue; a contact before a new crossing is not."""
    contacted = lead(
        "ada",
        "burning",
        90,
        hours_ago=10,
        contacted_by="Ann Rep",
        contacted_at=NOW - timedelta(hours=9),
    )
    earlier = lead(
        "ben",
        "burning",
        90,
        hours_ago=10,
        contacted_by="Bo",
        contacted_at=NOW - timedelta(hours=11),
    )
    page = feed_html([contacted, earlier], now=NOW, deadlines=DEFAULT_DEADLINES)
    assert '✓ contacted by Ann Rep</span> <span class="muted">9h 0m ago' in page
    assert "overdue by 6h 0m" in page  # ben's
    assert "last contacted by Bo 11h 0m ago, before this crossing" in page
    rows = json.loads(feed_json([contacted, earlier], now=NOW, deadlines=DEFAULT_DEADLINES))
    assert [(r["contacted"], r["overdue"]) for r in rows["leads"]] == [(True, False), (False, True)]
    assert rows["leads"][0]["contacted_by"] == "Ann Rep"
    text = feed_csv([contacted], now=NOW, deadlines=DEFAULT_DEADLINES)
    row = next(csv.DictReader(io.StringIO(text)))
    assert (row["contacted_by"], row["contacted_at"], row["overdue"]) == (
        "Ann Rep",
        "2026-03-15T03:00:00+00:00",
        "False",
    )


def test_a_pqa_lists_its_qualifying_members_and_why() -> None:
    """An account that became a PQA shows its members' tiers, scores and reasons."""
    members = [
        {"user_id": "ada", "tier": "burning", "score": 85, "reasons": fired(3)},
        {"user_id": "cai", "tier": "hot", "score": 60, "reasons": fired(1)},
    ]
    pqa = lead("northwind", "burning", 145, subject="account", members=members, team_size=3)
    page = feed_html([pqa], now=NOW, deadlines=DEFAULT_DEADLINES)
    assert '<span class="pqa" title="Product-qualified account">PQA</span> account' in page
    assert "2 qualifying of 3 active member(s)" in page
    assert '<li class="member" data-member="ada"><strong>ada</strong>' in page
    assert "sum of qualifying members" in page
    assert "<summary>+1 more</summary>" in page  # ada's third reason
    text = feed_csv([pqa], now=NOW, deadlines=DEFAULT_DEADLINES)
    assert next(csv.DictReader(io.StringIO(text)))["members"] == "ada (burning 85); cai (hot 60)"
