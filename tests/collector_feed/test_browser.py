"""The PQL feed in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

from pqlsdk.collector._demo import running_demo
from tests.browser import ARTIFACTS, chromium


def test_the_feed_shows_the_real_pql_above_the_maybe() -> None:
    """After the demo, /feed ranks the real PQL above the maybe; the single logger is not hot."""
    with running_demo() as demo, chromium() as browser:
        context = browser.new_context(
            http_credentials={"username": demo.feed_key, "password": ""},
            viewport={"width": 1400, "height": 900},
        )
        page = context.new_page()
        response = page.goto(f"{demo.url}/feed")
        assert response is not None
        assert response.status == 200
        assert page.title() == "PQL feed"
        rows = page.locator("tr.lead").evaluate_all(
            "rows => rows.map(row => [row.dataset.id, row.dataset.tier])"
        )
        page.screenshot(path=str(ARTIFACTS / "feed.png"), full_page=True)
        context.close()
    ranked = [who for who, _ in rows]
    hot = {who for who, tier in rows if tier in ("hot", "burning")}
    assert ranked.index("ada@northwind") < ranked.index("max@maybe-labs")
    assert "sol@onceco" not in hot
