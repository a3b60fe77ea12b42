"""Types: an expression's static type, and the Python values each admits at run time.

The compiler checks operands against the static ``Type``; the closures it builds
check run-time values against the exact Python types each kind stands for, so
``true`` is never equal to ``1`` and a number never orders against a string.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from .._aggregates import Scalar

__all__ = ["Type"]


class Type(enum.Enum):
    """The static type of an expression; ``ANY`` (a trait) checks against every type."""

    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"
    DURATION = "duration"
    LIST = "list"
    ANY = "any"
    NULL = "null"


_NUMBERS: Final = frozenset({int, float})
_SEQUENCES: Final = frozenset({list, tuple})
# What run-time values ``==`` (and ``in``) and ``<`` accept, keyed by exact Python
# type: bool is its own kind, so true is never equal to 1.
_EQUALITY_KINDS: Final[Mapping[type, Type]] = MappingProxyType(
    {int: Type.NUMBER, float: Type.NUMBER, str: Type.STRING, bool: Type.BOOL}
)
_ORDER_KINDS: Final[Mapping[type, Type]] = MappingProxyType(
    {int: Type.NUMBER, float: Type.NUMBER, str: Type.STRING}
)
_PYTHON_TYPES: Final[Mapping[Type, frozenset[type]]] = MappingProxyType(
    {Type.NUMBER: _NUMBERS, Type.STRING: frozenset({str}), Type.BOOL: frozenset({bool})}
)
_NUMERIC: Final = frozenset({Type.NUMBER, Type.ANY})
_BOOLEAN: Final = frozenset({Type.BOOL, Type.ANY})


def _type_of(value: Scalar) -> Type:
    if value is None:
        return Type.NULL
    if isinstance(value, bool):
        return Type.BOOL
    if isinstance(value, str):
        return Type.STRING
    return Type.NUMBER


def _unify(then: Type, otherwise: Type) -> Type | None:
    """Return the type of ``a if c else b``: null fits either side, any fits all."""
    if then is otherwise or otherwise is Type.NULL:
        return then
    if then is Type.NULL:
        return otherwise
    if Type.ANY in (then, otherwise):
        return Type.ANY
    return None
