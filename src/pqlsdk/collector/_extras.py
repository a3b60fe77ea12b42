"""Optional dependencies: the collector's extras, imported only when they are used.

pqlsdk's core needs four packages; the collector's web stack (``collector``
extra) and its PostgreSQL driver (``postgres`` extra) are optional. Modules that
need them are imported through ``load`` so that a missing package is reported as
the extra to install, not as a bare ``ModuleNotFoundError`` from deep inside.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["load"]


def load(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` (absolute, or relative to this package); name ``extra`` if it fails."""
    try:
        return importlib.import_module(module, __package__)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the {extra!r} extra ({exc}); "
            f"install it with: pip install 'pqlsdk[{extra}]'"
        ) from exc
