"""The PQL feed in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from pqlsdk.collector._demo import running_demo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Without these, Chromium reaches for Google's hosts, which this network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_the_feed_shows_the_real_pql_above_the_maybe() -> None:
    """After the demo, /feed ranks the real PQL above the maybe; the single logger is not hot."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: scripts/test.sh installs it with apt-get")
        pytest.skip("chromium is not installed (scripts/test.sh installs it)")
    with running_demo() as demo, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
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
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "feed.png"), full_page=True)
            context.close()
        finally:
            browser.close()
    ranked = [who for who, _ in rows]
    hot = {who for who, tier in rows if tier in ("hot", "burning")}
    assert ranked.index("ada@northwind") < ranked.index("max@maybe-labs")
    assert "sol@onceco" not in hot
