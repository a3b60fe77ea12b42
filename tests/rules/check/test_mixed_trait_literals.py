"""An undeclared trait compared with literals of two types is a warning.

Without a declaration pqlsdk cannot know which comparison is wrong, but one of
``account.employees >= 100`` and ``account.employees == "large"`` is false for
every account. ``pqlsdk check`` prints the warning and exits 0; a client logs
it once when it loads the rules, and a strict client refuses the rules.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk import rules

from . import check, write

RULES = """\
[model.m]
tiers = { cold = 0, hot = 50 }
routes = [{ route = "enterprise", when = 'account.employees == "large"' }]

[model.m.signals]
big = { when = 'account.employees >= 100', points = 10 }
small = { when = 'account.employees < 10.5', points = -5 }
"""
WARNING = (
    "account.employees is compared with a string at 3:64 and a number here; "
    'declare its type in [traits], e.g. account.employees = "string"'
)


def test_check_prints_the_warning_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warning is at the first literal of the second type, in file order."""
    path = write(tmp_path, RULES)
    checked = check(path, capsys)
    assert checked.code == 0
    assert checked.err == (
        f"{path}:6:38: warning: {WARNING}\n"
        """    big = { when = 'account.employees >= 100', points = 10 }\n"""
        "                                         ^^^\n"
    )
    assert checked.out == (
        f"{path}: ok: 1 model(s) (m), 2 signal(s), 0 aggregate(s), 1 warning(s)\n"
    )


def test_the_loader_lists_warnings_on_the_rules() -> None:
    """``Rules.warnings`` carries each warning with its place."""
    warning = rules.loads(RULES, name="r.toml").warnings
    assert [(w.path, w.line, w.column, w.message) for w in warning] == [("r.toml", 6, 38, WARNING)]


def test_a_declaration_turns_the_warning_into_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Declared, the wrong comparison is known: it is an error, not a warning."""
    path = write(tmp_path, '[traits]\naccount.employees = "number"\n\n' + RULES)
    checked = check(path, capsys)
    assert (checked.code, checked.first_line) == (
        1,
        f'{path}:6:64: account.employees is declared number in [traits], but "large" is a string',
    )


def test_literals_of_one_type_are_no_warning() -> None:
    """Integers and decimals are both numbers; null is how to test a missing trait."""
    text = RULES.replace('== "large"', "== null")
    assert rules.loads(text).warnings == ()


def test_a_client_logs_each_warning_once(caplog: pytest.LogCaptureFixture) -> None:
    """Client construction logs the warning to the ``pqlsdk`` logger, once."""
    loaded = rules.loads(RULES, name="r.toml")
    with caplog.at_level(logging.WARNING, logger="pqlsdk"):
        client = pqlsdk.Client(store="memory://", rules=loaded)
        client.score("u1")
        client.close()
    assert [(r.name, r.levelname, r.getMessage().split("\n")[0]) for r in caplog.records] == [
        ("pqlsdk", "WARNING", f"r.toml:6:38: warning: {WARNING}")
    ]


def test_a_strict_client_refuses_rules_with_warnings() -> None:
    """``strict=True`` (tests, CI) raises the warning as a ``RulesError``."""
    with pytest.raises(pqlsdk.RulesError) as caught:
        pqlsdk.Client(store="memory://", strict=True, rules=rules.loads(RULES, name="r.toml"))
    assert str(caught.value).split("\n")[0] == f"r.toml:6:38: {WARNING}"
