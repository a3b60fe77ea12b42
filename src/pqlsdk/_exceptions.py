"""Every error pqlsdk raises, under one root.

Hosts can catch everything pqlsdk raises with ``except pqlsdk.PQLError``, or a
narrower class; each class also subclasses the builtin that fits, so generic
handlers (``except ValueError``) keep working::

    PQLError
    ├── ConfigError (ValueError)            bad options or store URL, at construction
    ├── InvalidMessageError (ValueError)    a message pqlsdk refuses to record
    │   ├── MissingIdentityError            neither userId nor anonymousId
    │   ├── NaiveTimestampError             a datetime without a timezone
    │   ├── NotJSONError (TypeError)        a value JSON cannot carry, or too deep
    │   └── MessageTooLargeError            encoded message over the size limit
    └── StoreError (OSError)                the local store failed at run time
        └── SchemaVersionError              the store file is newer than this pqlsdk

Setup mistakes (``ConfigError``) are always raised. Run-time faults
(``InvalidMessageError``, ``StoreError``) are raised only by a client in strict
mode; by default they are logged to the ``pqlsdk`` logger, counted, and the host's
call returns normally.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InvalidMessageError",
    "MessageTooLargeError",
    "MissingIdentityError",
    "NaiveTimestampError",
    "NotJSONError",
    "PQLError",
    "SchemaVersionError",
    "StoreError",
]


class PQLError(Exception):
    """Root of every error pqlsdk raises."""


class ConfigError(PQLError, ValueError):
    """A setup mistake: invalid options, an unknown store URL, a bad rules file."""


class InvalidMessageError(PQLError, ValueError):
    """A message that pqlsdk will not record; ``reason`` is its drop counter name."""

    reason = "invalid"


class MissingIdentityError(InvalidMessageError):
    """A message with neither ``userId`` nor ``anonymousId``."""

    reason = "missing_identity"


class NaiveTimestampError(InvalidMessageError):
    """A timestamp without a timezone: pqlsdk cannot know which instant it means."""

    reason = "naive_timestamp"


class NotJSONError(InvalidMessageError, TypeError):
    """A trait, property or context value that JSON cannot carry, or nested too deep."""

    reason = "not_json"


class MessageTooLargeError(InvalidMessageError):
    """A message whose JSON encoding exceeds ``MAX_MESSAGE_BYTES``."""

    reason = "too_large"


class StoreError(PQLError, OSError):
    """The local store failed while reading or writing."""


class SchemaVersionError(StoreError):
    """The store was written by a newer pqlsdk whose schema this one cannot read."""
