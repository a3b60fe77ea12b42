"""Batch bodies: bounded reading and decompression, parsing, and per-message checks.

This module owns what a ``POST /v1/batch`` body may be, independent of the web
framework. Sizes are bounded twice: the bytes on the wire (counted as they
arrive, whatever ``Content-Length`` claims) and the bytes after gzip, which are
inflated at most one byte past the limit, so a gzip bomb costs the limit and no
more. Each message is checked on its own with ``pqlsdk.messages.convert`` and
then for what storage needs, so one bad message never costs its batch the others.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable
from typing import Any, Final

import msgspec

from ..messages import Message, convert
from ._storage import storable

__all__ = [
    "BadRequestError",
    "BodyTooLargeError",
    "Rejection",
    "accept",
    "inflate",
    "message_id_of",
    "parse_batch",
    "read_limited",
]

_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
"""zlib's window bits for a gzip header and trailer around the deflate stream."""


class BodyTooLargeError(Exception):
    """The body, compressed or not, is larger than the limit (HTTP 413)."""


class BadRequestError(Exception):
    """The body is not a batch at all (HTTP 400); the message says why."""


class Rejection(msgspec.Struct, rename="camel"):
    """One message the collector refused: its place in the batch, its id, and why."""

    index: int
    message_id: str | None
    error: str


async def read_limited(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """Join ``chunks``; raise ``BodyTooLargeError`` as soon as they pass ``limit`` bytes."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError
    return bytes(body)


def inflate(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data`` (one or more members) to at most ``limit`` bytes.

    Raise ``BodyTooLargeError`` past the limit and ``BadRequestError`` for data
    that is not complete gzip.
    """
    out = bytearray()
    try:
        while True:
            inflater = zlib.decompressobj(_GZIP_WBITS)
            # max_length is never 0 here (0 would mean "no limit"): out <= limit.
            out += inflater.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise BodyTooLargeError
            if not inflater.eof:
                raise BadRequestError("the gzip body is truncated")
            data = inflater.unused_data
            if not data:
                return bytes(out)
    except zlib.error as exc:
        raise BadRequestError(f"the body is not valid gzip: {exc}") from exc


def parse_batch(body: bytes) -> list[Any]:
    """Return the ``batch`` list of a JSON body; raise ``BadRequestError`` otherwise."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequestError(f"the body is not JSON: {exc}") from exc
    batch = data.get("batch") if isinstance(data, dict) else None
    if not isinstance(batch, list):
        raise BadRequestError('the body is not a batch: expected {"batch": [...]}')
    return batch


def accept(obj: Any) -> Message:
    """Check one decoded message with pqlsdk's rules and storage's; return it.

    Raise ``InvalidMessageError`` naming the field that is wrong.
    """
    message = convert(obj)
    storable(message)
    return message


def message_id_of(obj: Any) -> str | None:
    """Return the ``messageId`` a refused message claimed, if it is a string."""
    value = obj.get("messageId") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None
