"""An unknown key is reported at the key, with the key it was probably meant to be.

Today's loader looked for the table's name anywhere in the text, so ``priorty``
under ``[moment.trial_ending]`` was reported inside a comment that happened to
say "moment", lines above.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import check, write

MOMENTS = """\
[model.m]
tiers = { cold = 0, hot = 50 }

[moments]
# Across the trial notice and the upgrade widget, at most one moment a day.
caps = [{ kinds = ["trial_ending"], max = 1, per = "24h" }]

[moment.trial_ending]
when = 'user.plan == "trial"'
priorty = 20
title = "Your trial ends soon"
"""


def test_an_unknown_key_is_reported_at_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``priorty`` on line 10 is reported at 10:1, not in the comment on line 5."""
    path = write(tmp_path, MOMENTS)
    checked = check(path, capsys)
    assert (checked.code, checked.out) == (1, "")
    assert checked.err == (
        f"{path}:10:1: unknown key 'priorty' in [moment.trial_ending]; "
        "did you mean 'priority'?\n"
        "    priorty = 20\n"
        "    ^^^^^^^\n"
    )


def test_an_unknown_key_in_an_inline_table_is_reported_at_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo inside ``{ ... }`` is found inside the braces."""
    path = write(tmp_path, MOMENTS.replace("max = 1, per", "max = 1, pre"))
    assert check(path, capsys).first_line == (
        f"{path}:6:46: unknown key 'pre' in [moments.caps[0]]; did you mean 'per'?"
    )


def test_an_unknown_top_level_key_is_reported_at_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt top-level key is named at the top level."""
    path = write(tmp_path, 'primery = "m"\n' + MOMENTS)
    assert check(path, capsys).first_line == (
        f"{path}:1:1: unknown key 'primery' at the top level; did you mean 'primary'?"
    )


def test_an_unknown_key_in_json_is_reported_at_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON rules: the quoted key is underlined, quotes included."""
    path = write(tmp_path, '{"model": {"m": {"tiers": {"cold": 0},\n "gates": "true"}}}', "r.json")
    assert check(path, capsys).err == (
        f"{path}:2:2: unknown key 'gates' in [model.m]; did you mean 'gate'?\n"
        '     "gates": "true"}}}\n'
        "     ^^^^^^^\n"
    )
