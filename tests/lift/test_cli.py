"""``pqlsdk moments RULES SOURCE``: the report on a history file, as JSON or text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqlsdk.cli import main

from .cohort import RULES, Truth, build

FIELDS = {
    "shown",
    "held_out",
    "clicked",
    "dismissed",
    "converted_shown",
    "converted_held_out",
    "rate_shown",
    "rate_held_out",
    "lift",
    "lift_low",
    "lift_high",
    "verdict",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Truth]:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "rules.toml").write_text(RULES)
    history = folder / "history.jsonl"
    return folder / "rules.toml", history, build(history, users=120)


def test_json_has_exactly_the_issues_shape(
    files: tuple[Path, Path, Truth], capsys: pytest.CaptureFixture[str]
) -> None:
    """``{"window_days": 7, "moments": {KIND: {...twelve fields...}}}`` and nothing else."""
    rules, history, truth = files
    assert main(["moments", str(rules), str(history), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert set(found) == {"window_days", "moments"}
    assert found["window_days"] == 7
    assert list(found["moments"]) == ["nudge", "wall"]
    assert all(set(kind) == FIELDS for kind in found["moments"].values())
    assert found["moments"]["nudge"]["shown"] == len(truth.arms["nudge"]["shown"])


def test_text_says_the_verdict_and_the_interval(
    files: tuple[Path, Path, Truth], capsys: pytest.CaptureFixture[str]
) -> None:
    """A paragraph per kind: verdict, funnel, both arms' rates, lift with its interval."""
    rules, history, _ = files
    assert main(["moments", str(rules), str(history)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("moments as of 2026-03-11T")
    assert "\nnudge: " in out
    assert "95 % interval " in out
    assert "  converted: shown " in out


def test_now_reads_the_history_up_to_it(
    files: tuple[Path, Path, Truth], capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the conversions (day 2), nobody has converted yet."""
    rules, history, _ = files
    assert (
        main(["moments", str(rules), str(history), "--now", "2026-03-03T00:00:00Z", "--json"]) == 0
    )
    found = json.loads(capsys.readouterr().out)["moments"]["nudge"]
    assert (found["converted_shown"], found["converted_held_out"]) == (0, 0)


def test_an_empty_history_says_there_is_nothing_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No messages: every arm empty, no lift, and the verdict asks for users."""
    (tmp_path / "rules.toml").write_text(RULES)
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["moments", str(tmp_path / "rules.toml"), str(tmp_path / "empty.jsonl")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("moments as of -;")
    assert "lift: needs users in both arms" in out
    assert "converted: shown 0/0, held out 0/0" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--now", "yesterday"], "--now 'yesterday' is not an ISO-8601 instant"),
        (["sqlite:///missing.db"], "no collector storage at 'missing.db'"),
        (["missing.jsonl"], "cannot read events 'missing.jsonl'"),
    ],
)
def test_mistakes_are_errors_that_say_what(
    files: tuple[Path, Path, Truth],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    """A bad --now, a storage URL naming no file (never created empty), no file: exit 2."""
    rules, history, _ = files
    source = [str(history)] if args[0].startswith("--") else []
    assert main(["moments", str(rules), *source, *args]) == 2
    assert message in capsys.readouterr().err


def test_refused_lines_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A line pqlsdk refuses is skipped and named on stderr, as pqlsdk score does."""
    (tmp_path / "rules.toml").write_text(RULES)
    (tmp_path / "h.jsonl").write_text('{"type": "track", "userId": "u"}\n')
    assert main(["moments", str(tmp_path / "rules.toml"), str(tmp_path / "h.jsonl")]) == 0
    assert "skipped 1 invalid message(s)" in capsys.readouterr().err
