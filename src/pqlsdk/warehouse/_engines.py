"""Every engine the compiler writes SQL for, by sqlglot's name of its dialect."""

from __future__ import annotations

from typing import Final

from ._dialect_duckdb import DUCKDB
from ._dialect_postgres import POSTGRES
from ._dialect_spark import SPARK
from ._dialects import Dialect

__all__ = ["DIALECTS"]

DIALECTS: Final[dict[str, Dialect]] = {
    DUCKDB.name: DUCKDB,
    POSTGRES.name: POSTGRES,
    SPARK.name: SPARK,
}
"""Each engine's ``Dialect``: ``pqlsdk sql --dialect`` and the compiler's refusals name them."""
