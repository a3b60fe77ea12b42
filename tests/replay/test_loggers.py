"""Single loggers: one intense day scores high on totals; the sustained model says otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pqlsdk.cli import main

from .conftest import PLAYBOOK, RULES, replay_json, track, write_lines

BURST = ["core_workflow_completed", "checkout_started", "demo_requested", "limit_hit"]


def _history(tmp_path: Path) -> Path:
    events: list[dict[str, Any]] = []
    for i, event in enumerate(BURST * 2):  # 8 events within one UTC day: 130 points
        events.append(track("sol", event, f"2026-03-10T0{i}:00:00Z"))
    for day, event in enumerate(BURST * 2, 1):  # the same, one a day
        events.append(track("ada", event, f"2026-03-{day:02d}T12:00:00Z"))
    events += [track("max", "page_viewed", f"2026-03-10T1{i}:00:00Z") for i in range(5)]
    events.append(track("mia", "core_workflow_completed", "2026-03-09T23:59:00Z"))
    events += [track("mia", e, "2026-03-10T00:01:00Z") for e in BURST[1:]]  # 3 of 4 (75 %)
    return write_lines(tmp_path / "events.jsonl", events)


def test_single_loggers_are_listed_with_their_sustained_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only sol: ada's week counts, max never scored, mia is 75 % on one day (under 80 %)."""
    data = replay_json(capsys, PLAYBOOK, _history(tmp_path))
    loggers = data["single_loggers"]
    assert loggers["sustained_model"] == "sustained"  # sustained.toml beside the rules
    assert [entry["user"] for entry in loggers["users"]] == ["sol"]
    sol = loggers["users"][0]
    assert (sol["tracks"], sol["busiest_day_tracks"], sol["share"]) == (8, 8, 1.0)
    assert (sol["score"], sol["tier"]) == (100.0, "burning")
    assert sol["sustained"]["tier"] == "skip"
    assert sol["sustained"]["score"] == pytest.approx(60 / 7)
    assert sol["sustained"]["reasons"][0] == "days active in 14 = 0.1429 (+8.571)"


def test_the_share_and_the_sustained_file_are_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--logger-share 0.75 adds mia; --sustained names the model file; the text shows both."""
    events = _history(tmp_path)
    args = ["replay", str(PLAYBOOK), str(events), "--logger-share", "0.75"]
    assert main([*args, "--sustained", str(RULES / "sustained.toml")]) == 0
    out = capsys.readouterr().out
    assert "Single loggers (>= 75.0% of events on one UTC day, tier hot or above): 2" in out
    assert "  sol: 100 burning, 8 of 8 events on one day; sustained: 8.571 skip" in out
    assert "  mia: 100 burning, 3 of 4 events on one day; sustained: 17.14 skip\n  sol" in out


def test_without_a_sustained_model_loggers_are_listed_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules with no sustained model beside them (or a broken one) list loggers only."""
    rules = tmp_path / "rules" / "playbook.toml"
    rules.parent.mkdir()
    shutil.copy(PLAYBOOK, rules)
    events = _history(tmp_path)
    alone = replay_json(capsys, rules, events)["single_loggers"]
    assert alone["sustained_model"] is None
    assert "sustained" not in alone["users"][0]
    (rules.parent / "sustained.toml").write_text("[model.sustained\n")
    assert replay_json(capsys, rules, events)["single_loggers"]["sustained_model"] is None


def test_a_sustained_model_in_the_compared_rules_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model named sustained in --compare's file serves the single-logger view."""
    rules = tmp_path / "playbook.toml"
    shutil.copy(PLAYBOOK, rules)
    data = replay_json(capsys, rules, _history(tmp_path), "--compare", RULES / "sustained.toml")
    assert data["single_loggers"]["sustained_model"] == "sustained"
