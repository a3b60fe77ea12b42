"""Replay folds a history with the client's engine: the same scores as ``pqlsdk score``."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from pqlsdk.cli import main
from pqlsdk.replay import _run

from .conftest import PLAYBOOK, SCENARIOS, replay_json, track, write_lines

ADDITIVE = SCENARIOS / "model1_additive.json"


def test_replay_gives_exactly_the_scores_of_pqlsdk_score(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every user of the model 1 scenario, read in place, scores as ``pqlsdk score`` says."""
    assert main(["score", str(PLAYBOOK), str(ADDITIVE), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["users"]
    replayed = replay_json(capsys, PLAYBOOK, ADDITIVE)
    assert replayed["at"] == "2026-03-15T12:00:00Z"  # the scenario's own now
    assert {u: (s["score"], s["tier"]) for u, s in replayed["scores"]["users"].items()} == {
        u: (s["score"], s["tier"]) for u, s in scored.items()
    }
    expected = json.loads(ADDITIVE.read_text())["expect"]["users"]
    assert {u: s["score"] for u, s in replayed["scores"]["users"].items()} == pytest.approx(
        {u: e["score"] for u, e in expected.items()}
    )


def test_gzipped_json_lines_out_of_order_fold_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Newest-first JSON Lines in gzip give the same scores, the disorder counted as late."""
    document = json.loads(ADDITIVE.read_text())
    newest_first = sorted(document["events"], key=lambda m: m["timestamp"], reverse=True)
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress("".join(json.dumps(m) + "\n" for m in newest_first).encode()))
    at = ["--at", document["now"]]
    in_place = replay_json(capsys, PLAYBOOK, ADDITIVE, *at)
    zipped = replay_json(capsys, PLAYBOOK, packed, *at)
    assert zipped["scores"] == in_place["scores"]
    assert zipped["late"] == 0  # the reorder window holds a file this small


def test_at_stops_the_fold_and_scores_at_that_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --at, later events are not folded; without it a file ends at its last event."""
    events = write_lines(
        tmp_path / "e.jsonl",
        [
            track("a", "core_workflow_completed", "2026-03-01T00:00:00Z"),
            track("a", "checkout_started", "2026-03-03T00:00:00Z"),
        ],
    )
    early = replay_json(capsys, PLAYBOOK, events, "--at", "2026-03-02T00:00:00Z")
    assert early["scores"]["users"]["a"]["score"] == 0.0  # activated, nothing earned yet
    assert early["events"] == 1
    late = replay_json(capsys, PLAYBOOK, events)
    assert late["at"] == "2026-03-03T00:00:00Z"
    assert late["scores"]["users"]["a"]["tier"] == "warm"


def test_the_table_counts_users_and_accounts_per_tier_and_band(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without outcomes the terminal shows users and accounts per tier and per score band."""
    assert main(["replay", str(PLAYBOOK), str(ADDITIVE), "--bands", "0,26,51,76"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Replayed 735 events: 43 users, 20 accounts")
    tiers = out.split("by tier (playbook)")[1].splitlines()
    assert tiers[0].split() == ["users", "accounts"]
    assert [line.split()[0] for line in tiers[1:5]] == ["cold", "warm", "hot", "burning"]
    bands = out.split("by band (playbook)")[1].splitlines()[1:5]
    assert [line.split()[0] for line in bands] == ["0-26", "26-51", "51-76", "76+"]
    counts = [line.split()[1:] for line in tiers[1:5]]
    assert [line.split()[1:] for line in bands] == counts  # the same edges as the tiers
    assert sum(int(users) for users, _ in counts) == 43
    assert sum(int(accounts) for _, accounts in counts) == 20


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A terminal sees a progress line; a pipe or file sees nothing on stderr."""
    events = write_lines(
        tmp_path / "e.jsonl",
        [track(f"u{i}", "page_viewed", f"2026-03-01T00:00:{i % 60:02d}Z") for i in range(40)],
    )
    monkeypatch.setattr(_run, "_PROGRESS_EVERY", 8)
    monkeypatch.setattr(_run, "_PROGRESS_SECONDS", 0.0)
    python = ["replay", str(PLAYBOOK), str(events), "--json", "--engine", "python"]
    assert main(python) == 0
    assert capsys.readouterr().err == ""
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(python) == 0
    assert "\rreplaying: 8 events" in terminal.getvalue()
    assert terminal.getvalue().endswith("replayed 40 events" + " " * 40 + "\n")
