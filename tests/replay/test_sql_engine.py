"""``pqlsdk replay --engine duckdb`` prints exactly what ``--engine python`` prints.

Every replay test's history is a parity case already (``conftest.replay_json``
runs both engines); here: every scenario vector with outcomes and ``--compare``,
``--every``, and the histories where the duckdb engine must take care (repeated
ids out of time order, conversions after the evaluation time, a reader that
stops at ``--at``) or hand over to the python engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pqlsdk.cli import main
from pqlsdk.replay import _run

from ..conftest import load_scenario, scenario_files, scenario_id
from ..test_warehouse import MODEL_FILES
from .conftest import PLAYBOOK, RULES, group, replay_json, track, write_lines
from .test_loggers import _history


def _vectors() -> list[Path]:
    return [p for p in scenario_files() if "steps" not in load_scenario(p)]


def _rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def _both(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    """Run ``pqlsdk replay`` on both engines; check they print the same; return it."""
    printed = []
    for engine in ("python", "duckdb"):
        assert main(["replay", *(str(a) for a in args), "--engine", engine]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[1] == printed[0]
    return printed[0]


def _outcomes(data: dict[str, Any], path: Path) -> Path:
    """Every other user converts at a time among the history's, an account too, and a stranger."""
    events = data["events"]
    users = sorted({m.get("userId") or m["anonymousId"] for m in events})
    times = sorted(m["timestamp"] for m in events)
    lines = ["user,account,time,value"]
    lines += [f"{u},,{times[i * 7 % len(times)]},{i * 10}" for i, u in enumerate(users[::2])]
    accounts = sorted({m["groupId"] for m in events if m["type"] == "group"})
    lines += [f",{a},{times[len(times) // 2]}," for a in accounts[:1]]
    lines.append(f"stranger,,{times[-1]},5")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("path", _vectors(), ids=scenario_id)
def test_every_vector_replays_the_same_on_both_engines(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tables, conversion, suggestions, tier changes, loggers: the same JSON and text."""
    data = load_scenario(path)
    rules = next(p for name, p in MODEL_FILES.items() if data["model"].startswith(name))
    outcomes = _outcomes(data, tmp_path / "outcomes.csv")
    args: list[str | Path] = [
        rules,
        path,
        "--outcomes",
        outcomes,
        "--compare",
        RULES / "weighted.toml",
    ]
    printed = replay_json(capsys, *args)
    assert printed["events"] == len(data["events"])


def test_every_counts_the_same_tiers_on_both_engines(capsys: pytest.CaptureFixture[str]) -> None:
    """``--every``: each instant's tiers and changes, from the messages before it; as text too."""
    path = next(p for p in _vectors() if p.name == "model1_edges.json")
    printed = replay_json(capsys, PLAYBOOK, path, "--every", "5d")
    assert len(printed["timeline"]) > 3
    assert any(point["changed"] for point in printed["timeline"])
    assert "Tiers over time" in _both(capsys, PLAYBOOK, path, "--every", "5d", "--bands", "0,50")


def test_a_repeated_id_keeps_the_first_in_time_not_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fold is in time order: of two messages with one id, the earlier one counts."""
    late = track("a", "checkout_started", "2026-03-05T00:00:00Z") | {"messageId": "m1"}
    early = track("a", "page_viewed", "2026-03-01T00:00:00Z") | {"messageId": "m1"}
    events = write_lines(
        tmp_path / "e.jsonl",
        [track("a", "core_workflow_completed", "2026-03-01T00:00:00Z"), late, early],
    )
    printed = replay_json(capsys, PLAYBOOK, events, "--at", "2026-03-10T00:00:00Z")
    assert printed["duplicates"] == 1
    assert printed["scores"]["users"]["a"]["score"] == 0  # the checkout was the repeat


def test_conversions_after_the_files_now_are_placed_as_python_places_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file whose ``now`` is before its last message: a conversion in between is placed at it."""
    messages = [
        group("a", "acme", "2026-03-01T00:00:00Z", plan="paid"),
        group("b", "acme", "2026-03-01T00:00:01Z"),
        track("a", "core_workflow_completed", "2026-03-01T00:00:02Z"),
        track("b", "checkout_started", "2026-03-02T00:00:00Z"),
        track("zed", "demo_requested", "2026-03-09T00:00:00Z"),  # nobody the converters know
    ]
    events = tmp_path / "e.json"
    events.write_text(json.dumps({"now": "2026-03-03T00:00:00Z", "events": messages}))
    outcomes = tmp_path / "o.csv"
    outcomes.write_text(
        "user,account,time\na,,2026-03-05T00:00:00Z\nb,,2026-03-20T00:00:00Z\n"
        ",acme,2026-03-04T00:00:00Z\n"
    )
    printed = replay_json(capsys, PLAYBOOK, events, "--outcomes", outcomes)
    assert printed["scores"]["users"]["a"]["at"] == "2026-03-05T00:00:00Z"
    assert printed["scores"]["users"]["b"]["at"] == "2026-03-03T00:00:00Z"


def test_refused_messages_are_counted_as_far_as_python_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--at``, the python reader stops a window past it: later refusals are not counted."""
    monkeypatch.setattr(_run, "REORDER_WINDOW", 2)
    lines = [track("a", "page_viewed", f"2026-03-0{day}T00:00:00Z") for day in range(1, 10)]
    refused = {"type": "track", "userId": "a", "timestamp": "2026-03-01T01:00:00Z"}  # no event
    for place in (7, 4, 1):  # after days 1, 3 and 6
        lines.insert(place, refused)
    events = write_lines(tmp_path / "e.jsonl", lines)
    # Stopping at day 3, the reader has read day 5 (two ahead): two refusals, not the third.
    early = replay_json(capsys, PLAYBOOK, events, "--at", "2026-03-03T00:00:00Z")
    assert sum(early["skipped"].values()) == 2
    everything = replay_json(capsys, PLAYBOOK, events, "--at", "2026-03-08T00:00:00Z")
    assert sum(everything["skipped"].values()) == 3


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_an_empty_history_ends_at_the_wall_clock(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--at`` or a file's ``now``, nothing to end at but today."""
    events = tmp_path / "empty.jsonl"
    events.write_text("")
    assert main(["replay", str(PLAYBOOK), str(events), "--json", "--engine", engine]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["events"], printed["users"], printed["at"][:2]) == (0, 0, "20")


def test_a_line_duckdb_cannot_read_is_named_by_the_python_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB gives up on the whole file; the python engine names the line."""
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(track("a", "x", "2026-03-01T00:00:00Z")) + "\n{oops\n")
    assert main(["replay", str(PLAYBOOK), str(events), "--engine", "duckdb"]) != 0
    assert "e.jsonl:2: not JSON" in capsys.readouterr().err


def test_users_under_an_account_model_are_the_python_engines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the python engine scores users under an account model: it does, for both."""
    rules = _rules(
        tmp_path,
        '[model.team]\nsubject = "account"\ntiers = { small = 0, big = 2 }\n'
        "[model.team.signals]\nbusy = { value = 'count()', points = 1 }\n",
    )
    events = write_lines(
        tmp_path / "e.jsonl",
        [group("a", "acme", "2026-03-01T00:00:00Z"), track("a", "x", "2026-03-02T00:00:00Z")],
    )
    printed = replay_json(capsys, rules, events)
    assert printed["scores"]["accounts"]["acme"]["tier"] == "small"


def test_a_rule_sql_cannot_compute_is_refused_at_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--engine duckdb compiles the rules first: an error at file:line:col, never an answer."""
    rules = _rules(
        tmp_path,
        "[model.m]\ntiers = { low = 0 }\n[model.m.signals]\n"
        "s = { value = 'user.x if user.y == 1 else days_since_last_active()', points = 1 }\n",
    )
    events = write_lines(tmp_path / "e.jsonl", [track("a", "x", "2026-03-01T00:00:00Z")])
    assert main(["replay", str(rules), str(events), "--engine", "duckdb"]) != 0
    assert f"{rules}:4:16: an 'if' that mixes a trait" in capsys.readouterr().err
    assert main(["replay", str(rules), str(events), "--engine", "python"]) == 0


def test_a_sustained_model_beside_the_replayed_one_is_scored_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One rules file holding both models: the single loggers' model comes from the same steps."""
    sustained = (RULES / "sustained.toml").read_text()
    both = _rules(
        tmp_path, PLAYBOOK.read_text() + sustained[sustained.index("[model.sustained]") :]
    )
    loggers = replay_json(capsys, both, _history(tmp_path))["single_loggers"]
    assert [(u["user"], u["sustained"]["tier"]) for u in loggers["users"]] == [("sol", "skip")]
