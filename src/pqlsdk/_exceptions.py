"""The root of every error pqlsdk raises, and most of the tree under it.

Hosts can catch everything pqlsdk raises with ``except pqlsdk.PQLError``, or a
narrower class; each class also subclasses the builtin that fits, so generic
handlers (``except ValueError``) keep working.

The whole tree, the classes other modules define included
(``StoreUnavailableError``...), is drawn on docs/architecture.md ("Errors"),
generated from the classes and checked by tests/docs/test_architecture.py, so
it is not drawn again here where it could fall behind.

Setup mistakes (``ConfigError``) are always raised. Run-time faults
(``InvalidMessageError``, ``StoreError``) are raised only by a client in strict
mode; by default they are logged to the ``pqlsdk`` logger, counted, and the host's
call returns normally.
"""

from __future__ import annotations

__all__ = [
    "BatchRejectedError",
    "ClosedError",
    "ConfigError",
    "DeliveryError",
    "InvalidIdError",
    "InvalidMessageError",
    "MessageTooLargeError",
    "MissingIdentityError",
    "NaiveTimestampError",
    "NotJSONError",
    "PQLError",
    "RetryableDeliveryError",
    "RulesError",
    "SchemaVersionError",
    "StoreError",
]


class PQLError(Exception):
    """Root of every error pqlsdk raises.

    Added in version 0.1.0.
    """


class ClosedError(PQLError, RuntimeError):
    """A call on a client after ``close()``.

    Added in version 0.1.0.
    """

    reason = "closed"


class ConfigError(PQLError, ValueError):
    """A setup mistake: invalid options, an unknown store URL, a bad rules file.

    Added in version 0.1.0.
    """


class RulesError(ConfigError):
    """A rules file that cannot be loaded: syntax, schema, names or types.

    ``str(error)`` reads like a compiler's message: ``file:line:column: message``,
    then the offending line with a caret under the spot. The parts are attributes
    too, for tools that show errors their own way. ``line`` and ``column`` are 0
    when the mistake is the whole file (missing, too large): ``file: message``.

    Added in version 0.1.0.
    """

    def __init__(
        self, message: str, *, path: str, line: int, column: int, text: str = "", width: int = 1
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.text = text
        super().__init__(
            located(message, path=path, line=line, column=column, text=text, width=width)
        )


def located(
    message: str, *, path: str, line: int, column: int, text: str = "", width: int = 1
) -> str:
    """Format ``message`` the way a compiler does; shared by rules errors and warnings."""
    if line == 0:
        return f"{path}: {message}"
    where = f"{path}:{line}:{column}: {message}"
    if text:
        where += f"\n    {text}\n    {' ' * (column - 1)}{'^' * max(width, 1)}"
    return where


class InvalidMessageError(PQLError, ValueError):
    """A message that pqlsdk will not record; ``reason`` is its drop counter name.

    Added in version 0.1.0.
    """

    reason = "invalid"


class InvalidIdError(InvalidMessageError, TypeError):
    """A user, anonymous or account id that is not an id: not a str or an int, or empty.

    Raised (strict) or counted as a drop (by default) before the call reaches
    the store, whichever method it was passed to.

    Added in version 0.1.0.
    """

    reason = "invalid_id"


class MissingIdentityError(InvalidMessageError):
    """A message with neither ``userId`` nor ``anonymousId``.

    Added in version 0.1.0.
    """

    reason = "missing_identity"


class NaiveTimestampError(InvalidMessageError):
    """A timestamp without a timezone: pqlsdk cannot know which instant it means.

    Added in version 0.1.0.
    """

    reason = "naive_timestamp"


class NotJSONError(InvalidMessageError, TypeError):
    """A trait, property or context value that JSON cannot carry, or nested too deep.

    Added in version 0.1.0.
    """

    reason = "not_json"


class MessageTooLargeError(InvalidMessageError):
    """A message whose JSON encoding exceeds ``MAX_MESSAGE_BYTES``.

    Added in version 0.1.0.
    """

    reason = "too_large"


class StoreError(PQLError, OSError):
    """The local store failed while reading or writing.

    Added in version 0.1.0.
    """


class SchemaVersionError(StoreError):
    """The store was written by a newer pqlsdk whose schema this one cannot read.

    Added in version 0.1.0.
    """


class DeliveryError(PQLError):
    """A batch could not be delivered to the collector.

    Added in version 0.1.0.
    """


class RetryableDeliveryError(DeliveryError):
    """A failure worth retrying: network errors, timeouts, 408, 429 and 5xx.

    ``retry_after`` is the collector's ``Retry-After`` in seconds, when it sent one.

    Added in version 0.1.0.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class BatchRejectedError(DeliveryError):
    """The collector refused the batch (a 4xx other than 408 and 429): retrying cannot help.

    Added in version 0.1.0.
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
