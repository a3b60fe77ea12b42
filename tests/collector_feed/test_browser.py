"""The PQL feed in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

from collections import Counter

from playwright.sync_api import Page

from pqlsdk.collector._alerts import Alerter, JSONWebhook, SlackWebhook
from pqlsdk.collector._demo import Demo, running_demo
from tests.browser import ARTIFACTS, chromium
from tests.collector_alerts.receiver import Receiver


def sign_in(page: Page, demo: Demo, name: str = "Ann Rep") -> None:
    """Open the bare URL as a rep would and sign in through the form."""
    page.goto(demo.url)
    assert page.url.startswith(f"{demo.url}/login")
    page.screenshot(path=str(ARTIFACTS / "feed-login.png"))
    page.fill("#name", name)
    page.fill("#key", demo.feed_key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo.url}/feed")


def rows(page: Page, selector: str = "tr.lead") -> list[list[str]]:
    found: list[list[str]] = page.locator(selector).evaluate_all(
        "rows => rows.map(row => [row.dataset.id, row.dataset.tier, row.dataset.subject])"
    )
    return found


def test_the_feed_shows_the_real_pql_above_the_maybe() -> None:
    """Signed in through the form, /feed ranks the real PQL above the maybe; the logger is cold."""
    with running_demo() as demo, chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        sign_in(page, demo)
        assert page.title() == "PQL feed"
        assert "Signed in as Ann Rep" in page.inner_text("form.signout")
        ranked = rows(page)
        seen = page.locator("tr.lead td").evaluate_all(
            "cells => cells.map(cell => cell.innerText)"
            ".filter(text => text.includes('moments seen:'))"
            ".map(text => text.split('moments seen:')[1].trim())"
        )
        page.screenshot(path=str(ARTIFACTS / "feed.png"), full_page=True)
        context.close()
    order = [who for who, _, _ in ranked]
    hot = {who for who, tier, _ in ranked if tier in ("hot", "burning")}
    assert order.index("ada@northwind") < order.index("max@maybe-labs")
    assert "sol@onceco" not in hot
    # Moments read as the user saw them, never as templates ("[feature] is on ...").
    assert any("Single sign-on is on the Business plan" in text for text in seen)
    assert not [text for text in seen if "[" in text]


def test_a_rep_works_the_demo_feed_in_a_browser() -> None:
    """Northwind is a PQA row and alert; do-not-contact apart; reasons expand; contacts stick."""
    with Receiver() as receiver:
        alerter = Alerter(
            [JSONWebhook(receiver.url("/json")), SlackWebhook(receiver.url("/slack"))]
        )
        try:
            with running_demo(on_crossing=alerter) as demo, chromium() as browser:
                assert alerter.flush(10) == 0
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                sign_in(page, demo)
                main, quiet = (
                    rows(page, "table:not(.dnc table) tr.lead"),
                    rows(page, ".dnc tr.lead"),
                )
                northwind = page.locator('tr.lead[data-id="northwind"]')
                badge = northwind.locator(".pqa").inner_text()
                members = northwind.locator("li.member").evaluate_all(
                    "items => items.map(item => item.dataset.member)"
                )
                more = page.locator('tr.lead[data-id="ada@northwind"] details.more')
                hidden = more.locator("li").first.is_visible()
                more.locator("summary").click()
                shown = more.locator("li").first.is_visible()
                deadlines = page.inner_text("p.deadlines")
                page.screenshot(path=str(ARTIFACTS / "feed-expanded.png"), full_page=True)
                page.locator('tr.lead[data-id="max@maybe-labs"] button').click()
                page.wait_for_load_state()
                contacted = page.inner_text('tr.lead[data-id="max@maybe-labs"] td.respond')
                page.screenshot(path=str(ARTIFACTS / "feed-contacted.png"), full_page=True)
                api = {lead["subject_id"]: lead for lead in demo.leads()}
                context.close()
        finally:
            alerter.close(5)
        json_alerts = [r.body["lead"] for r in receiver.requests if r.path == "/json"]
        slack_alerts = [r.body for r in receiver.requests if r.path == "/slack"]
    assert (main[0][0], main[0][2], badge) == ("northwind", "account", "PQA")
    assert set(members) == {"ada@northwind", "cai@northwind", "ben@northwind"}
    assert [who for who, _, _ in quiet] == ["dan@quiet-co"]
    assert "dan@quiet-co" not in [who for who, _, _ in main]
    assert (hidden, shown) == (False, True)
    assert "burning: 4 h, hot: 24 h" in deadlines
    assert "contacted by Ann Rep" in contacted
    assert (api["max@maybe-labs"]["contacted_by"], api["max@maybe-labs"]["overdue"]) == (
        "Ann Rep",
        False,
    )
    # The account is alerted once per crossing (a hot PQA, then a burning one), to each webhook.
    accounts = Counter(lead["tier"] for lead in json_alerts if lead["subject"] == "account")
    assert accounts == {"hot": 1, "burning": 1}
    assert len({lead["message_id"] for lead in json_alerts}) == len(json_alerts)
    assert len(slack_alerts) == len(json_alerts)
    assert any(a["text"].startswith("🔥 burning PQA: northwind") for a in slack_alerts)
