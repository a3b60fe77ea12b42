"""Scoring where the history lives: the rules compiled to SQL (``pqlsdk[warehouse]``).

The same rules file that the client evaluates in process compiles to one SQL
query per model over a relation of Segment messages, giving every user's (and
account's) score, tier, route, gate, multiplier and reasons: identical to
``pqlsdk._scoring``, which stays the reference (the test suite checks every
scenario vector and random rules files on both). A construct the SQL cannot
compute identically is refused when the query is built, with its place in the
rules file: never a different answer.

sqlglot builds the query as a syntax tree (rules are data: names and values
enter as literals); DuckDB runs it in process over files of messages,
PostgreSQL where the collector stores them, Spark (``score_spark``, the
``spark`` extra) where a warehouse keeps them. ``pqlsdk score --engine
duckdb|postgres|spark`` and ``pqlsdk sql RULES`` use this package.
"""

from __future__ import annotations

try:
    import sqlglot  # noqa: F401 - checked here so the error names the extra
except ImportError as exc:  # pragma: no cover - the test environment has the extra
    from .._exceptions import ConfigError

    raise ConfigError(
        "pqlsdk.warehouse needs sqlglot and duckdb: pip install 'pqlsdk[warehouse]'"
    ) from exc

from ._compile import Plan, Query, compile_accounts, compile_model, compile_plan, compile_rules
from ._score import Scored, score_file
from ._spark import score_spark

__all__ = [
    "Plan",
    "Query",
    "Scored",
    "compile_accounts",
    "compile_model",
    "compile_plan",
    "compile_rules",
    "score_file",
    "score_spark",
]
