"""A name that refers to nothing in the file is reported at the name, with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import check, write

RULES = """\
primary = "playbook"

[model.playbook]
tiers = { cold = 0, hot = 50 }

[model.accounts]
subject = "account"
tiers = { quiet = 0, busy = 3 }

[entitlements]
default_plan = "free"
plans = { free = ["reports"], business = ["reports", "sso"] }

[moments]
caps = [{ kinds = ["nudge"], max = 1, per = "24h" }]

[moment.nudge]
when = 'tier == "hot"'
cap = { max = 1, per = "24h" }
title = "Hello {user.first_name}, you are {tier}"
"""


def first_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str) -> str:
    assert old in RULES
    path = write(tmp_path, RULES.replace(old, new, 1))
    checked = check(path, capsys)
    assert checked.code == 1
    return checked.first_line.removeprefix(f"{path}:")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'primary = "playbook"',
            'primary = "playbok"',
            "1:11: primary model 'playbok' is not defined; did you mean 'playbook'?",
        ),
        (
            'default_plan = "free"',
            'default_plan = "fre"',
            "11:16: default plan 'fre' is not one of the plans; did you mean 'free'?",
        ),
        (
            'kinds = ["nudge"]',
            'kinds = ["nudg"]',
            "15:20: cap names unknown moment 'nudg'; did you mean 'nudge'?",
        ),
        (
            "[moments]\n",
            '[moments]\nmodel = "accounts"\n',
            "15:9: moments model 'accounts' is not a user model of this file",
        ),
        (
            'primary = "playbook"',
            'primary = "accounts"',
            "6:8: moments model 'accounts' is not a user model of this file",
        ),
    ],
    ids=["primary", "default-plan", "cap", "moments-model", "primary-is-an-account-model"],
)
def test_a_dangling_name_is_reported_at_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    """Each reference to a model, plan or moment is checked where it is written."""
    assert first_line(tmp_path, capsys, old, new) == expected


def test_an_unknown_placeholder_is_underlined_in_the_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The caret is under the placeholder, not at the start of the title."""
    assert first_line(tmp_path, capsys, "{tier}", "{teir}") == (
        "20:43: unknown placeholder {teir}: use {days_left}, {feature}, {plan}, {score}, "
        "{tier}, {user_id}, {user.NAME} or {account.NAME}"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('per = "24h" }]', 'per = "24" }]', "15:46: expected a duration like 24h, got '24'"),
        (
            'per = "24h" }\n',
            'per = "1y" }\n',
            "19:25: '1y' is not a duration; write one like 7d or 1.5h",
        ),
    ],
    ids=["cap-group", "moment-cap"],
)
def test_a_bad_duration_is_underlined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    """Durations are checked where they are written, in whichever table."""
    assert first_line(tmp_path, capsys, old, new) == expected


def test_a_bad_optional_table_value_is_reported_at_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value inside an optional table (``[pqa]``) is found like any other."""
    path = write(tmp_path, RULES + '\n[pqa]\nmodel = "playbook"\nmin_users = 0\n')
    assert check(path, capsys).first_line == (f"{path}:24:13: invalid rules: Expected `int` >= 1")
