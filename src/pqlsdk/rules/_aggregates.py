"""Temporary re-export while the expression compiler is written; see ``pqlsdk._aggregates``."""

from .._aggregates import Aggregate, Scalar, Scope

__all__ = ["Aggregate", "Scalar", "Scope"]
