"""What-if: two rules files over the same events, side by side, and whose tier changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqlsdk.cli import main

from .conftest import PLAYBOOK, RULES, SCENARIOS, replay_json, track, write_lines

DAY = "2026-03-01T00:00:00Z"


def _scores(capsys: pytest.CaptureFixture[str], rules: Path, events: Path) -> dict[str, str]:
    assert main(["score", str(rules), str(events), "--json"]) == 0
    return {u: s["tier"] for u, s in json.loads(capsys.readouterr().out)["users"].items()}


def test_compare_lists_exactly_the_users_whose_tier_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Model 2 against a variant (PQL from 45, a new signal): the list two ``score`` runs give."""
    events = SCENARIOS / "model2_weighted.json"
    weighted = RULES / "weighted.toml"
    variant = tmp_path / "variant.toml"
    variant.write_text(
        weighted.read_text().replace("pql = 61", "pql = 45")
        + "invites = { when = 'count(\"teammate_invited\") >= 1', points = 5 }\n"
    )
    first, second = _scores(capsys, weighted, events), _scores(capsys, variant, events)
    expected = sorted(u for u in first if first[u] != second[u])
    assert expected  # the files disagree about someone
    assert len(expected) < len(first)  # and agree about someone
    data = replay_json(capsys, weighted, events, "--compare", variant)
    assert [change["user"] for change in data["tier_changes"]] == expected
    change = data["tier_changes"][0]
    assert [side["model"] for side in change["under"]] == ["weighted", "weighted"]
    assert [side["tier"] for side in change["under"]] == [
        first[change["user"]],
        second[change["user"]],
    ]
    assert len(data["tables"]) == 2


def test_a_lower_threshold_moves_exactly_the_users_between_the_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hot from 35 instead of 51 moves the 40-point users, each with both sets of reasons."""
    lowered = tmp_path / "lowered.toml"
    lowered.write_text(PLAYBOOK.read_text().replace("hot = 51", "hot = 35"))
    events = [track(u, "core_workflow_completed", DAY) for u in ("zero", "forty", "thirty", "x")]
    events += [
        track("forty", "checkout_started", DAY),
        track("thirty", "limit_hit", DAY),
        track("x", "checkout_started", DAY),
    ]
    history = write_lines(tmp_path / "e.jsonl", events)
    assert main(["replay", str(PLAYBOOK), str(history), "--compare", str(lowered)]) == 0
    out = capsys.readouterr().out
    assert "Users whose tier differs: 2\n  forty\n" in out
    assert "    playbook.toml: 40 warm: checkouts started = 1, needs >= 1 (+40)\n" in out
    assert "    lowered.toml: 40 hot: checkouts started = 1, needs >= 1 (+40)\n" in out
    assert "\n  x\n" in out
    assert "thirty" not in out.split("Users whose tier differs")[1]
    tier_lines = out.split("by tier (playbook.toml: playbook)")[1].splitlines()
    assert tier_lines[0].split("|")[1].split()[:3] == ["by", "tier", "(lowered.toml:"]
    assert tier_lines[2].split() == ["warm", "3", "0", "|", "warm", "1", "0"]
    assert tier_lines[3].split() == ["hot", "0", "0", "|", "hot", "2", "0"]


def test_changes_say_when_a_gate_or_recency_decides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user stopped by the gate, or scaled by recency, says so beside the reasons."""
    events = [track("g", "feature_used", "2026-03-10T00:00:00Z", feature=f"f{i}") for i in range(3)]
    events += [
        track("r", "core_workflow_completed", "2026-03-01T00:00:00Z"),
        track("r", "checkout_started", "2026-03-01T00:00:00Z"),
    ]
    history = write_lines(tmp_path / "e.jsonl", events)
    weighted = RULES / "weighted.toml"
    report = tmp_path / "r.html"
    args = ["replay", str(PLAYBOOK), str(history), "--compare", str(weighted)]
    assert main([*args, "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "    playbook.toml: 0 cold (gate not passed: score 0): distinct features" in out
    assert "    weighted.toml: 32.5 moderate: feature breadth = 0.6 (+15);" in out
    assert "    playbook.toml: 20 cold (raw 40 x 0.5): checkouts started = 1" in out
    assert "<b>0 cold</b> (gate not passed)<br>" in report.read_text()
