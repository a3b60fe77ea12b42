"""``[moments] conversion`` and ``conversion_window``: the outcome the lift report measures.

Checked like every expression: a mistake prints FILE:LINE:COLUMN with a caret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pqlsdk import RulesError, rules
from pqlsdk.cli import main

HEAD = "[model.m]\ntiers = { cold = 0 }\n\n[moment.nudge]\nholdout = 50\n\n[moments]\n"
DAY = 86_400_000_000


def test_conversion_compiles_with_its_window() -> None:
    """The expression is compiled and its aggregates are kept; the window is in µs."""
    loaded = rules.loads(
        HEAD + 'conversion = \'count("subscription_started") >= 1\'\nconversion_window = "7d"\n'
    )
    assert loaded.moments is not None
    assert loaded.moments.conversion is not None
    assert loaded.moments.conversion_window == 7 * DAY
    assert {"subscription_started"} == {a.event for a in loaded.aggregates}


def test_the_window_defaults_to_fourteen_days() -> None:
    """Without ``conversion_window`` a conversion counts for 14 days after the first showing."""
    loaded = rules.loads(HEAD + "conversion = 'user.plan == \"paid\"'\n")
    assert loaded.moments is not None
    assert loaded.moments.conversion_window == 14 * DAY


@pytest.mark.parametrize(
    ("setting", "column", "message"),
    [
        ("conversion = 'cont(\"paid\") >= 1'", 15, "unknown function 'cont'"),
        ("conversion = 'count(\"paid\")'", 15, "expected a bool"),
        ('conversion_window = "2x"', 22, "'2x' is not a duration"),
    ],
    ids=["unknown-function", "not-bool", "bad-window"],
)
def test_check_points_at_a_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, column: int, message: str
) -> None:
    """``pqlsdk check`` names the file, line and column of the mistake, and exits 1."""
    path = tmp_path / "rules.toml"
    path.write_text(HEAD + setting + "\n")
    assert main(["check", str(path)]) == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"{path}:8:{column}: ")
    assert message in first


def test_a_conversion_is_checked_even_without_moment_kinds() -> None:
    """A file with ``[moments]`` but no kinds still has its conversion checked."""
    with pytest.raises(RulesError, match="unknown function"):
        rules.loads('[model.m]\ntiers = { cold = 0 }\n[moments]\nconversion = "nope() >= 1"\n')
