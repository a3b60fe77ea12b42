"""Output: tiers over time with --every, and the offline HTML report in Debian's Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pqlsdk.cli import main
from tests.browser import ARTIFACTS, chromium

from .conftest import PLAYBOOK, replay_json, track, write_lines

ODD = '<script>alert("x")</script>&co'
"""A user id that must be shown as text, never run."""


def _history(tmp_path: Path) -> tuple[Path, Path]:
    """Twelve users who climb over four days; half of the climbers convert; one odd burst."""
    events: list[dict[str, Any]] = []
    outcomes = ["user,time,value"]
    for i in range(12):
        user = f"u{i:02d}"
        events.append(track(user, "core_workflow_completed", "2026-03-01T09:00:00Z"))
        if i % 2:
            events.append(track(user, "checkout_started", "2026-03-02T09:00:00Z"))  # warm
        if i % 3 == 0:
            events.append(track(user, "limit_hit", "2026-03-03T09:00:00Z"))
        if i % 4 == 1:
            events.append(track(user, "demo_requested", "2026-03-04T09:00:00Z"))
        if i % 2:
            outcomes.append(f"{user},2026-03-04T12:00:00Z,{100 * i}")
    events += [
        track(ODD, e, "2026-03-04T10:00:00Z")
        for e in ("core_workflow_completed", "checkout_started", "demo_requested")
    ]
    (tmp_path / "outcomes.csv").write_text("\n".join(outcomes) + "\n")
    return write_lines(tmp_path / "events.jsonl", events), tmp_path / "outcomes.csv"


def test_every_counts_tiers_at_each_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--every 1d: users per tier at each UTC midnight and at the end, with the moves."""
    events, _ = _history(tmp_path)
    report = tmp_path / "r.html"
    timeline = replay_json(capsys, PLAYBOOK, events, "--every", "1d", "--report", report)[
        "timeline"
    ]
    html = report.read_text()
    assert "<th>band</th><th>n</th></tr>" in html  # no outcomes, no conversion columns
    assert html.count('<svg class="chart"') == 2  # distribution and tiers over time
    assert [point["at"] for point in timeline] == [
        "2026-03-02T00:00:00Z",
        "2026-03-03T00:00:00Z",
        "2026-03-04T00:00:00Z",
        "2026-03-04T10:00:00Z",  # the end: the last event
    ]
    assert [point["tiers"]["cold"] for point in timeline] == [12, 6, 4, 4]
    assert [point["changed"] for point in timeline] == [0, 6, 4, 3]  # new users do not count
    assert main(["replay", str(PLAYBOOK), str(events), "--every", "1d"]) == 0
    assert "  2026-03-03T00:00:00Z  cold 6  warm 6  hot 0  burning 0  changed 6" in (
        capsys.readouterr().out
    )


def test_the_report_is_self_contained_and_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No URL to fetch anything from, and user ids appear as escaped text."""
    events, outcomes = _history(tmp_path)
    report = tmp_path / "report.html"
    args: list[str | Path] = [
        PLAYBOOK,
        events,
        "--outcomes",
        outcomes,
        "--every",
        "1d",
        "--report",
        report,
    ]
    replay_json(capsys, *args, "--compare", PLAYBOOK)
    html = report.read_text()
    assert ODD not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co" in html
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * 5
    assert "<script" not in html.replace("&lt;script", "")
    assert "default-src 'none'" in html


def test_the_report_draws_its_charts_in_chromium(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Debian's Chromium opens the report from disk and draws every chart; screenshot saved."""
    events, outcomes = _history(tmp_path)
    report = tmp_path / "report.html"
    args = ["replay", str(PLAYBOOK), str(events), "--outcomes", str(outcomes)]
    assert main([*args, "--every", "1d", "--report", str(report)]) == 0
    capsys.readouterr()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        page.goto(report.as_uri())
        charts = page.locator("svg.chart")
        titles = charts.evaluate_all("svgs => svgs.map(s => s.querySelector('title').textContent)")
        boxes = [charts.nth(i).bounding_box() for i in range(charts.count())]
        bars = page.locator("rect.bar").evaluate_all(
            "rects => rects.map(r => r.getBoundingClientRect().height)"
        )
        lines = page.locator("polyline.series").count()
        odd_shown = page.get_by_text(ODD, exact=True).count()
        page.screenshot(path=str(ARTIFACTS / "replay-report.png"), full_page=True)
    assert titles == [
        "Score distribution (playbook.toml: playbook), users per band",
        "Conversion rate by band (playbook.toml: playbook), 95% CI",
        "Tiers over time (users)",
    ]
    assert all(box is not None and box["width"] > 100 and box["height"] > 100 for box in boxes)
    assert max(bars) > 10  # bars are drawn with height, not just present
    assert lines == 5  # four tiers and the changes
    assert odd_shown == 1  # the odd id is text in the single-logger table
    assert requests == [report.as_uri()]  # nothing fetched but the file itself
    assert dialogs == []


def test_the_report_lists_tier_changes_and_missing_suggestions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Compared files, nobody converting and no sustained model: each section says so."""
    rules = tmp_path / "rules" / "playbook.toml"
    rules.parent.mkdir()
    rules.write_text(PLAYBOOK.read_text())
    lowered = tmp_path / "lowered.toml"
    lowered.write_text(PLAYBOOK.read_text().replace("hot = 51", "hot = 35"))
    events, _ = _history(tmp_path)
    (tmp_path / "none.csv").write_text("user,time\nghost,2026-03-02T00:00:00Z\n")
    report = tmp_path / "r.html"
    args: list[str | Path] = [
        "--compare",
        lowered,
        "--outcomes",
        tmp_path / "none.csv",
        "--report",
        report,
    ]
    data = replay_json(capsys, rules, events, *args)
    assert main(["replay", *map(str, [rules, events, *args])]) == 0
    out = capsys.readouterr().out
    assert "1 outcome(s) name no one in the events" in out
    assert f"  {ODD}: 70 hot, 3 of 3 events on one day\n" in out  # no sustained model
    html = report.read_text()
    assert f"<h2>Users whose tier differs ({len(data['tier_changes'])})</h2>" in html
    assert "<th>user</th><th>playbook.toml</th><th>lowered.toml</th>" in html
    assert "<li>none</li>" in html
    assert "<th>on busiest day</th><th>score</th></tr>" in html  # no sustained column
