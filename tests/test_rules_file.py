"""Rules files: TOML or JSON, and one precise error (file, line, column, caret) per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk import rules
from pqlsdk.cli import main

from .conftest import ROOT

GOOD = """\
[model.m]
gate = 'count("core_workflow_completed") >= 1'
tiers = { cold = 0, hot = 50 }

[model.m.signals]
limit = { when = 'count("limit_hit") >= 1', points = 50 }
"""


def error_for(tmp_path: Path, text: str, name: str = "rules.toml") -> pqlsdk.RulesError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(pqlsdk.RulesError) as caught:
        rules.load(path)
    return caught.value


def test_a_good_file_compiles_and_lists_its_aggregates(tmp_path: Path) -> None:
    """A valid file loads into models with compiled expressions and their aggregates."""
    (tmp_path / "rules.toml").write_text(GOOD)
    loaded = rules.load(tmp_path / "rules.toml")
    assert (loaded.primary, list(loaded.models), loaded.origin) == (
        "m",
        ["m"],
        str(tmp_path / "rules.toml"),
    )
    assert sorted(a.key for a in loaded.aggregates) == [
        "user:count:core_workflow_completed:::",
        "user:count:limit_hit:::",
    ]


def test_json_rules_use_the_same_schema(tmp_path: Path) -> None:
    """The same rules as JSON (e.g. served by a rules server) load identically."""
    (tmp_path / "rules.toml").write_text(GOOD)
    as_toml = rules.load(tmp_path / "rules.toml")
    data = {
        "model": {
            "m": {
                "gate": 'count("core_workflow_completed") >= 1',
                "tiers": {"cold": 0, "hot": 50},
                "signals": {"limit": {"when": 'count("limit_hit") >= 1', "points": 50}},
            }
        }
    }
    (tmp_path / "rules.json").write_text(json.dumps(data))
    as_json = rules.load(tmp_path / "rules.json")
    assert as_json.aggregates == as_toml.aggregates
    assert rules.loads(json.dumps(data), format="json").model("m").tiers == (
        (0, "cold"),
        (50, "hot"),
    )


def test_toml_syntax_error_points_at_line_and_column(tmp_path: Path) -> None:
    """A TOML syntax error names the file, line and column."""
    error = error_for(tmp_path, "[model.m]\ntiers = { cold = 0, hot = }\n")
    assert (error.line, error.column) == (2, 27)
    assert str(error).startswith(f"{tmp_path / 'rules.toml'}:2:27: TOML syntax error: ")
    assert "tiers = { cold = 0, hot = }" in str(error)


def test_json_syntax_error_points_at_line_and_column(tmp_path: Path) -> None:
    """A JSON syntax error names the file, line and column."""
    error = error_for(tmp_path, '{\n  "model": {,}\n}', name="rules.json")
    assert (error.line, error.column, error.message) == (
        2,
        13,
        "JSON syntax error: Expecting property name enclosed in double quotes",
    )


def test_unknown_function_gets_a_caret_under_it(tmp_path: Path) -> None:
    """An unknown function is reported where it is written, with a suggestion."""
    error = error_for(
        tmp_path, GOOD.replace('when = \'count("limit_hit")', 'when = \'cout("limit_hit")')
    )
    assert (error.line, error.column) == (6, 19)
    assert str(error) == (
        f"{tmp_path / 'rules.toml'}:6:19: unknown function 'cout'; did you mean 'count'?\n"
        "    limit = { when = 'cout(\"limit_hit\") >= 1', points = 50 }\n"
        "                      ^^^^"
    )


def test_wrong_type_is_reported_where_it_is(tmp_path: Path) -> None:
    """Comparing a number with a string fails at load, pointing at the comparison."""
    error = error_for(tmp_path, GOOD.replace(">= 1', points", '>= "1"\', points'))
    assert error.line == 6
    assert "cannot compare number with string" in error.message
    assert error.text.startswith("limit = ")


def test_a_when_that_is_not_boolean_is_refused(tmp_path: Path) -> None:
    """A signal's ``when`` must be a condition, not a number."""
    error = error_for(
        tmp_path,
        GOOD.replace(
            "gate = 'count(\"core_workflow_completed\") >= 1'",
            "gate = 'count(\"core_workflow_completed\")'",
        ),
    )
    assert (error.line, error.column) == (2, 9)
    assert "expected a bool expression, got number" in error.message


def test_too_deep_an_expression_is_refused(tmp_path: Path) -> None:
    """Nesting is bounded: 40 parentheses fail with a depth error, not a crash."""
    deep = "(" * 40 + "1" + ")" * 40
    error = error_for(tmp_path, GOOD.replace('count("limit_hit") >= 1', f"{deep} >= 1"))
    assert error.line == 6
    assert "deeper than 32 levels" in error.message


def test_json_expression_errors_map_through_escapes(tmp_path: Path) -> None:
    """In JSON the expression is escaped; the column still lands on the mistake."""
    text = '{"model": {"m": {"tiers": {"cold": 0},\n "gate": "cout(\\"x\\") >= 1"}}}'
    error = error_for(tmp_path, text, name="rules.json")
    assert (error.line, error.column) == (2, 11)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[model.m]\ntiers = { cold = 'zero' }\n", 2, "invalid rules: Expected `float`, got `str`"),
        (
            "[model.m]\ntiers = { cold = 0 }\ncolour = 'red'\n",
            3,
            "unknown key 'colour' in [model.m]",
        ),
        ("[model.m]\ntiers = { cold = 0, hot = 0 }\n", 2, "two tiers share one threshold"),
        (
            "[model.m]\ntiers = { cold = 0 }\nroutes = [{ route = 'no spaces', when = 'true' }]\n",
            3,
            "invalid rules: Expected `str` matching regex",
        ),
        ("primary = 'x'\n[model.m]\ntiers = { cold = 0 }\n", 1, "primary model 'x' is not defined"),
        (
            "[model.m]\ntiers = { cold = 0 }\n[model.m.signals]\ns = { points = 1 }\n",
            4,
            "signal 's' needs exactly one of 'when' or 'value'",
        ),
        (
            "[model.m]\ntiers = { cold = 0 }\n[pqa]\nmodel = 'n'\n",
            4,
            "pqa model 'n' is not defined",
        ),
        (
            "[model.m]\ntiers = { cold = 0 }\n[pqa]\nmodel = 'm'\ntier = 'hot'\n",
            5,
            "pqa tier 'hot' is not a tier of 'm'",
        ),
    ],
)
def test_schema_mistakes_name_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    """Wrong types, unknown keys and dangling names are reported at their line."""
    error = error_for(tmp_path, text)
    assert error.message.startswith(message)
    assert error.line == line


def test_unreadable_and_oversized_files_are_rules_errors(tmp_path: Path) -> None:
    """A missing file, a binary file or a huge file fail loudly with the path."""
    with pytest.raises(pqlsdk.RulesError, match=r"missing\.toml: no such file"):
        rules.load(tmp_path / "missing.toml")
    with pytest.raises(pqlsdk.RulesError, match="not UTF-8"):
        rules.loads(b"\xff\xfe")
    with pytest.raises(pqlsdk.RulesError, match="over 1000000 bytes"):
        rules.loads("#" * 1_000_001)


def test_rules_errors_are_config_errors() -> None:
    """Broken rules are a setup mistake: a ConfigError, hence a ValueError."""
    assert issubclass(pqlsdk.RulesError, pqlsdk.ConfigError)
    with pytest.raises(ValueError, match="<rules>:1:9"):
        rules.loads("model = 3")


def test_unknown_model_name_lists_the_known_ones() -> None:
    """Asking for a model the file does not define names the ones it does."""
    loaded = rules.loads(GOOD)
    with pytest.raises(pqlsdk.ConfigError, match=r"no model 'x' in <rules> \(models: m\)"):
        loaded.model("x")


@pytest.mark.parametrize("name", ["playbook.toml", "weighted.toml", "sustained.toml"])
def test_example_rules_pass_check(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``pqlsdk check`` accepts every shipped example."""
    assert main(["check", str(ROOT / "examples" / "rules" / name)]) == 0
    assert ": ok: " in capsys.readouterr().out


def test_check_prints_errors_like_a_compiler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken file exits 1 with file:line:col and a caret on stderr."""
    (tmp_path / "bad.toml").write_text(
        GOOD.replace('count("limit_hit")', 'count("limit_hit", within=7)')
    )
    assert main(["check", str(tmp_path / "bad.toml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'bad.toml'}:6:")
    assert "within= needs a duration" in err
    assert err.rstrip().endswith("^")
