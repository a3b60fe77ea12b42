"""``pqlsdk sql --dialect``: the query printed for every engine and warehouse parses back."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from pqlsdk.cli import main

from .conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"

# The SQL engines pqlsdk runs, then the warehouses it prints a translation for.
CHECKED = ("duckdb", "postgres", "spark", "databricks")
TRANSLATED = ("snowflake", "bigquery", "clickhouse", "trino")


def _statements(capsys: pytest.CaptureFixture[str], rules: Path, dialect: str) -> list[str]:
    assert main(["sql", str(rules), "--dialect", dialect]) == 0
    out = capsys.readouterr().out
    return [text for text in out.split(";\n") if text.strip()]


@pytest.mark.parametrize("dialect", CHECKED + TRANSLATED)
def test_each_dialect_prints_sql_that_parses_back(
    dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each query (two models and the roll-up) is one statement of the dialect's SQL."""
    statements = _statements(capsys, PLAYBOOK, dialect)
    assert len(statements) == 3
    for text in statements:
        parsed = sqlglot.parse(text, read=dialect)
        assert len(parsed) == 1
        assert parsed[0] is not None
        assert parsed[0].find(sqlglot.exp.Select) is not None
    translated = statements[0].startswith("-- Translated from DuckDB's SQL")
    assert translated == (dialect in TRANSLATED)
    # Spark's and Databricks' queries are the Spark dialect's own: JSON as VARIANT.
    assert ("TRY_VARIANT_GET" in statements[0]) == (dialect in ("spark", "databricks"))
