"""Segment-spec messages: ``identify``, ``group`` and ``track``.

These are the only shapes pqlsdk records. They follow the Segment tracking spec
field for field (``userId``, ``anonymousId``, ``groupId``, ``traits``, ``event``,
``properties``, ``timestamp``, ``messageId``, ``context``), so a Segment JSON
message decodes into them and they encode back into Segment JSON. Unknown fields
(``integrations``, ``sentAt``...) are accepted and ignored.

A message is recorded only if it passes ``check()``:

- it names a subject: ``userId`` or ``anonymousId`` (a non-empty string);
- its timestamp is timezone-aware (it is normalised to UTC);
- traits, properties and context hold only JSON values (str, int, float that is
  finite, bool, None, lists and string-keyed dicts; tz-aware datetimes and dates
  become ISO-8601 strings), nested at most ``MAX_DEPTH`` levels;
- its JSON encoding is at most ``MAX_MESSAGE_BYTES`` bytes (Segment's own limit).

Messages are frozen and not tracked by the garbage collector: queues hold many
of them, and full GC passes over large queues are what stall peer SDKs.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, date, datetime
from typing import Any, Final

import msgspec

from ._exceptions import (
    InvalidMessageError,
    MessageTooLargeError,
    MissingIdentityError,
    NaiveTimestampError,
    NotJSONError,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "Group",
    "Identify",
    "Message",
    "Track",
    "check",
    "convert",
    "decode",
    "encode",
]

MAX_MESSAGE_BYTES: Final = 32 * 1024
"""Largest accepted message, as encoded JSON bytes (Segment's per-message limit)."""

MAX_DEPTH: Final = 10
"""Deepest accepted nesting of lists and dicts inside traits, properties or context."""


def new_message_id() -> str:
    """Return a fresh random message id (a UUID4 string, as Segment's SDKs make).

    Built from ``os.urandom`` directly: ``str(uuid.uuid4())`` costs about three
    times as much, and this runs on every tracked call.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class _Message(
    msgspec.Struct,
    kw_only=True,
    frozen=True,
    gc=False,
    rename="camel",
    tag_field="type",
    omit_defaults=True,
):
    """Fields every Segment message carries."""

    timestamp: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    message_id: str = msgspec.field(default_factory=new_message_id)
    context: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def subject(self) -> str:
        """The id whose state this message changes: ``userId``, else ``anonymousId``."""
        return self.user_id or self.anonymous_id or ""


class Identify(_Message, tag="identify", frozen=True, gc=False):
    """Who a user is: ``traits`` merge into the user's state, later values winning."""

    traits: dict[str, Any] = msgspec.field(default_factory=dict)


class Group(_Message, tag="group", frozen=True, gc=False):
    """Which account a user belongs to; ``traits`` merge into the account's state."""

    group_id: str
    traits: dict[str, Any] = msgspec.field(default_factory=dict)


class Track(_Message, tag="track", frozen=True, gc=False):
    """Something a user did: the activity that rules count."""

    event: str
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


Message = Identify | Group | Track
"""Any message pqlsdk records."""

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Message)


def encode(message: Message) -> bytes:
    """Return the Segment JSON encoding of ``message``."""
    return _encoder.encode(message)


def decode(data: bytes | str) -> Message:
    """Decode and check one JSON message; raise ``InvalidMessageError`` if refused."""
    try:
        message = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidMessageError(f"not a valid message: {exc}") from exc
    return check(message)[0]


def convert(obj: Any) -> Message:
    """Check and convert one decoded JSON object (a dict) into a message."""
    try:
        message: Message = msgspec.convert(obj, Message)
    except msgspec.ValidationError as exc:
        raise InvalidMessageError(f"not a valid message: {exc}") from exc
    return check(message)[0]


def check(message: Message) -> tuple[Message, bytes]:
    """Check ``message`` against the rules above; return it (normalised) and its JSON.

    The JSON is returned because the size check needs it anyway: callers keep the
    bytes so that each message is encoded exactly once.
    """
    payload = _check_fields(message)
    timestamp = message.timestamp
    if timestamp.tzinfo is None:
        raise NaiveTimestampError(
            f"{_kind(message)} timestamp {timestamp.isoformat()} has no timezone; "
            "pass an aware datetime such as datetime.now(timezone.utc)"
        )
    canonical = _check_json(message.context, "context", 0)
    canonical |= _check_json(payload, _PAYLOAD[type(message)], 0)
    if timestamp.utcoffset():
        message = msgspec.structs.replace(message, timestamp=timestamp.astimezone(UTC))
    try:
        data = _encoder.encode(message)
    except (TypeError, OverflowError) as exc:  # pragma: no cover - _check_json refuses first
        raise NotJSONError(f"{_kind(message)} message cannot be encoded as JSON: {exc}") from exc
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"{_kind(message)} message is {len(data)} bytes encoded; "
            f"the limit is {MAX_MESSAGE_BYTES} bytes"
        )
    if canonical:
        # Dates became strings in the JSON; hold the same values in memory so that
        # every store sees exactly what the collector will receive.
        message = _decoder.decode(data)
    return message, data


_PAYLOAD: Final[dict[type[Message], str]] = {
    Identify: "traits",
    Group: "traits",
    Track: "properties",
}


def _check_fields(message: Message) -> dict[str, Any]:
    """Check the fields a Python caller could fill with the wrong type; return the payload.

    The payload is the message's properties (track) or traits (identify, group).
    """
    kind = _kind(message)
    if not (message.user_id or message.anonymous_id):
        raise MissingIdentityError(f"{kind} message needs a userId or an anonymousId")
    for name in ("user_id", "anonymous_id", "message_id"):
        if not isinstance(getattr(message, name), str | None):
            raise InvalidMessageError(f"{kind} {name} must be a str")
    if isinstance(message, Track):
        if not (message.event and isinstance(message.event, str)):
            raise InvalidMessageError("track message needs an event name (a non-empty str)")
    elif isinstance(message, Group) and not (
        message.group_id and isinstance(message.group_id, str)
    ):
        raise InvalidMessageError("group message needs a groupId (a non-empty str)")
    payload = message.properties if isinstance(message, Track) else message.traits
    for name, value in (("context", message.context), (_PAYLOAD[type(message)], payload)):
        if not isinstance(value, dict):
            raise NotJSONError(f"{kind} {name} must be a dict, not {type(value).__name__}")
    if not isinstance(message.timestamp, datetime):
        raise InvalidMessageError(f"{kind} timestamp must be a datetime")
    return payload


def _kind(message: Message) -> str:
    return type(message).__name__.lower()


_SCALARS: Final = (str, bool, type(None))
_INT_RANGE: Final = range(-(2**63), 2**64)


def _check_json(value: Any, where: str, depth: int) -> bool:  # noqa: PLR0911, PLR0912 - a branch per JSON type
    """Raise ``NotJSONError`` unless ``value`` is plain JSON; True if dates need encoding.

    The error names where the bad value is (``properties.items[2]``) and its type,
    never the value itself: values may be personal data and errors reach logs.
    """
    if isinstance(value, _SCALARS):
        return False
    if isinstance(value, int):
        if value in _INT_RANGE:
            return False
        raise NotJSONError(f"{where} is an integer wider than 64 bits")
    if isinstance(value, float):
        if math.isfinite(value):
            return False
        raise NotJSONError(f"{where} is {value!r}, which JSON cannot carry")
    if depth > MAX_DEPTH:
        raise NotJSONError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        canonical = False
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJSONError(
                    f"{where} has a key of type {type(key).__name__}; keys must be str"
                )
            canonical |= _check_json(item, f"{where}.{key}", depth + 1)
        return canonical
    if isinstance(value, list | tuple):
        # A tuple comes back from JSON as a list: hold the list form, like dates.
        canonical = isinstance(value, tuple)
        for index, item in enumerate(value):
            canonical |= _check_json(item, f"{where}[{index}]", depth + 1)
        return canonical
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise NaiveTimestampError(f"{where} is a datetime without a timezone")
        return True
    if isinstance(value, date):
        return True
    raise NotJSONError(f"{where} is a {type(value).__name__}, which JSON cannot carry")
