"""Rules: growth teams' scoring models, written as data and compiled once.

A rules file (TOML, or the same schema as JSON) defines named models: an
activation gate, signals with points, a multiplier, tiers and routing, and an
optional account roll-up (PQA). Expressions use pqlsdk's own small language:
no ``eval``, no attribute access, bounded in size and depth. ``load`` and
``loads`` compile everything up front and raise ``RulesError`` with file, line
and column on any mistake.
"""

from __future__ import annotations

from .._exceptions import RulesError
from ._loader import MAX_RULES_BYTES, load, loads
from ._model import PQA, Model, Route, Rules, Signal

__all__ = [
    "MAX_RULES_BYTES",
    "PQA",
    "Model",
    "Route",
    "Rules",
    "RulesError",
    "Signal",
    "load",
    "loads",
]
