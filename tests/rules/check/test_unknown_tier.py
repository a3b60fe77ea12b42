"""A tier name that no tier has is an error, with the tiers the model does have.

Today ``tier in ["hot", "burnin"]`` loads, and the upgrade widget is silently
never shown to burning users.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import check, write

RULES = """\
[model.m]
tiers = { cold = 0, warm = 26, hot = 51, burning = 76 }
routes = [{ route = "sales", when = 'tier == "hot"' }]

[moment.upgrade]
when = 'tier in ["hot", "burnin"]'
title = "Ready for more?"
"""


def test_an_unknown_tier_in_a_moment_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The misspelt tier is underlined, with a suggestion and the model's tiers."""
    path = write(tmp_path, RULES)
    checked = check(path, capsys)
    assert (checked.code, checked.out) == (1, "")
    assert checked.err == (
        f"{path}:6:25: unknown tier 'burnin' (model 'm' has cold, warm, hot, burning); "
        "did you mean 'burning'?\n"
        """    when = 'tier in ["hot", "burnin"]'\n"""
        "                            ^^^^^^^^\n"
    )


def test_an_unknown_tier_in_a_route_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tier == "..."`` in a route is checked against that model's tiers."""
    path = write(tmp_path, RULES.replace('tier == "hot"', 'tier == "HOT"'))
    assert check(path, capsys).first_line == (
        f"{path}:3:46: unknown tier 'HOT' (model 'm' has cold, warm, hot, burning)"
    )


def test_an_unknown_tier_for_the_moments_model_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moments see the tiers of ``[moments] model``, not of the first model."""
    text = RULES.replace('"hot", "burnin"', '"stuck"').replace(
        "[moment.upgrade]",
        '[model.help]\ntiers = { fine = 0, stuck = 1 }\n\n[moments]\nmodel = "m"\n\n'
        "[moment.upgrade]",
    )
    path = write(tmp_path, text)
    assert check(path, capsys).first_line == (
        f"{path}:12:18: unknown tier 'stuck' (model 'm' has cold, warm, hot, burning)"
    )


def test_ordering_tiers_by_name_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tier >= "hot"`` compares names alphabetically: the fix is spelled out."""
    path = write(tmp_path, RULES.replace('tier == "hot"', 'tier >= "hot"'))
    assert check(path, capsys).first_line == (
        f"{path}:3:46: tier names would compare alphabetically, not by rank; "
        'list them: tier in ["hot", "burning"]'
    )


def test_a_pqa_tier_that_does_not_exist_suggests_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[pqa] tier`` gets the same suggestion, at its value."""
    path = write(
        tmp_path, RULES.replace("burnin", "burning") + '[pqa]\nmodel = "m"\ntier = "hto"\n'
    )
    assert check(path, capsys).first_line == (
        f"{path}:10:8: pqa tier 'hto' is not a tier of 'm'; did you mean 'hot'?"
    )
