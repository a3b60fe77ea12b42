"""The demo's moments page in a real browser: funnels and lifts drawn, on first run."""

from __future__ import annotations

import httpx

from pqlsdk.collector._demo import running_demo
from tests.browser import ARTIFACTS, chromium

from .test_browser import sign_in


def test_the_demo_moments_page_draws_funnels_and_lifts() -> None:
    """From the feed's link: a section per kind, bars as long as their counts, the interval
    around the lift, and the verdicts the API gives."""
    with running_demo() as demo, chromium() as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        sign_in(page, demo)
        page.click("a.moments-link")
        page.wait_for_url(f"{demo.url}/moments")
        kinds = page.locator("section.moment").evaluate_all("s => s.map(x => x.dataset.kind)")
        shown = page.locator('section[data-kind="trial_ending"] svg.funnel g.bar').evaluate_all(
            "bars => bars.map(bar => [Number(bar.dataset.count),"
            " bar.querySelector('rect').getBoundingClientRect().width])"
        )
        lift = page.locator('section[data-kind="trial_ending"] svg.lift')
        box = {
            name: lift.locator(selector).bounding_box()
            for name, selector in (("interval", "rect.interval"), ("point", "circle.point"))
        }
        verdicts = {
            kind: page.locator(f'section[data-kind="{kind}"] .verdict').inner_text()
            for kind in kinds
        }
        missing = page.locator('section[data-kind="upgrade_widget"] .no-lift').is_visible()
        page.screenshot(path=str(ARTIFACTS / "moments.png"), full_page=True)
        context.close()
        report = httpx.get(f"{demo.url}/api/moments", auth=(demo.feed_key, "")).json()
    assert kinds == ["blocked_feature", "trial_ending", "upgrade_widget"]
    assert {kind: found["verdict"] for kind, found in report["moments"].items()} == verdicts
    counts = report["moments"]["trial_ending"]
    assert counts["shown"] > 0
    assert counts["held_out"] > 0  # the demo's holdout: two arms on first run
    assert counts["converted_shown"] + counts["converted_held_out"] > 0
    eligible, width = shown[0]
    for count, drawn in shown:  # each bar as long as its count, against the eligible bar
        assert abs(drawn - width * count / eligible) <= 1
    interval, point = box["interval"], box["point"]
    assert interval is not None
    assert point is not None
    centre = point["x"] + point["width"] / 2
    assert interval["x"] <= centre <= interval["x"] + interval["width"]
    assert missing  # upgrade_widget has no held-out user yet: no lift drawn
