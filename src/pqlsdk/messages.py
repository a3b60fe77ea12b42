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

import itertools
import math
import os
from collections.abc import Callable, Iterable, Mapping
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
    "check_decoded",
    "convert",
    "decode",
    "encode",
]

MAX_MESSAGE_BYTES: Final = 32 * 1024
"""Largest accepted message, as encoded JSON bytes (Segment's per-message limit).

Added in version 0.1.0.
"""

MAX_DEPTH: Final = 10
"""Deepest accepted nesting of lists and dicts inside traits, properties or context.

Added in version 0.1.0.
"""


def new_message_id() -> str:
    """Return a fresh message id: a UUID4-shaped string, unique across processes.

    The first 80 bits (beside the version and variant bits) are random, drawn
    once per process; the last 48 bits count this process's ids. That costs a
    fifth of ``str(uuid.uuid4())`` and runs on every tracked call. A forked
    child draws a new prefix, so parent and child never share an id.
    """
    prefix = _id_prefix or _draw_prefix()
    return prefix + hex(next(_id_counter))[3:]


def generated_here(message_id: str) -> bool:
    """Whether ``message_id`` has the prefix ``new_message_id()`` gives in this process.

    Such an id was made here (since the last fork), unless a caller passed one
    of them back as its own: the 80 random bits make any other source a
    chance of one in 2**80.
    """
    prefix = _id_prefix
    return prefix is not None and message_id.startswith(prefix)


def mapping(name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept any mapping for traits, properties and context; refuse anything else."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise NotJSONError(f"{name} must be a mapping, not {type(value).__name__}")


_id_prefix: str | None = None
_COUNT_FROM: Final = 1 << 48
"""Where the id counter starts: its ``hex()`` is "0x1" and then the 12 digits that end
an id, zero-padded (a slice of ``hex()`` costs half of formatting with "012x")."""
_id_counter = itertools.count(_COUNT_FROM)
_id_hook_installed = False


def _draw_prefix() -> str:
    global _id_prefix, _id_counter, _id_hook_installed  # noqa: PLW0603 - one id source per process
    raw = bytearray(os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    _id_counter = itertools.count(_COUNT_FROM)
    _id_prefix = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-"
    if not _id_hook_installed:  # once per process tree: children inherit the hook
        os.register_at_fork(after_in_child=_forget_prefix)
        _id_hook_installed = True
    return _id_prefix


def _forget_prefix() -> None:
    global _id_prefix  # noqa: PLW0603 - see _draw_prefix
    _id_prefix = None


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
    """Who a user is: ``traits`` merge into the user's state, later values winning.

    Added in version 0.1.0.
    """

    traits: dict[str, Any] = msgspec.field(default_factory=dict)


class Group(_Message, tag="group", frozen=True, gc=False):
    """Which account a user belongs to; ``traits`` merge into the account's state.

    Added in version 0.1.0.
    """

    group_id: str
    traits: dict[str, Any] = msgspec.field(default_factory=dict)


class Track(_Message, tag="track", frozen=True, gc=False):
    """Something a user did: the activity that rules count.

    Added in version 0.1.0.
    """

    event: str
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


Message = Identify | Group | Track
"""Any message pqlsdk records: what ``decode`` returns and ``encode`` takes.

Added in version 0.1.0.
"""

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Message)
_track_decoder: Final = msgspec.json.Decoder(Track)
_TRACK: Final = b'{"type":"track",'
"""How ``check()``'s JSON of a track begins: the encoder writes the tag first."""


def encode(message: Message) -> bytes:
    """Return the Segment JSON encoding of ``message``.

    Added in version 0.1.0.
    """
    return _encoder.encode(message)


def decode(data: bytes | str) -> Message:
    """Decode and check one JSON message; raise ``InvalidMessageError`` if refused.

    Added in version 0.1.0.
    """
    try:
        message = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidMessageError(f"not a valid message: {exc}") from exc
    return check(message)[0]


def decode_checked(data: bytes) -> Message:
    """Decode a message that ``check()`` already passed (its own JSON): no second check.

    A track (most messages) goes to the track decoder, a quarter cheaper than the
    union's: the tag, written first, says what it is.
    """
    message: Message = (_track_decoder if data.startswith(_TRACK) else _decoder).decode(data)
    return message


def decode_all(chunk: Iterable[bytes]) -> list[tuple[Message, bytes]]:
    """``decode_checked`` each of a chunk, paired with its bytes: one call for the chunk."""
    track, union, prefix = _track_decoder.decode, _decoder.decode, _TRACK
    return [((track if data.startswith(prefix) else union)(data), data) for data in chunk]


def owner_prefix() -> str | None:
    """Return the prefix of the ids ``new_message_id()`` gave in this process, if any."""
    return _id_prefix


def convert(obj: Any) -> Message:
    """Check and convert one decoded JSON object (a dict) into a message.

    Added in version 0.1.0.
    """
    try:
        message: Message = msgspec.convert(obj, Message)
    except msgspec.ValidationError as exc:
        raise InvalidMessageError(f"not a valid message: {exc}") from exc
    except UnicodeEncodeError:  # a lone surrogate where a type tag was expected
        raise InvalidMessageError("not a valid message: text UTF-8 cannot encode") from None
    return check(message)[0]


def check(message: Message) -> tuple[Message, bytes]:
    """Check ``message`` against the rules above; return it (normalised) and its JSON.

    The JSON is returned because the size check needs it anyway: callers keep the
    bytes so that each message is encoded exactly once.

    Added in version 0.1.0.
    """
    message, canonical = _checked(message)
    try:
        data = _encoder.encode(message)
    except UnicodeEncodeError:  # a lone surrogate: checking every str would cost more
        raise NotJSONError(f"{_kind(message)} message has text UTF-8 cannot encode") from None
    except (TypeError, OverflowError) as exc:  # pragma: no cover - _check_json refuses first
        raise NotJSONError(f"{_kind(message)} message cannot be encoded as JSON: {exc}") from exc
    _check_size(message, len(data))
    if canonical:
        # Dates became strings in the JSON; hold the same values in memory so that
        # every store sees exactly what the collector will receive.
        message = _decoder.decode(data)
    return message, data


def checked_track(
    user_id: object,
    event: object,
    properties: object,
    timestamp: datetime | None,
    message_id: object,
    *,
    now: Callable[[], datetime],
) -> tuple[Message, bytes] | None:
    """``check()`` of a ``track()`` call's message, in one step if the call has the usual shape.

    The usual shape: a plain ASCII user id, an event name, a dict (or None) of
    flat properties (str keys; str, bool, None, 64-bit int or finite float
    values), and neither an anonymous id nor a context (the caller sees to
    those two). Then the message is built here, with ``now()`` unless a
    ``timestamp`` is given, and what ``check()`` would look at again is
    known to pass: only the timestamp, the encoding and the size are left.
    A message that fails one of those goes through ``check()``, which says
    why. A call of another shape gets None, with nothing called: the caller
    takes the general way. This runs on every tracked call: it costs half
    of building the message and checking it with ``check()``.
    """
    if not (
        type(user_id) is str
        and user_id
        and user_id.isascii()
        and type(event) is str
        and event
        and (message_id is None or type(message_id) is str)
    ):
        return None
    if properties is None:
        properties = {}
    elif type(properties) is not dict or not _flat(properties):
        return None
    if timestamp is None:
        timestamp = now()
    message = Track(
        user_id=user_id,
        event=event,
        properties=properties,
        timestamp=timestamp,
        message_id=message_id or new_message_id(),
    )
    if type(timestamp) is datetime and timestamp.tzinfo is UTC:
        try:
            data = _encoder.encode(message)
        except UnicodeEncodeError:
            pass
        else:
            if len(data) <= MAX_MESSAGE_BYTES:
                return message, data
    # A timestamp (a clock's or a caller's) of another kind, text with a lone
    # surrogate, a message too large: check() says what is wrong, or converts.
    return check(message)


def check_decoded(message: Message, size: int) -> Message:
    """Check a message decoded from ``size`` bytes of JSON: ``check()`` without encoding.

    For reading histories: the JSON is at hand, so its size is known and its values
    are JSON already; everything else is checked as ``check()`` does.

    Added in version 0.1.0.
    """
    _check_size(message, size)
    return _checked(message, typed=True)[0]


def _checked(message: Message, *, typed: bool = False) -> tuple[Message, bool]:
    """Check all but the size; return the message in UTC, and whether dates need encoding.

    ``typed``: msgspec decoded the message, so its id fields are ``str`` or None already.
    """
    payload = _check_fields(message, typed=typed)
    timestamp = message.timestamp
    if timestamp.tzinfo is None:
        raise NaiveTimestampError(
            f"{_kind(message)} timestamp {timestamp.isoformat()} has no timezone; "
            "pass an aware datetime such as datetime.now(timezone.utc)"
        )
    canonical = bool(message.context) and _check_json(message.context, "context", 0)
    canonical |= _check_json(payload, _PAYLOAD[type(message)], 0)
    if timestamp.tzinfo is not UTC and timestamp.utcoffset():
        try:
            message = msgspec.structs.replace(message, timestamp=timestamp.astimezone(UTC))
        except OverflowError:  # 0001-01-01 east of UTC is in year 0
            raise InvalidMessageError(f"{_kind(message)} timestamp is out of range") from None
    return message, canonical


def _check_size(message: Message, size: int) -> None:
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"{_kind(message)} message is {size} bytes encoded; "
            f"the limit is {MAX_MESSAGE_BYTES} bytes"
        )


_PAYLOAD: Final[dict[type[Message], str]] = {
    Identify: "traits",
    Group: "traits",
    Track: "properties",
}


def _check_fields(message: Message, *, typed: bool = False) -> dict[str, Any]:
    """Check the fields a Python caller could fill with the wrong type; return the payload.

    The payload is the message's properties (track) or traits (identify, group).
    This runs on every tracked call: the common case costs a few type lookups,
    and messages are only built for errors.
    """
    if not (message.user_id or message.anonymous_id):
        raise MissingIdentityError(f"{_kind(message)} message needs a userId or an anonymousId")
    if not typed:
        for name, value in (
            ("user_id", message.user_id),
            ("anonymous_id", message.anonymous_id),
            ("message_id", message.message_id),
        ):
            if type(value) is not str and value is not None and not isinstance(value, str):
                raise InvalidMessageError(f"{_kind(message)} {name} must be a str")
    payload: dict[str, Any]
    if isinstance(message, Track):
        if not (message.event and isinstance(message.event, str)):
            raise InvalidMessageError("track message needs an event name (a non-empty str)")
        payload = message.properties
    else:
        if isinstance(message, Group) and not (
            message.group_id and isinstance(message.group_id, str)
        ):
            raise InvalidMessageError("group message needs a groupId (a non-empty str)")
        payload = message.traits
    if type(payload) is not dict or type(message.context) is not dict:
        for part, found in (("context", message.context), (_PAYLOAD[type(message)], payload)):
            if not isinstance(found, dict):
                raise NotJSONError(
                    f"{_kind(message)} {part} must be a dict, not {type(found).__name__}"
                )
    if not isinstance(message.timestamp, datetime):
        raise InvalidMessageError(f"{_kind(message)} timestamp must be a datetime")
    return payload


def _kind(message: Message) -> str:
    return type(message).__name__.lower()


_SCALARS: Final = (str, bool, type(None))
_INT_RANGE: Final = range(-(2**63), 2**64)
_INT_MIN: Final = -(2**63)
_INT_END: Final = 2**64
_PLAIN: Final = frozenset({str, bool, type(None)})
"""Exact types that are always JSON: the common case, checked with one lookup."""


class _NotJSON(Exception):  # noqa: N818 - internal: becomes NotJSONError with its path
    """A bad value somewhere below; the path is built while unwinding, only on error."""

    def __init__(self, problem: str, *, naive: bool = False) -> None:
        self.problem = problem
        self.naive = naive
        self.path: list[str] = []


def _flat(value: dict[Any, Any]) -> bool:
    """Tell whether ``value`` is a flat dict of plain JSON, the common case.

    Str keys; str, bool, None, 64-bit int or finite float values: a few type
    lookups an item. Anything else takes ``_check_value``, which says what is wrong.
    """
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str or not (
            kind in _PLAIN
            or (kind is int and _INT_MIN <= item < _INT_END)
            or (kind is float and math.isfinite(item))
        ):
            return False
    return True


def _check_json(value: Any, where: str, depth: int) -> bool:
    """Raise ``NotJSONError`` unless ``value`` is plain JSON; True if dates need encoding.

    The error names where the bad value is (``properties.items[2]``) and its type,
    never the value itself: values may be personal data and errors reach logs.
    """
    if type(value) is dict and _flat(value):  # the common case
        return False
    try:
        return _check_value(value, depth)
    except _NotJSON as bad:
        text = f"{where}{''.join(reversed(bad.path))} {bad.problem}"
        raise (NaiveTimestampError(text) if bad.naive else NotJSONError(text)) from None


def _check_value(value: Any, depth: int) -> bool:  # noqa: PLR0911, PLR0912 - a branch per JSON type
    if type(value) in _PLAIN or isinstance(value, _SCALARS):
        return False
    if isinstance(value, int):
        if value in _INT_RANGE:
            return False
        raise _NotJSON("is an integer wider than 64 bits")
    if isinstance(value, float):
        if math.isfinite(value):
            return False
        raise _NotJSON(f"is {value!r}, which JSON cannot carry")
    if depth > MAX_DEPTH:
        raise _NotJSON(f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        canonical = False
        plain = _PLAIN
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _NotJSON(f"has a key of type {type(key).__name__}; keys must be str")
            if type(item) in plain:
                continue
            try:
                canonical |= _check_value(item, depth + 1)
            except _NotJSON as bad:
                # A key is the caller's text: a lone surrogate in it would break
                # every log handler that writes UTF-8, so it is escaped here.
                bad.path.append(f".{key.encode('utf-8', 'backslashreplace').decode()}")
                raise
        return canonical
    if isinstance(value, list | tuple):
        # A tuple comes back from JSON as a list: hold the list form, like dates.
        canonical = isinstance(value, tuple)
        for index, item in enumerate(value):
            try:
                canonical |= _check_value(item, depth + 1)
            except _NotJSON as bad:
                bad.path.append(f"[{index}]")
                raise
        return canonical
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _NotJSON("is a datetime without a timezone", naive=True)
        return True
    if isinstance(value, date):
        return True
    raise _NotJSON(f"is a {type(value).__name__}, which JSON cannot carry")
