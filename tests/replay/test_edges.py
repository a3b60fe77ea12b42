"""Edge cases of the replay: disorder beyond the window, empty files, odd inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqlsdk.cli import main
from pqlsdk.replay import _run, wilson

from .conftest import PLAYBOOK, SCENARIOS, group, replay_json, track, write_lines


def test_disorder_beyond_the_window_is_folded_late_with_the_same_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a 16-message window, newest-first events are late, yet every score is the same."""
    scenario = SCENARIOS / "model1_additive.json"
    document = json.loads(scenario.read_text())
    newest_first = sorted(document["events"], key=lambda m: m["timestamp"], reverse=True)
    events = write_lines(tmp_path / "e.jsonl", newest_first)
    expected = replay_json(capsys, PLAYBOOK, scenario)["scores"]["users"]
    monkeypatch.setattr(_run, "REORDER_WINDOW", 16)
    data = replay_json(capsys, PLAYBOOK, events, "--at", document["now"])
    assert data["scores"]["users"] == expected
    assert data["late"] > len(newest_first) * 0.9  # nearly all come after a newer one
    assert main(["replay", str(PLAYBOOK), str(events)]) == 0
    assert f"0 repeated, {data['late']} out of time order" in capsys.readouterr().out


def test_an_empty_history_reports_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No events: no users, no accounts, an empty report, and still exit 0."""
    (tmp_path / "empty.jsonl").write_text("")
    report = tmp_path / "r.html"
    at = ["--at", "2026-03-15T12:00:00Z"]  # without it, each run ends at its own wall clock
    data = replay_json(capsys, PLAYBOOK, tmp_path / "empty.jsonl", "--report", report, *at)
    assert (data["events"], data["users"], data["accounts"]) == (0, 0, 0)
    assert data["tables"] == [{"model": "playbook", "rules": "playbook.toml"}]
    assert "<svg" not in report.read_text()


def test_repeats_and_invalid_messages_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A repeated messageId is folded once; a message without identity is skipped."""
    once = track("a", "core_workflow_completed", "2026-03-01T00:00:00Z") | {"messageId": "m1"}
    events = write_lines(
        tmp_path / "e.jsonl",
        [once, once, {"type": "track", "event": "x", "timestamp": "2026-03-01T00:00:01Z"}],
    )
    assert main(["replay", str(PLAYBOOK), str(events)]) == 0
    assert "skipped 1 invalid, 1 repeated, 0 out of time order" in capsys.readouterr().out


def test_every_runs_on_to_the_files_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario's now after its last event: tiers still counted each week up to it."""
    events = tmp_path / "e.json"
    messages = [
        track("a", "core_workflow_completed", "2026-03-01T10:00:00Z"),
        track("a", "checkout_started", "2026-03-01T11:00:00Z"),
    ]
    events.write_text(json.dumps({"now": "2026-03-20T00:00:00Z", "events": messages}))
    timeline = replay_json(capsys, PLAYBOOK, events, "--every", "7d")["timeline"]
    assert [p["at"][:10] for p in timeline] == [
        "2026-03-05",
        "2026-03-12",
        "2026-03-19",
        "2026-03-20",
    ]
    assert [p["tiers"]["warm"] for p in timeline] == [1, 0, 0, 0]  # x0.5 after a week idle
    assert [p["changed"] for p in timeline] == [0, 1, 0, 0]
    with pytest.raises(SystemExit):
        main(
            ["replay", str(PLAYBOOK), str(events), "--every", "7d", "--at", "2026-03-20T00:00:00Z"]
        )
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_bad_now_in_the_events_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario file whose 'now' is no instant fails with that value named."""
    events = tmp_path / "e.json"
    events.write_text(json.dumps({"now": "someday", "events": []}))
    assert main(["replay", str(PLAYBOOK), str(events)]) == 2
    assert "the events' 'now' 'someday' is not an ISO-8601 instant" in capsys.readouterr().err


def test_watched_users_who_move_and_converted_members(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A converter who moves accounts is followed; an unconverted account counts its members."""
    events = [
        group("c", "old", "2026-03-01T00:00:00Z"),
        group("c", "old", "2026-03-01T00:30:00Z"),
        track("c", "core_workflow_completed", "2026-03-01T01:00:00Z"),
        group("c", "new", "2026-03-02T00:00:00Z"),
        group("d", "new", "2026-03-02T00:00:00Z"),
        track("d", "core_workflow_completed", "2026-03-02T01:00:00Z"),
        track("d", "checkout_started", "2026-03-02T02:00:00Z"),
        track("c", "demo_requested", "2026-03-02T03:00:00Z"),
    ]
    history = write_lines(tmp_path / "e.jsonl", events)
    outcomes = tmp_path / "o.csv"
    outcomes.write_text(
        "user,account,time\nc,,2026-03-03T00:00:00Z\n,old,2026-03-03T00:00:00Z\n"
        "d,,2026-03-04T00:00:00Z\n"
    )
    data = replay_json(capsys, PLAYBOOK, history, "--outcomes", outcomes)
    users, accounts = data["scores"]["users"], data["scores"]["accounts"]
    assert users["c"]["score"] == 30.0  # demo before the conversion; team of two
    assert accounts["old"]["score"] == 0.0  # c left before old converted
    assert accounts["new"] == {
        "score": 40.0,
        "tier": "warm",
        "at": "2026-03-02T03:00:00Z",
        "converted": None,
    }


def test_an_empty_interval_is_wide_open() -> None:
    """No subjects: the interval says nothing is known (0 to 1)."""
    assert wilson(0, 0) == (0.0, 1.0)
