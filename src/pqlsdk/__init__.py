"""pqlsdk: product-qualified lead scoring and in-app moments, in-process.

Importing pqlsdk does nothing but define names: no thread, socket, file or
environment read, and httpx is not imported until delivery needs it.
"""

from __future__ import annotations

from ._client import DEFAULT_STORE, Client, ClosedError
from ._clock import Clock, FixedClock, SystemClock
from ._exceptions import (
    ConfigError,
    InvalidMessageError,
    MessageTooLargeError,
    MissingIdentityError,
    NaiveTimestampError,
    NotJSONError,
    PQLError,
    SchemaVersionError,
    StoreError,
)
from ._stats import Stats
from ._version import __version__
from .stores import AccountState, UserState

__all__ = [
    "DEFAULT_STORE",
    "AccountState",
    "Client",
    "Clock",
    "ClosedError",
    "ConfigError",
    "FixedClock",
    "InvalidMessageError",
    "MessageTooLargeError",
    "MissingIdentityError",
    "NaiveTimestampError",
    "NotJSONError",
    "PQLError",
    "SchemaVersionError",
    "Stats",
    "StoreError",
    "SystemClock",
    "UserState",
    "__version__",
]
