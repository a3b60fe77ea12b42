"""A value of the wrong type is reported at that value, not at an earlier look-alike.

Today's loader searched the text for each key of msgspec's path in turn; the path
says ``signals[...]`` without the signal's name, so ``points = "forty"`` on the
fifth signal was reported on the first signal's line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import check, write

SIGNALS = """\
[model.m]
tiers = { cold = 0, hot = 50 }
routes = [
    { route = "sales", when = 'score >= 50' },
    { route = "no spaces", when = 'score >= 10' },
]

[model.m.signals]
limit_hit = { when = 'count("limit_hit") >= 1', points = 30 }
premium = { when = 'count("premium") >= 1', points = 20 }
checkout = { when = 'count("checkout_started") >= 1', points = "forty" }
"""


def test_a_wrong_value_is_reported_at_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``points = "forty"`` on line 11 is reported at line 11, under "forty"."""
    path = write(tmp_path, SIGNALS.replace("no spaces", "nurture"))
    checked = check(path, capsys)
    assert (checked.code, checked.out) == (1, "")
    assert checked.err == (
        f"{path}:11:64: invalid rules: Expected `float`, got `str`\n"
        """    checkout = { when = 'count("checkout_started") >= 1', points = "forty" }\n"""
        "                                                                   ^^^^^^^\n"
    )


def test_a_wrong_value_in_an_array_is_reported_at_its_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second route's bad name is reported there, not at the first route."""
    path = write(tmp_path, SIGNALS)
    checked = check(path, capsys)
    assert checked.err.split("\n")[:3] == [
        f"{path}:5:15: invalid rules: Expected `str` matching regex "
        "'^[A-Za-z_][A-Za-z0-9_\\\\-]*$'",
        """        { route = "no spaces", when = 'score >= 10' },""",
        "                  ^^^^^^^^^^^",
    ]


def test_a_wrong_value_in_json_is_reported_at_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules served as JSON get the same precision."""
    text = (
        '{"model": {"m": {"tiers": {"cold": 0},\n'
        '  "signals": {"a": {"when": "true", "points": 1},\n'
        '              "b": {"when": "true", "points": "forty"}}}}}\n'
    )
    path = write(tmp_path, text, name="rules.json")
    assert check(path, capsys).first_line == (
        f"{path}:3:47: invalid rules: Expected `float`, got `str`"
    )


def test_a_bad_table_key_is_reported_at_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tier name that is not a name is reported where it is written."""
    path = write(tmp_path, "[model.m]\ntiers = { cold = 0, 'very hot' = 50 }\n")
    assert check(path, capsys).first_line == (
        f"{path}:2:21: invalid rules: Expected `str` matching regex '^[A-Za-z_][A-Za-z0-9_\\\\-]*$'"
    )


def test_a_missing_key_is_reported_at_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model without tiers is reported at its header, naming the key it needs."""
    path = write(
        tmp_path, "# tiers go here\n[model.a]\ntiers = { x = 0 }\n[model.b]\ngate = 'true'\n"
    )
    assert check(path, capsys).first_line == (f"{path}:4:8: [model.b] needs the key 'tiers'")
