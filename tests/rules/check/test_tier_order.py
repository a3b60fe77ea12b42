"""Tier thresholds must rise in the order the tiers are written.

Today ``{ cold = 0, warm = 26, hot = 91, burning = 76 }`` loads and labels a score
of 105 "hot": the thresholds are sorted, so "burning" silently ranks below "hot".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import check, write


def test_a_tier_below_the_one_before_it_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error is at the threshold that breaks the order."""
    path = write(tmp_path, "[model.m]\ntiers = { cold = 0, warm = 26, hot = 91, burning = 76 }\n")
    checked = check(path, capsys)
    assert (checked.code, checked.out) == (1, "")
    assert checked.err == (
        f"{path}:2:52: tier thresholds must rise in the order written: "
        "'burning' = 76 comes after 'hot' = 91\n"
        "    tiers = { cold = 0, warm = 26, hot = 91, burning = 76 }\n"
        "                                                       ^^\n"
    )


def test_two_tiers_with_one_threshold_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Equal thresholds would make one tier unreachable."""
    path = write(tmp_path, "[model.m]\n[model.m.tiers]\nlow = 0\nmid = 10.5\nhigh = 10.5\n")
    assert check(path, capsys).first_line == (
        f"{path}:5:8: two tiers share one threshold: 'mid' and 'high' are both 10.5"
    )
