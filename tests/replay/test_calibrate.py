"""Calibration: thresholds suggested from outcomes, and the users they would move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pqlsdk.cli import main
from pqlsdk.replay import best_separation

from .conftest import PLAYBOOK, replay_json, track, write_lines

DAY = "2026-03-01T00:00:00Z"
GROUPS = {
    # name: (score, users, converters, extra events)
    "a": (0, 10, 0, []),
    "b": (30, 10, 1, ["limit_hit"]),
    "c": (40, 10, 6, ["checkout_started"]),
    "e": (55, 4, 1, ["checkout_started", "pricing", "pricing", "pricing"]),
    "d": (60, 5, 4, ["checkout_started", "premium_feature_attempted"]),
}


def _files(tmp_path: Path) -> tuple[Path, Path]:
    events: list[dict[str, Any]] = []
    outcomes = ["user,time"]
    for name, (_, users, converters, extra) in GROUPS.items():
        for i in range(users):
            user = f"{name}{i}"
            events.append(track(user, "core_workflow_completed", DAY))
            for event in extra:
                if event == "pricing":
                    events.append(track(user, "page_viewed", DAY, path="/pricing"))
                else:
                    events.append(track(user, event, DAY))
            if i < converters:
                outcomes.append(f"{user},2026-03-02T00:00:00Z")
    (tmp_path / "outcomes.csv").write_text("\n".join(outcomes) + "\n")
    return write_lines(tmp_path / "events.jsonl", events), tmp_path / "outcomes.csv"


def test_suggestions_for_a_known_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bands convert 10 %, 60 %, 25 %, 80 %: a 70 % target says 60, Youden's J says 40."""
    events, outcomes = _files(tmp_path)
    data = replay_json(capsys, PLAYBOOK, events, "--outcomes", outcomes, "--target-rate", "0.7")
    calibration = data["calibration"]
    assert (calibration["tier"], calibration["subject"]) == ("hot", "user")
    target, youden = calibration["suggestions"]
    assert (target["method"], target["current"], target["threshold"]) == ("target_rate", 51, 60)
    assert target["band_rate"] == 0.8
    assert (target["moves_up"], target["moves_down"]) == (0, 4)  # the 55s fall to warm
    assert (youden["method"], youden["threshold"]) == ("youden", 40)
    assert youden["j"] == pytest.approx(11 / 12 + 19 / 27 - 1)
    assert youden["sensitivity"] == pytest.approx(11 / 12)
    assert (youden["moves_up"], youden["moves_down"]) == (10, 0)  # the 40s rise to hot


def test_the_terminal_says_what_each_suggestion_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text report names the tier, both suggestions and the users they move."""
    events, outcomes = _files(tmp_path)
    args = ["replay", str(PLAYBOOK), str(events), "--outcomes", str(outcomes)]
    assert main([*args, "--target-rate", "0.5", "--tier", "warm"]) == 0
    out = capsys.readouterr().out
    assert "Suggested thresholds for tier 'warm' (users):" in out
    assert "26 -> 40: lowest band converting at >= 50.0% (60.0%); moves 0 up, 10 down" in out
    assert "26 -> 40: best separation, Youden's J 0.620" in out


def test_no_suggestion_without_a_band_at_target_or_anyone_to_separate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nobody converting gives no threshold, and the report says so."""
    events, _ = _files(tmp_path)
    (tmp_path / "none.csv").write_text("user,time\n")
    args = ["replay", str(PLAYBOOK), str(events), "--outcomes", str(tmp_path / "none.csv")]
    assert main(args) == 0
    assert "none: no band reaches the target rate" in capsys.readouterr().out


def test_equal_separation_prefers_the_higher_cut() -> None:
    """Cuts at 10 and 5 separate equally well: 10 flags fewer subjects."""
    scored = [(10.0, True), (5.0, True), (5.0, False), (1.0, False)]
    assert best_separation(scored) == (10.0, 0.5, 0.5, 1.0)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--tier", "lukewarm"],
            "--tier 'lukewarm': model 'playbook' has cold, warm, hot, burning",
        ),
        (["--bands", "10,5"], "--bands '10,5': band edges must be strictly ascending"),
        (["--bands", "x"], "--bands 'x': could not convert"),
        (["--bands", ","], "--bands ',': give finite numbers"),
        (["--at", "soon"], "--at 'soon' is not an ISO-8601 instant"),
        (["--every", "often"], "--every 'often': expected a duration like 1d"),
        (["--model", "nope"], "no model 'nope'"),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    """Each mistaken option is exit 2 with what was wrong."""
    events = write_lines(tmp_path / "e.jsonl", [track("u", "x", DAY)])
    assert main(["replay", str(PLAYBOOK), str(events), *args]) == 2
    assert error in capsys.readouterr().err
