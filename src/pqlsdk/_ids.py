"""What a user, anonymous or account id may be: checked once, where a call enters the client.

Segment ids are strings, and a host passes what its database holds: usually a
str, often an int primary key. Segment's and PostHog's Python SDKs accept an
int and send its decimal string, and so does pqlsdk: ``42`` and ``"42"`` are one
user everywhere (state, scores, moments, the collector), for every method that
takes an id. Nothing else is an id: ``None`` or ``""`` (no user; say so with
``anonymous_id`` in a message), a bool or a float (``1.0`` and ``True`` are
almost always bugs, and ``str()`` would make ``"1.0"`` a third user), bytes, a
container, an object (``str()`` of an object is not a stable identity), and a
str that UTF-8 cannot encode (a lone surrogate: no store and no JSON can hold it).

The client checks each id before anything else, so stores, memos and the
intake thread only ever see a valid str. The check is on every call's path: a
plain ASCII str costs a type check and two flag reads.
"""

from __future__ import annotations

from ._exceptions import InvalidIdError

__all__ = ["check_id", "check_optional_id"]


def check_id(value: object, what: str) -> str:
    """Return ``value`` as an id (an int as its decimal str); ``InvalidIdError`` if it is none."""
    if type(value) is str and value and value.isascii():
        return value
    return _convert(value, what)


def check_optional_id(value: object, what: str) -> str | None:
    """``check_id`` for a message's ``user_id`` or ``anonymous_id``: None and ``""`` mean absent.

    A message needs one of the two; which one is the message check's business.
    """
    if value is None or (type(value) is str and value.isascii()):
        return value
    if isinstance(value, str) and not value:
        return None
    return _convert(value, what)


def _convert(value: object, what: str) -> str:
    """Convert what the fast path did not take: a non-ASCII str, a str subclass, an int."""
    if isinstance(value, str):
        if not value:
            raise InvalidIdError(f"{what} is empty")
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise InvalidIdError(
                f"{what} is not valid text (a lone surrogate at {exc.start})"
            ) from None
        return str.__str__(value)  # a plain str, whatever the subclass's __str__ says
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int.__repr__(value)  # digits, even for an IntEnum member
        except ValueError:  # more digits than sys.get_int_max_str_digits() allows
            raise InvalidIdError(f"{what} is an int too long to be an id") from None
    raise InvalidIdError(f"{what} must be a str or an int, not {type(value).__name__}")
