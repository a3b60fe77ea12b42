"""Messages: Segment-spec shapes, and the checks that refuse bad ones precisely."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

import pqlsdk
from pqlsdk import messages
from pqlsdk.messages import Group, Identify, Track

from .conftest import load_scenario, scenario_files, scenario_id

AT = datetime(2026, 3, 15, 12, tzinfo=UTC)


def _scenario_messages(path: Path) -> list[dict[str, Any]]:
    """The Segment messages of a vector file: its events, and its steps' messages."""
    data = load_scenario(path)
    found: list[dict[str, Any]] = list(data.get("events", []))
    for step in data.get("steps", []):
        if step["op"] == "identify":
            found.append(
                {
                    "type": "identify",
                    "userId": step["user"],
                    "traits": step["traits"],
                    "timestamp": step["at"],
                }
            )
        elif step["op"] == "track":
            found.append(
                {
                    "type": "track",
                    "userId": step["user"],
                    "event": step["event"],
                    "timestamp": step["at"],
                }
            )
    return found


@pytest.mark.parametrize("path", scenario_files(), ids=scenario_id)
def test_every_scenario_message_decodes(path: Path) -> None:
    """Each message of each vector file decodes from JSON into pqlsdk's types."""
    found = _scenario_messages(path)
    assert found or "steps" in load_scenario(path)
    for raw in found:
        message = messages.decode(json.dumps(raw))
        assert type(message).__name__.lower() == raw["type"]
        assert message.subject == raw.get("userId") or raw.get("anonymousId")
        assert message.timestamp.tzinfo is not None
        assert message.timestamp == datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00"))


def test_encode_is_segment_json() -> None:
    """Encoded messages use Segment's camelCase names and a ``type`` tag."""
    message = Track(
        user_id="u1",
        event="limit_hit",
        timestamp=AT,
        message_id="m1",
        properties={"limit": "seats"},
    )
    assert json.loads(messages.encode(message)) == {
        "type": "track",
        "userId": "u1",
        "event": "limit_hit",
        "properties": {"limit": "seats"},
        "timestamp": "2026-03-15T12:00:00Z",
        "messageId": "m1",
    }


def test_decode_ignores_unknown_segment_fields() -> None:
    """Fields pqlsdk does not use (integrations, sentAt) do not make a message invalid."""
    raw = {
        "type": "group",
        "anonymousId": "a1",
        "groupId": "g1",
        "timestamp": "2026-03-15T12:00:00Z",
        "integrations": {"All": True},
        "sentAt": "2026-03-15T12:00:01Z",
    }
    message = messages.convert(raw)
    assert message == Group(
        anonymous_id="a1", group_id="g1", timestamp=AT, message_id=message.message_id
    )


def test_message_id_is_generated_when_missing() -> None:
    """A message without ``messageId`` gets a fresh UUID, different each time."""
    raw = '{"type":"identify","userId":"u","timestamp":"2026-03-15T12:00:00Z"}'
    first, second = messages.decode(raw), messages.decode(raw)
    assert len(first.message_id) == 36
    assert first.message_id != second.message_id


def test_timestamps_are_normalised_to_utc() -> None:
    """An aware timestamp in another zone is stored as the same instant in UTC."""
    paris = datetime(2026, 3, 15, 13, tzinfo=timezone(timedelta(hours=1)))
    checked, data = messages.check(Identify(user_id="u", timestamp=paris))
    assert checked.timestamp == AT
    assert checked.timestamp.tzinfo == UTC
    assert b'"2026-03-15T12:00:00Z"' in data


def test_dates_in_properties_become_iso_strings() -> None:
    """Dates are accepted and held as the ISO strings the collector will receive."""
    checked, _ = messages.check(
        Identify(
            user_id="u",
            timestamp=AT,
            traits={"trial_ends_at": AT, "born": date(2020, 1, 2), "tags": ("a", "b")},
        )
    )
    assert isinstance(checked, Identify)
    assert checked.traits == {
        "trial_ends_at": "2026-03-15T12:00:00Z",
        "born": "2020-01-02",
        "tags": ["a", "b"],
    }


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


BAD: list[tuple[str, Any, type[pqlsdk.InvalidMessageError], str]] = [
    (
        "naive timestamp",
        Track(user_id="u", event="e", timestamp=datetime(2026, 3, 15)),
        pqlsdk.NaiveTimestampError,
        "track timestamp 2026-03-15T00:00:00 has no timezone",
    ),
    (
        "no identity",
        Track(event="e", timestamp=AT),
        pqlsdk.MissingIdentityError,
        "track message needs a userId or an anonymousId",
    ),
    (
        "empty identity",
        Identify(user_id="", timestamp=AT),
        pqlsdk.MissingIdentityError,
        "identify message needs a userId or an anonymousId",
    ),
    (
        "object property",
        Track(user_id="u", event="e", timestamp=AT, properties={"x": object()}),
        pqlsdk.NotJSONError,
        "properties.x is a object, which JSON cannot carry",
    ),
    (
        "nan property",
        Track(user_id="u", event="e", timestamp=AT, properties={"x": [1, float("nan")]}),
        pqlsdk.NotJSONError,
        "properties.x[1] is nan, which JSON cannot carry",
    ),
    (
        "surrogate key",  # the caller's key is escaped: log handlers writing UTF-8 take it
        Track(user_id="u", event="e", timestamp=AT, properties={"k\ud800": float("inf")}),
        pqlsdk.NotJSONError,
        "properties.k\\ud800 is inf, which JSON cannot carry",
    ),
    (
        "set trait",
        Identify(user_id="u", timestamp=AT, traits={"s": {1}}),
        pqlsdk.NotJSONError,
        "traits.s is a set, which JSON cannot carry",
    ),
    (
        "int key",
        Identify(user_id="u", timestamp=AT, traits={1: "x"}),  # type: ignore[dict-item]
        pqlsdk.NotJSONError,
        "traits has a key of type int; keys must be str",
    ),
    (
        "naive date trait",
        Identify(user_id="u", timestamp=AT, traits={"d": datetime(2026, 1, 1)}),
        pqlsdk.NaiveTimestampError,
        "traits.d is a datetime without a timezone",
    ),
    (
        "huge int",
        Track(user_id="u", event="e", timestamp=AT, properties={"n": 2**70}),
        pqlsdk.NotJSONError,
        "properties.n is an integer wider than 64 bits",
    ),
    (
        "too deep",
        Track(user_id="u", event="e", timestamp=AT, properties=_deep(11)),
        pqlsdk.NotJSONError,
        "nested more than 10 levels deep",
    ),
    (
        "too large",
        Track(user_id="u", event="e", timestamp=AT, properties={"x": "a" * 33_000}),
        pqlsdk.MessageTooLargeError,
        "the limit is 32768 bytes",
    ),
    (
        "empty event",
        Track(user_id="u", event="", timestamp=AT),
        pqlsdk.InvalidMessageError,
        "track message needs an event name",
    ),
    (
        "no group id",
        Group(user_id="u", group_id="", timestamp=AT),
        pqlsdk.InvalidMessageError,
        "group message needs a groupId",
    ),
    (
        "int user id",
        Track(user_id=7, event="e", timestamp=AT),  # type: ignore[arg-type]
        pqlsdk.InvalidMessageError,
        "track user_id must be a str",
    ),
    (
        "list properties",
        Track(user_id="u", event="e", timestamp=AT, properties=[1]),  # type: ignore[arg-type]
        pqlsdk.NotJSONError,
        "track properties must be a dict, not list",
    ),
    (
        "string timestamp",
        Track(user_id="u", event="e", timestamp="2026-03-15"),  # type: ignore[arg-type]
        pqlsdk.InvalidMessageError,
        "track timestamp must be a datetime",
    ),
]


@pytest.mark.parametrize(
    ("message", "error", "text"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_check_refuses_bad_messages_precisely(
    message: messages.Message, error: type[Exception], text: str
) -> None:
    """Each kind of bad message raises its own error class with a message saying where."""
    with pytest.raises(error) as caught:
        messages.check(message)
    assert type(caught.value) is error
    assert text in str(caught.value)


def test_just_under_the_size_limit_is_accepted() -> None:
    """The limit is on encoded bytes: a message of exactly the limit passes."""
    base = len(
        messages.encode(
            Track(user_id="u", event="e", timestamp=AT, message_id="m", properties={"x": ""})
        )
    )
    fill = "a" * (messages.MAX_MESSAGE_BYTES - base)
    _, data = messages.check(
        Track(user_id="u", event="e", timestamp=AT, message_id="m", properties={"x": fill})
    )
    assert len(data) == messages.MAX_MESSAGE_BYTES


def test_ten_levels_deep_is_accepted() -> None:
    """MAX_DEPTH levels of nesting are allowed; one more is refused (above)."""
    messages.check(Track(user_id="u", event="e", timestamp=AT, properties=_deep(10)))


def test_error_text_never_contains_the_value() -> None:
    """Errors reach logs, so they name where a bad value is, never the value."""
    private = "alice@example.com"
    with pytest.raises(pqlsdk.NotJSONError) as caught:
        messages.check(Identify(user_id="u", timestamp=AT, traits={"email": {private, "x"}}))
    assert private not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (
            '{"type":"track","userId":"u","event":"e","timestamp":"2026-03-15T12:00:00"}',
            "has no timezone",
        ),
        ('{"type":"page","userId":"u","timestamp":"2026-03-15T12:00:00Z"}', "Invalid value 'page'"),
        (
            '{"type":"track","userId":"u","timestamp":"2026-03-15T12:00:00Z"}',
            "missing required field `event`",
        ),
        ("not json", "not a valid message"),
    ],
)
def test_decode_refuses_bad_json(data: str, text: str) -> None:
    """Decoding reports the JSON problem in a pqlsdk error."""
    with pytest.raises(pqlsdk.InvalidMessageError, match=text):
        messages.decode(data)


def test_convert_refuses_bad_objects() -> None:
    """Converting a dict reports schema problems in a pqlsdk error."""
    with pytest.raises(
        pqlsdk.InvalidMessageError, match=r"Expected `str \| null`, got `int` - at `\$.userId`"
    ):
        messages.convert(
            {"type": "track", "userId": 5, "event": "e", "timestamp": "2026-03-15T12:00:00Z"}
        )


def test_messages_are_frozen() -> None:
    """Messages are shared between threads and queues; nobody may change one."""
    message = Track(user_id="u", event="e", timestamp=AT)
    with pytest.raises(AttributeError):
        message.event = "other"  # type: ignore[misc]
    assert msgspec.structs.asdict(message)["event"] == "e"


def test_generated_message_ids_are_random_uuid4_strings() -> None:
    """Generated ids parse as RFC 4122 version-4 UUIDs and do not repeat."""
    ids = [messages.new_message_id() for _ in range(1000)]
    parsed = [uuid.UUID(value) for value in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == ids
    assert len(set(ids)) == 1000


def test_a_forked_child_draws_a_new_id_prefix() -> None:
    """After fork the id prefix is drawn again (the hook installed on the first draw runs)."""
    first = messages.new_message_id()
    messages._forget_prefix()  # what the fork hook does in the child
    second = messages.new_message_id()
    assert first[:24] != second[:24]


USUAL_TRACKS: list[tuple[dict[str, Any] | None, datetime | None, str | None]] = [
    (None, None, None),
    ({"s": "x", "b": True, "none": None, "i": -(2**63), "u": 2**64 - 1, "f": 1.5}, None, None),
    ({"plan": "trial"}, AT, "m-1"),
    ({}, None, ""),  # an empty id is no id: one is generated, as check() would
]


@pytest.mark.parametrize(("properties", "timestamp", "message_id"), USUAL_TRACKS)
def test_a_usual_track_call_is_checked_and_encoded_as_check_does(
    properties: dict[str, Any] | None, timestamp: datetime | None, message_id: str | None
) -> None:
    """checked_track() gives the message and JSON that check() gives for the same call."""
    stamped: list[datetime] = []

    def now() -> datetime:
        stamped.append(datetime.now(UTC))
        return stamped[-1]

    found = messages.checked_track("u", "e", properties, timestamp, message_id, now=now)
    assert found is not None
    expected = messages.check(
        Track(
            user_id="u",
            event="e",
            properties=properties or {},
            timestamp=stamped[0] if timestamp is None else timestamp,
            message_id=message_id or found[0].message_id,
        )
    )
    assert found == expected
    assert len(stamped) == (timestamp is None)
    assert messages.generated_here(found[0].message_id) == (not message_id)


OTHER_SHAPES: list[tuple[str, Any, Any, Any, Any]] = [
    ("int user id", 5, "e", {}, None),
    ("non-ASCII user id", "ü", "e", {}, None),
    ("empty user id", "", "e", {}, None),
    ("str subclass user id", type("S", (str,), {})("u"), "e", {}, None),
    ("empty event", "u", "", {}, None),
    ("non-str event", "u", 5, {}, None),
    ("mapping properties", "u", "e", {"a": 1}.keys(), None),
    ("nested properties", "u", "e", {"a": {"b": 1}}, None),
    ("a date", "u", "e", {"a": AT}, None),
    ("a tuple", "u", "e", {"a": (1,)}, None),
    ("a wide int", "u", "e", {"a": 2**64}, None),
    ("a nan", "u", "e", {"a": float("nan")}, None),
    ("an int key", "u", "e", {1: "a"}, None),
    ("an int message id", "u", "e", {}, 5),
]


@pytest.mark.parametrize(
    ("user_id", "event", "properties", "message_id"),
    [shape[1:] for shape in OTHER_SHAPES],
    ids=[shape[0] for shape in OTHER_SHAPES],
)
def test_a_call_of_another_shape_is_left_to_check_without_asking_the_clock(
    user_id: Any, event: Any, properties: Any, message_id: Any
) -> None:
    """None (the general way, which says what is wrong or converts); the clock is not asked."""

    def now() -> datetime:
        raise AssertionError("the clock was asked")

    assert messages.checked_track(user_id, event, properties, None, message_id, now=now) is None


@pytest.mark.parametrize(
    ("properties", "timestamp", "error"),
    [
        ({}, datetime(2026, 3, 15, 12), pqlsdk.NaiveTimestampError),
        ({}, "2026-03-15T12:00:00Z", pqlsdk.InvalidMessageError),
        ({"a": "\ud800"}, AT, pqlsdk.NotJSONError),
        ({"a": "x" * messages.MAX_MESSAGE_BYTES}, AT, pqlsdk.MessageTooLargeError),
    ],
    ids=["naive timestamp", "str timestamp", "lone surrogate", "too large"],
)
def test_a_usual_call_that_fails_late_is_refused_as_check_refuses_it(
    properties: dict[str, Any], timestamp: Any, error: type[Exception]
) -> None:
    """A bad timestamp, text UTF-8 cannot encode or too many bytes: check()'s own error."""
    call = Track(user_id="u", event="e", properties=properties, timestamp=timestamp)
    with pytest.raises(error) as expected:
        messages.check(call)
    with pytest.raises(error) as found:
        messages.checked_track("u", "e", properties, timestamp, None, now=datetime.now)
    assert str(found.value) == str(expected.value)


def test_a_usual_call_east_of_utc_is_held_in_utc() -> None:
    """A timestamp with an offset is converted to UTC, as check() converts it."""
    east = datetime(2026, 3, 15, 14, tzinfo=timezone(timedelta(hours=2)))
    found = messages.checked_track("u", "e", None, east, "m-1", now=datetime.now)
    assert found == messages.check(Track(user_id="u", event="e", timestamp=east, message_id="m-1"))
    assert found is not None
    assert found[0].timestamp == AT
    assert found[0].timestamp.tzinfo is UTC


def test_generated_ids_end_in_a_zero_padded_count() -> None:
    """The last 12 hex digits of a prefix's ids count from 0: 48 bits, zero-padded."""
    messages._forget_prefix()  # a new prefix: its count starts again
    ids = [messages.new_message_id() for _ in range(17)]
    assert [value[24:] for value in (ids[0], ids[1], ids[16])] == [
        "000000000000",
        "000000000001",
        "000000000010",
    ]
    assert len({value[:24] for value in ids}) == 1
