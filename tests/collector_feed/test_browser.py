"""The PQL feed in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

from playwright.sync_api import Page

from pqlsdk.collector._demo import Demo, running_demo
from tests.browser import ARTIFACTS, chromium


def sign_in(page: Page, demo: Demo, name: str = "Ann Rep") -> None:
    """Open the bare URL as a rep would and sign in through the form."""
    page.goto(demo.url)
    assert page.url.startswith(f"{demo.url}/login")
    page.screenshot(path=str(ARTIFACTS / "feed-login.png"))
    page.fill("#name", name)
    page.fill("#key", demo.feed_key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo.url}/feed")


def test_the_feed_shows_the_real_pql_above_the_maybe() -> None:
    """Signed in through the form, /feed ranks the real PQL above the maybe; the logger is cold."""
    with running_demo() as demo, chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        sign_in(page, demo)
        assert page.title() == "PQL feed"
        assert "Signed in as Ann Rep" in page.inner_text("form.signout")
        rows = page.locator("tr.lead").evaluate_all(
            "rows => rows.map(row => [row.dataset.id, row.dataset.tier])"
        )
        page.screenshot(path=str(ARTIFACTS / "feed.png"), full_page=True)
        context.close()
    ranked = [who for who, _ in rows]
    hot = {who for who, tier in rows if tier in ("hot", "burning")}
    assert ranked.index("ada@northwind") < ranked.index("max@maybe-labs")
    assert "sol@onceco" not in hot
