"""Where each key and value of a rules file is written, for messages that point at it.

``tomllib`` and ``json`` return plain data and forget where it came from, and
msgspec's errors name a path (``$.model[...].signals``), not a place. So the text
is read once more, after its parser has accepted it, and every key path is given
the spans of its key and of its value. A mistake is then shown at the offending
key (an unknown key) or value (a wrong type), never at the first occurrence of
the same word elsewhere in the file, say in a comment.

The reader trusts its input to be valid: it walks TOML's table headers (``[a.b]``
and ``[[a.b]]``), dotted and quoted keys, inline tables and arrays, skipping
comments and strings; a JSON document is read as one inline value. It checks
nothing, which keeps it small.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Literal

import attrs

__all__ = ["Path", "Place", "Span", "find_places", "read_string"]

Path = tuple[str | int, ...]
"""Keys and array indexes from the top of the document: ``("model", "m", "routes", 0)``."""


@attrs.frozen
class Span:
    """``length`` characters of the source starting at ``offset``."""

    offset: int
    length: int


@attrs.frozen
class Place:
    """Where an entry's key and its value are written.

    An array item has no key: both spans are the item. A table opened by a header
    (``[model.m]``) has no value of its own: both spans are its name in the header.
    """

    key: Span
    value: Span


# Whitespace, newlines and comments: skipped freely, since the parser accepted the text.
_BLANK: Final = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
# A number, bool, date or null runs to the next delimiter (dates may hold a space).
_SCALAR: Final = re.compile(r"[^,\]}\n#]*")
_ESCAPES: Final = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    '"': '"',
    "\\": "\\",
    "/": "/",
}
_HEX_DIGITS: Final = {"u": 4, "U": 8}
_QUOTES: Final = {quote: re.compile(f"{quote}+") for quote in "'\""}
# Runs of characters a string holds as they are: read in one step, not one by one.
_PLAIN: Final = {"'": re.compile(r"[^'\r]+"), '"': re.compile(r'[^"\\\r]+')}


def find_places(source: str, kind: Literal["toml", "json"]) -> dict[Path, Place]:
    """Return the place of every key path in ``source``, which its parser accepted."""
    reader = _Reader(source)
    if kind == "toml":
        reader.document()
    else:
        reader.blank()
        span = reader.value(())
        reader.places[()] = Place(span, span)
    return reader.places


def read_string(source: str, offset: int) -> tuple[str, list[int]]:
    """Decode the TOML or JSON string literal at ``offset``.

    Returns its text and, for each character of the text, the offset where that
    character is written (an escape maps to its backslash), then once more the
    offset of the closing quote: an error at characters ``i`` to ``j`` of the text
    is underlined from ``offsets[i]`` to ``offsets[j]`` in the file.
    """
    chars, offsets, _ = _string(source, offset)
    return "".join(chars), offsets


def _string(source: str, offset: int) -> tuple[list[str], list[int], int]:
    """Decode the string at ``offset``; also return where the literal ends."""
    quote = source[offset]
    triple = source.startswith(quote * 3, offset)
    at = offset + (3 if triple else 1)
    if triple:  # a newline right after the opening quotes is not part of the text
        at += next((len(end) for end in ("\n", "\r\n") if source.startswith(end, at)), 0)
    chars: list[str] = []
    offsets: list[int] = []
    while True:
        char = source[at]
        if char == quote and (not triple or source.startswith(quote * 3, at)):
            if not triple:
                return chars, [*offsets, at], at + 1
            # Up to two quotes may end the text just before the closing three.
            run = _QUOTES[quote].match(source, at).end()  # type: ignore[union-attr]
            extra = min(run - at - 3, 2)
            chars += [quote] * extra
            offsets += range(at, at + extra)
            return chars, [*offsets, at + extra], at + extra + 3
        plain = _PLAIN[quote].match(source, at)
        if plain is not None:
            chars.append(plain[0])
            offsets += range(at, plain.end())
            at = plain.end()
            continue
        if char == "\\" and quote == '"':
            text, length = _escape(source, at, triple=triple)
        elif char == "\r" and source.startswith("\r\n", at):
            text, length = "\n", 2  # TOML reads a CRLF inside a string as a newline
        else:
            text, length = char, 1
        chars += text
        offsets += [at] * len(text)
        at += length


def _escape(source: str, at: int, *, triple: bool) -> tuple[str, int]:
    """Return the text of the escape at ``at`` and how many characters it spans."""
    letter = source[at + 1]
    if triple and letter in " \t\r\n":
        # A backslash ending a line drops it and the blank space that follows.
        end = _BLANK.match(source, at + 1).end()  # type: ignore[union-attr]
        return "", end - at
    if letter not in _HEX_DIGITS:
        return _ESCAPES[letter], 2
    digits = _HEX_DIGITS[letter]
    code = int(source[at + 2 : at + 2 + digits], 16)
    length = 2 + digits
    low = source[at + 8 : at + 12] if source.startswith("\\u", at + 6) else ""
    if 0xD800 <= code < 0xDC00 and low and 0xDC00 <= int(low, 16) < 0xE000:
        # JSON spells a character beyond the BMP as a surrogate pair: one character.
        code = 0x10000 + ((code - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        length = 12
    return chr(code), length


class _Reader:
    """One pass over the text, recording each path's place as it goes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.at = 0
        self.places: dict[Path, Place] = {}
        self.tables: dict[Path, int] = {}  # arrays of tables: how many so far

    def blank(self) -> None:
        self.at = _BLANK.match(self.source, self.at).end()  # type: ignore[union-attr]

    def document(self) -> None:
        table: Path = ()
        self.blank()
        while self.at < len(self.source):
            if self.source[self.at] == "[":
                table = self.header()
            else:
                self.pair(table)
            self.blank()

    def header(self) -> Path:
        """Read ``[a.b]`` or ``[[a.b]]``; return the path of the table it opens."""
        array = self.source.startswith("[[", self.at)
        self.at += 2 if array else 1
        keys = self.keys()
        self.blank()
        self.at += 2 if array else 1
        path: Path = ()
        for index, (key, span) in enumerate(keys):
            path = (*path, key)
            place = Place(span, span)
            if index < len(keys) - 1:
                self.places.setdefault(path, place)
                if path in self.tables:  # [[a]] then [a.b]: b is in a's last table
                    path = (*path, self.tables[path] - 1)
            elif array:
                self.places.setdefault(path, place)
                self.tables[path] = self.tables.get(path, 0) + 1
                path = (*path, self.tables[path] - 1)
                self.places[path] = place
            else:
                self.places[path] = place
        return path

    def pair(self, table: Path) -> None:
        """Read ``a.b = value`` (or JSON's ``"a": value``) inside ``table``."""
        keys = self.keys()
        self.blank()
        self.at += 1  # '=' or ':'
        self.blank()
        path = table
        for key, span in keys[:-1]:
            path = (*path, key)
            self.places.setdefault(path, Place(span, span))
        key, span = keys[-1]
        path = (*path, key)
        self.places[path] = Place(span, self.value(path))

    def keys(self) -> list[tuple[str, Span]]:
        """Read a dotted key: each part with its span."""
        keys: list[tuple[str, Span]] = []
        while True:
            self.blank()
            start = self.at
            if self.source[start] in "\"'":
                chars, _, self.at = _string(self.source, start)
                key = "".join(chars)
            else:
                self.at = _BARE_KEY.match(self.source, start).end()  # type: ignore[union-attr]
                key = self.source[start : self.at]
            keys.append((key, Span(start, self.at - start)))
            self.blank()
            if self.source[self.at] != ".":
                return keys
            self.at += 1

    def value(self, path: Path) -> Span:
        """Read the value at ``path``, recording the places of what it contains."""
        start = self.at
        char = self.source[start]
        if char in "\"'":
            self.at = _string(self.source, start)[2]
        elif char == "{":
            self.at += 1
            self.items("}", lambda: self.pair(path))
        elif char == "[":
            self.at += 1
            index = 0

            def item() -> None:
                nonlocal index
                span = self.value((*path, index))
                self.places[(*path, index)] = Place(span, span)
                index += 1

            self.items("]", item)
        else:
            text = _SCALAR.match(self.source, start)[0]  # type: ignore[index]
            self.at = start + len(text.rstrip())
        return Span(start, self.at - start)

    def items(self, close: str, item: Callable[[], object]) -> None:
        """Read comma-separated items up to ``close`` (trailing comma allowed)."""
        while True:
            self.blank()
            if self.source[self.at] == close:
                self.at += 1
                return
            item()
            self.blank()
            if self.source[self.at] == ",":
                self.at += 1
