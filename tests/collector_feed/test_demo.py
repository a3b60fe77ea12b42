"""The main job as a newcomer runs it: ``pqlsdk demo``, its printed feed and its ending."""

from __future__ import annotations

import re

import httpx
import pytest

from pqlsdk.cli import main
from pqlsdk.collector._demo import running_demo


def test_the_demo_prints_a_feed_a_rep_can_act_on(capsys: pytest.CaptureFixture[str]) -> None:
    """Northwind is a PQA, do-not-contact is apart, deadlines are explained, fresh leads are due."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    ranked, _, quiet = out.partition("Do not contact (1; never ranked with the leads above):")
    assert "  1. account northwind " in ranked
    assert "a PQA: 3 members at the PQA tier or above" in ranked
    assert "dan@quiet-co" not in ranked
    assert "user dan@quiet-co" in quiet
    assert "Respond within burning 4 h, hot 24 h of a lead crossing into its tier" in out
    assert "respond by" in ranked  # the last day's crossings are within their deadlines
    assert "OVERDUE" in ranked  # older ones are not


def test_the_demo_says_its_collector_stopped_and_how_to_keep_it_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --serve the printed URL is dead: the demo says so and names --serve."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "The demo's collector has stopped" in out
    assert "bash scripts/run.sh --serve" in out
    assert out.index("Feed: http://") < out.index("has stopped")


def test_each_printed_lead_lists_every_reason_so_its_points_add_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A user lead's printed reasons add up to its points: none is cut at the top three."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    leads = re.findall(
        r"\n  (?:\d+\.|-) user (\S+) +\S+ +([\d.]+)  ->[^\n]*\n((?:       [^\n]*\n)*)", out
    )
    assert leads, out
    for user_id, score, block in leads:
        points = sum(int(p) for p in re.findall(r"\(\+(\d+)\)$", block, flags=re.MULTILINE))
        assert points == float(score), f"{user_id}: reasons add to {points}, score {score}"


def test_the_demo_measures_its_moments_on_first_run() -> None:
    """The cohort draws holdouts and conversions: trial_ending has both arms and converters;
    a kind with one arm shows no lift, its empty rates blank in the CSV."""
    with running_demo() as demo:
        auth = (demo.feed_key, "")
        report = httpx.get(f"{demo.url}/api/moments", auth=auth, timeout=30).json()
        page = httpx.get(f"{demo.url}/moments", auth=auth, timeout=30).text
        table = httpx.get(f"{demo.url}/api/moments.csv", auth=auth, timeout=30).text
        leads = demo.leads()
    trial = report["moments"]["trial_ending"]
    assert trial["shown"] > 0
    assert trial["held_out"] > 0
    assert trial["converted_shown"] > 0
    assert trial["lift_low"] <= trial["lift"] <= trial["lift_high"]
    assert "No lift yet: it needs users in both arms." in page
    assert re.search(r"^upgrade_widget,(\d+,){7}[\d.]+,,,,,", table, re.MULTILINE)
    assert not [lead for lead in leads if "crowd" in lead["subject_id"]]  # the crowd is no lead
