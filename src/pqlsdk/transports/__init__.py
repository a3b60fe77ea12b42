"""How batches reach a collector: the ``Transport`` protocols and the HTTP transports.

``Batch``, ``Transport`` and ``AsyncTransport`` define the contract; any object
with a matching ``send`` and ``close`` (or ``aclose``) is a transport.
``HTTPTransport`` and ``AsyncHTTPTransport`` deliver over HTTP with httpx. They
are loaded on first access, so ``import pqlsdk.transports`` does not import
httpx: hosts that never send never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import AsyncTransport, Batch, Transport

if TYPE_CHECKING:
    from .http import AsyncHTTPTransport, HTTPTransport

__all__ = ["AsyncHTTPTransport", "AsyncTransport", "Batch", "HTTPTransport", "Transport"]

_LAZY = frozenset({"AsyncHTTPTransport", "HTTPTransport"})


def __getattr__(name: str) -> Any:
    """Load the HTTP transports (and httpx) the first time one is asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import http  # noqa: PLC0415 - deferred so that importing pqlsdk skips httpx
    except ImportError as exc:
        raise ImportError(
            f"pqlsdk.transports.{name} needs httpx, which failed to import ({exc}); "
            "reinstall pqlsdk's dependencies, e.g. pip install 'httpx>=0.27'"
        ) from exc
    return getattr(http, name)
