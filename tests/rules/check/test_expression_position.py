"""A mistake inside an expression is underlined where it is written, however the
string is spelled: literal or basic, one line or several, escaped, CRLF, JSON."""

from __future__ import annotations

import pytest

from pqlsdk import RulesError, rules

HEAD = "[model.m]\ntiers = { cold = 0 }\n"


def where(text: str, format: str = "toml") -> tuple[int, int, str]:
    """Line, column and the underlined text of the error ``text`` raises."""
    with pytest.raises(RulesError) as caught:
        rules.loads(text, format=format)  # type: ignore[arg-type]
    error = caught.value
    width = str(error).split("\n")[-1].count("^")
    return error.line, error.column, error.text[error.column - 1 : error.column - 1 + width]


@pytest.mark.parametrize(
    ("gate", "line", "column", "underlined"),
    [
        ("'''\ncount(\"a\") >= 1 and cout(\"b\") >= 1'''", 4, 21, "cout"),
        ('"""\\\n    count(\\"a\\") >= 1 and\\tcout(\\"b\\")"""', 4, 28, "cout"),
        ('"\\u0063ount(\\"a\\") >= 1 and cout(\\"b\\") >= 1"', 3, 36, "cout"),
        ('"\\"\\U0001F600\\" == \\"x\\" and cout()"', 3, 37, "cout"),
        ("'''cout(\"a\") == '''''", 3, 11, "cout"),
        ('"""count("a") >= 1 and cout("b") >= 1"""', 3, 31, "cout"),
    ],
    ids=[
        "multi-line-literal",
        "line-ending-backslash",
        "unicode",
        "astral",
        "quotes",
        "multi-line-basic",
    ],
)
def test_an_expression_error_lands_on_the_mistake(
    gate: str, line: int, column: int, underlined: str
) -> None:
    """Escapes, continuations and closing quotes do not shift the caret."""
    assert where(f"{HEAD}gate = {gate}\n") == (line, column, underlined)


def test_crlf_line_endings_are_counted_as_one() -> None:
    """A Windows file: the caret is on the right line and column."""
    text = f"{HEAD}gate = '''\ncount(\"a\") >= 1\nand cout(\"b\") >= 1'''\n".replace("\n", "\r\n")
    assert where(text) == (5, 5, "cout")


def test_a_json_surrogate_pair_is_one_character() -> None:
    """JSON spells an emoji as two escapes; the column after it is still right."""
    text = (
        '{"model": {"m": {"tiers": {"cold": 0},\n'
        ' "gate": "\\"\\ud83d\\ude00\\" == \\"\\u00e9\\" or cout()"}}}'
    )
    assert where(text, "json") == (2, 45, "cout")


def test_an_error_in_an_array_of_tables_is_in_its_table() -> None:
    """``[[model.m.routes]]`` tables are counted: the second route's mistake is in the second."""
    text = (
        f"{HEAD}[[model.m.routes]]\nroute = 'a'\nwhen = 'score > 1'\n"
        "[[model.m.routes]]\nroute = 'b'\nwhen = 'scor > 1'\n"
    )
    assert where(text) == (8, 9, "scor")


def test_a_table_under_an_array_of_tables_belongs_to_its_last_table() -> None:
    """``[a.b]`` after ``[[a]]`` is inside the last ``a``: an unknown key is found there."""
    text = f"{HEAD}[[model.m.routes]]\nroute = 'a'\nwhen = 'true'\n[model.m.routes.extra]\nx = 1\n"
    with pytest.raises(RulesError) as caught:
        rules.loads(text)
    assert (caught.value.line, caught.value.column, caught.value.message) == (
        6,
        17,
        "unknown key 'extra' in [model.m.routes[0]]",
    )


def test_quoted_and_dotted_keys_are_followed() -> None:
    """``"model".m."signals"`` and ``"s" = {...}`` name the same places as bare keys."""
    text = (
        '"model".m."signals" . "s" = { points = 1, when = \'cout() > 1\' }\n'
        "model . 'm'.tiers = { cold = 0 }\n"
    )
    assert where(text) == (1, 51, "cout")
