"""Tokens: the words of the rules expression language, each with its offset in the source.

The lexer owns how literals are spelled (numbers, durations such as ``7d``, quoted
strings), so the parser only ever sees finished values. It also owns
``ExpressionError``: every stage raises it, and every error points back into the
source by offset, which is the lexer's vocabulary.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Final

import attrs

from .._exceptions import ConfigError

__all__ = ["KEYWORDS", "ExpressionError", "Token", "parse_duration", "tokenize"]

KEYWORDS: Final = frozenset({"and", "or", "not", "in", "if", "else", "true", "false", "null"})

# Seconds per duration unit; a duration is a number immediately followed by one.
_UNITS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
# Ten years: longer windows are typos, and the bound keeps window arithmetic small.
_MAX_DURATION_DAYS: Final = 3_650

_TOKEN: Final = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)(?P<unit>[A-Za-z_][A-Za-z0-9_]*)?
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|<=|>=|[-+*/%<>()\[\],.=])
    """,
    # ASCII: a Unicode digit or space that merely looks right must not be accepted.
    re.VERBOSE | re.ASCII | re.DOTALL,
)
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)


class ExpressionError(ConfigError):
    """An expression that cannot compile: ``message`` says why, ``offset`` where.

    ``offset`` is 0-based into the expression source and ``length`` (at least 1)
    is how many characters to underline. ``str(error)`` is ``message``.
    """

    def __init__(self, message: str, offset: int, length: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.length = max(1, length)


@attrs.frozen
class Token:
    """One word of the source.

    ``kind`` is ``"number"``, ``"duration"``, ``"string"``, ``"name"``, ``"end"``, or
    the operator or keyword itself (``"=="``, ``"and"``...). ``value`` is the
    literal's value: a number, whole seconds for a duration, the unescaped text of
    a string, the identifier of a name.
    """

    kind: str
    text: str
    offset: int
    value: Any = None

    @property
    def length(self) -> int:
        """Characters to underline for an error at this token (the end token gets 1)."""
        return max(1, len(self.text))


def parse_duration(text: str) -> int:
    """Return the whole seconds of a duration written on its own, such as ``24h``.

    For settings outside expressions (caps, cooldowns), so that durations are
    spelled and bounded the same way everywhere in a rules file.
    """
    tokens = tokenize(text)
    if len(tokens) != 2 or tokens[0].kind != "duration" or tokens[0].value <= 0:
        raise ExpressionError(f"expected a duration like 24h, got {text!r}", 0, len(text))
    return int(tokens[0].value)


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``"end"`` token at ``len(source)``."""
    tokens: list[Token] = []
    offset = 0
    while offset < len(source):
        match = _TOKEN.match(source, offset)
        if match is None:
            if source[offset] in "\"'":
                raise ExpressionError("unterminated string", offset, len(source) - offset)
            raise ExpressionError(f"unexpected {source[offset]!r}", offset)
        text = match.group()
        if match["number"] is not None:
            tokens.append(_number(match, offset))
        elif match["name"] is not None:
            tokens.append(Token(text if text in KEYWORDS else "name", text, offset, text))
        elif match["string"] is not None:
            tokens.append(Token("string", text, offset, _unescape(text, offset)))
        elif match["op"] is not None:
            tokens.append(Token(text, text, offset))
        offset = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


def _number(match: re.Match[str], offset: int) -> Token:
    """Read a number, or a duration when a unit follows it without a space."""
    text = match.group()
    digits = match["number"]
    unit = match["unit"]
    if unit is None:
        value = float(digits) if any(c in digits for c in ".eE") else int(digits)
        if value == float("inf"):
            raise ExpressionError(f"{text!r} is too large", offset, len(text))
        return Token("number", text, offset, value)
    # An exponent is refused here: "1e9999d" would ask for an enormous exact value.
    if unit not in _UNITS or any(c in digits for c in "eE"):
        raise ExpressionError(
            f"{text!r} is not a duration; write one like 7d or 1.5h", offset, len(text)
        )
    # Exact arithmetic: 1.1h is 3960 seconds, not 3960.0000000000005.
    seconds = Fraction(digits) * _UNITS[unit]
    if seconds.denominator != 1:
        raise ExpressionError(f"{text!r} is not a whole number of seconds", offset, len(text))
    if seconds > _MAX_DURATION_DAYS * _UNITS["d"]:
        raise ExpressionError(
            f"durations are at most {_MAX_DURATION_DAYS}d, got {text!r}", offset, len(text)
        )
    return Token("duration", text, offset, int(seconds))


def _unescape(text: str, offset: int) -> str:
    r"""Return a quoted string's value: only \\, \" and \' may follow a backslash."""
    body = text[1:-1]
    for escape in _ESCAPE.finditer(body):
        if escape[1] not in "\\\"'":
            raise ExpressionError(
                f"unsupported escape '{escape[0]}'; only \\\\, \\\" and \\' are allowed",
                offset + 1 + escape.start(),
                2,
            )
    return _ESCAPE.sub(lambda escape: escape[1], body)
