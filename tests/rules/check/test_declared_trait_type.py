"""A trait declared in ``[traits]`` compared with a literal of another type is an error.

Today ``account.employees >= "lots"`` loads, and the signal is silently false for
every account: the number of employees is never greater than a string.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pqlsdk import rules

from . import check, write

RULES = """\
[traits]
account.employees = "number"
account.industry = "string"
user.admin = "bool"

[model.m]
tiers = { cold = 0, hot = 50 }

[model.m.signals]
big = { when = 'account.employees >= 100', points = 10 }
vertical = { when = 'account.industry in ["fintech", "health"]', points = 10 }
admin = { when = 'user.admin == true', points = 5 }
"""


def test_a_declared_trait_compared_with_another_type_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The literal is underlined; the message names the trait and both types."""
    path = write(tmp_path, RULES.replace(">= 100", '>= "lots"'))
    checked = check(path, capsys)
    assert (checked.code, checked.out) == (1, "")
    assert checked.err == (
        f"{path}:10:38: account.employees is declared number in [traits], "
        'but "lots" is a string\n'
        """    big = { when = 'account.employees >= "lots"', points = 10 }\n"""
        "                                         ^^^^^^\n"
    )


def test_a_list_item_of_another_type_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each item of ``in [...]`` is checked against the declared type."""
    path = write(tmp_path, RULES.replace('"health"]', "7]"))
    assert check(path, capsys).first_line == (
        f"{path}:11:54: account.industry is declared string in [traits], but 7 is a number"
    )


def test_a_literal_on_the_left_is_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``"yes" == user.admin`` is as wrong as the other way round."""
    path = write(tmp_path, RULES.replace("user.admin == true", '"yes" == user.admin'))
    assert check(path, capsys).first_line == (
        f'{path}:12:19: user.admin is declared bool in [traits], but "yes" is a string'
    )


def test_a_declared_trait_is_typed_in_any_expression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A declared string used as a number is refused by the ordinary type checks."""
    path = write(tmp_path, RULES.replace("account.employees >= 100", "account.industry * 2 > 1"))
    assert check(path, capsys).first_line == (
        f"{path}:10:17: '*' needs numbers, got string and number"
    )


def test_a_trait_declared_without_its_scope_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``employees = "number"`` under ``[traits]`` says how to write it."""
    path = write(tmp_path, RULES.replace("account.employees = ", "employees = "))
    assert check(path, capsys).first_line == (
        f"{path}:2:1: unknown key 'employees' in [traits]; "
        "declare it as user.employees or account.employees"
    )


def test_an_unknown_trait_type_lists_the_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only number, string, bool and list are types."""
    path = write(tmp_path, RULES.replace('"number"', '"int"'))
    assert check(path, capsys).first_line == (
        f"{path}:2:21: invalid rules: 'int' is not one of 'number', 'string', 'bool', 'list'"
    )


def test_the_nested_form_declares_the_same_traits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[traits.account]`` is the same table as dotted keys under ``[traits]``."""
    text = RULES.replace("[traits]\naccount.employees", "[traits.account]\nemployees").replace(
        'account.industry = "string"\nuser.admin = "bool"', 'industry = "string"'
    )
    path = write(tmp_path, text.replace(">= 100", '>= "lots"'))
    assert check(path, capsys).first_line == (
        f'{path}:9:38: account.employees is declared number in [traits], but "lots" is a string'
    )


def test_declared_traits_still_check_values_at_run_time() -> None:
    """A declaration types the rules, not the data: a string sent as employees is
    still just not >= 100, never an exception."""
    model = rules.loads(RULES).model()
    assert model.signals[0].when is not None
    evaluate = model.signals[0].when.evaluate

    class Facts:
        def __init__(self, employees: object) -> None:
            self.account_traits = {"employees": employees}

    # The stub has only what the condition reads, not all of the Facts protocol.
    facts = [Facts(value) for value in (250, "250", None)]
    assert [evaluate(f) for f in facts] == [True, False, False]  # type: ignore[arg-type]
