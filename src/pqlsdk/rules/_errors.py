"""Compile errors: pointing at the offending part of an expression, naming the nearest name.

Every refusal the compiler makes is an ``ExpressionError`` with the offset and
length of the node at fault, so the loader can turn it into file:line:col; a
misspelt name gets the closest known one as a hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ._lexer import ExpressionError
from ._parser import Keyword, Node

__all__ = ["did_you_mean"]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the candidate closest to ``word``, or ``""``."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean '{matches[0]}'?" if matches else ""


def _error(message: str, node: Node | Keyword) -> ExpressionError:
    return ExpressionError(message, node.offset, node.length)
