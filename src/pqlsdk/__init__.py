"""pqlsdk: product-qualified lead scoring and in-app moments, in-process.

Importing pqlsdk does nothing but define names: no thread, socket, file or
environment read, and httpx is not imported until delivery needs it.
"""

from __future__ import annotations

from ._client import DEFAULT_STORE, Client, ClosedError
from ._clock import Clock, FixedClock, SystemClock
from ._delivery._batcher import Delivery, FlushResult
from ._exceptions import (
    BatchRejectedError,
    ConfigError,
    DeliveryError,
    InvalidIdError,
    InvalidMessageError,
    MessageTooLargeError,
    MissingIdentityError,
    NaiveTimestampError,
    NotJSONError,
    PQLError,
    RetryableDeliveryError,
    RulesError,
    SchemaVersionError,
    StoreError,
)
from ._gating import Gate
from ._moments import Moment
from ._scoring import AccountScore, Reason, Score
from ._stats import Stats
from ._tiers import TierChange
from ._version import __version__
from .rules import Rules
from .stores import AccountState, UserState

__all__ = [
    "DEFAULT_STORE",
    "AccountScore",
    "AccountState",
    "BatchRejectedError",
    "Client",
    "Clock",
    "ClosedError",
    "ConfigError",
    "Delivery",
    "DeliveryError",
    "FixedClock",
    "FlushResult",
    "Gate",
    "InvalidIdError",
    "InvalidMessageError",
    "MessageTooLargeError",
    "MissingIdentityError",
    "Moment",
    "NaiveTimestampError",
    "NotJSONError",
    "PQLError",
    "Reason",
    "RetryableDeliveryError",
    "Rules",
    "RulesError",
    "SchemaVersionError",
    "Score",
    "Stats",
    "StoreError",
    "SystemClock",
    "TierChange",
    "UserState",
    "__version__",
]
