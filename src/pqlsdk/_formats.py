"""What a history path holds, told by its first bytes (and its name where bytes cannot tell).

``pqlsdk score`` takes JSON (Lines, a document, gzip of either), which both
engines read, and Parquet, CSV, DuckDB and SQLite files or a folder of Parquet
files, which only the duckdb engine reads. The command line asks here first so
that the python engine can refuse what it cannot read with an error naming the
engine that can, without loading the ``warehouse`` extra to find out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from ._exceptions import ConfigError

__all__ = ["PYTHON_READS", "Format", "auto_engine", "python_reads", "sniff"]

Format = Literal["json", "parquet", "csv", "duckdb", "sqlite", "folder"]

PYTHON_READS: Final = frozenset({"json"})
"""What the in-process engine reads: every other format needs ``--engine duckdb``."""

_NAMED: Final[dict[str, Format]] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".duckdb": "duckdb",
    ".ddb": "duckdb",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}
"""Formats by name, for files too short to hold their magic number (an empty CSV)."""


def sniff(path: Path) -> Format:
    """Say what ``path`` holds: its magic number first, its extension where there is none.

    A path that cannot be opened is ``json``: the reader then says why it
    cannot read it, in the words it always used.
    """
    if path.is_dir():
        return "folder"
    try:
        with path.open("rb") as raw:
            head = raw.read(16)
    except OSError:
        return "json"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head[8:12] == b"DUCK":  # DuckDB's header: a checksum, then its magic
        return "duckdb"
    name = path.name.lower().removesuffix(".gz")
    return _NAMED.get(Path(name).suffix, "json")


def python_reads(path: Path, option: str | None) -> None:
    """Refuse, naming the duckdb engine, a source (or ``option``) the python engine cannot read."""
    kind = sniff(path)
    if kind in PYTHON_READS and option is None:
        return
    what = f"{option} is" if option else f"{path} is a {kind} source:"
    raise ConfigError(
        f"{what} read by the duckdb engine only: the python engine reads JSON messages; "
        "pass --engine duckdb (needs pqlsdk[warehouse]: pip install 'pqlsdk[warehouse]')"
    )


def auto_engine(name: str) -> str:
    """Say which engine ``--engine NAME`` runs: ``auto`` is duckdb when the extra is installed.

    Every history command (``score``, ``replay``, ``moments``) chooses the same
    way, and finds the ``warehouse`` extra without importing it.
    """
    if name != "auto":
        return name
    import importlib.util  # noqa: PLC0415 - only auto asks

    found = all(importlib.util.find_spec(module) for module in ("sqlglot", "duckdb"))
    return "duckdb" if found else "python"
