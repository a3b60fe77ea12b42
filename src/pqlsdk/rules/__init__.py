"""Rules: growth teams' scoring models, written as data and compiled once.

A rules file (TOML, or the same schema as JSON) defines named models: an
activation gate, signals with points, a multiplier, tiers and routing, and an
optional account roll-up (PQA). Expressions use pqlsdk's own small language:
no ``eval``, no attribute access, bounded in size and depth. ``load`` and
``loads`` compile everything up front and raise ``RulesError`` with file, line
and column on any mistake; what loads but looks wrong is on ``Rules.warnings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from .._exceptions import RulesError
from ._model import PQA, Model, Route, Rules, RulesWarning, Signal

if TYPE_CHECKING:
    from ._loader import Format

MAX_RULES_BYTES: Final = 1_000_000
"""Largest rules file accepted, in bytes: a wrong path (a log, a dump) fails fast.

Added in version 0.1.0.
"""


# The loader (TOML, the expression lexer, parser and compiler) is imported on the
# first load: ``import pqlsdk`` stays cheap for hosts that have not loaded rules yet.


def load(path: str | Path) -> Rules:
    """Load and compile the rules file at ``path`` (``.json`` is JSON, else TOML).

    Added in version 0.1.0.
    """
    from ._loader import load  # noqa: PLC0415 - see above

    return load(path)


def loads(text: str | bytes, *, name: str = "<rules>", format: Format = "toml") -> Rules:
    """Load and compile rules from ``text``; ``name`` is used in error messages.

    Added in version 0.1.0.
    """
    from ._loader import loads  # noqa: PLC0415 - see above

    return loads(text, name=name, format=format)


__all__ = [
    "MAX_RULES_BYTES",
    "PQA",
    "Model",
    "Route",
    "Rules",
    "RulesError",
    "RulesWarning",
    "Signal",
    "load",
    "loads",
]
