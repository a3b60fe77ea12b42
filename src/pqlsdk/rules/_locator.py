"""Where a rules-file error points, and what a schema error says.

Every error becomes one ``RulesError`` naming the file, line and column, with the
offending line and a caret, the way a compiler reports: an unknown key at the key,
a wrong value at the value, a mistake in an expression at the spot inside it.
``_positions`` finds where each key and value is written; the ``Locator`` here turns
those places (and spans inside expressions) into errors and warnings, and
``schema_error`` finds the key or value that msgspec's validation error is about.
"""

from __future__ import annotations

import bisect
import itertools
import re
from types import UnionType
from typing import Annotated, Any, Final, Literal, get_args, get_origin

import msgspec

from .._exceptions import RulesError
from ._compiler import ExpressionError, did_you_mean
from ._model import RulesWarning
from ._positions import Path, Place, Span, read_string
from ._schema import RulesSpec

__all__ = ["Locator", "schema_error", "whole"]


def whole(origin: str, message: str) -> RulesError:
    """Return an error about the whole file, which has no line to point at."""
    return RulesError(message, path=origin, line=0, column=0)


class Locator:
    """Turns key paths, and places inside expressions, into errors and warnings."""

    def __init__(self, source: str, origin: str, places: dict[Path, Place]) -> None:
        self.source = source
        self.origin = origin
        self.places = places
        self.lines = source.split("\n")
        self.starts = list(itertools.accumulate((len(line) + 1 for line in self.lines), initial=0))

    def error(self, message: str, *, line: int, column: int, width: int = 1) -> RulesError:
        text = self.lines[line - 1].rstrip("\r")
        return RulesError(
            message, path=self.origin, line=line, column=column, text=text, width=width
        )

    def warning(self, message: str, span: Span) -> RulesWarning:
        line, column, width = self.locate(span)
        text = self.lines[line - 1].rstrip("\r")
        return RulesWarning(message, self.origin, line, column, text, width)

    def position(self, offset: int) -> tuple[int, int]:
        """Return the line and column (both from 1) of ``offset``."""
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def locate(self, span: Span) -> tuple[int, int, int]:
        """Line, column and width of ``span`` (cut at the end of its line)."""
        line, column = self.position(span.offset)
        room = len(self.lines[line - 1].rstrip("\r")) - column + 1
        return line, column, max(1, min(span.length, room))

    def at(self, span: Span | None, message: str) -> RulesError:
        if span is None:
            return whole(self.origin, message)
        line, column, width = self.locate(span)
        return self.error(message, line=line, column=column, width=width)

    def at_key(self, path: Path, message: str) -> RulesError:
        """Point at the key of ``path`` (the whole file when nothing is written there)."""
        place = self.places.get(path)
        return self.at(None if place is None else place.key, message)

    def at_value(self, path: Path, message: str) -> RulesError:
        """Point at the value of ``path`` (the whole file when nothing is written there)."""
        place = self.places.get(path)
        return self.at(None if place is None else place.value, message)

    def inside(self, path: Path, offset: int, length: int) -> Span:
        """Return where characters ``offset`` to ``offset + length`` of a string are.

        The string is the value at ``path``: the loader only asks about strings it
        read from the file.
        """
        text, offsets = read_string(self.source, self.places[path].value.offset)
        end = min(offset + length, len(text))
        start = offsets[min(offset, len(text))]
        return Span(start, max(1, offsets[end] - start))

    def in_value(self, path: Path, error: ExpressionError) -> RulesError:
        """Point at ``error`` inside the expression stored under ``path``."""
        return self.at(self.inside(path, error.offset, error.length), str(error))


_PATH_PART: Final = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def schema_error(where: Locator, raw: Any, error: str) -> RulesError:
    """Turn msgspec's error into one at the key or value it is about.

    msgspec names a path such as ``$.model[...].signals[...].points``, where
    ``[...]`` is a table entry whose key it does not give: the entry is found
    again by validating each one, then the path's place in the text is known.
    """
    message, _, at = error.partition(" - at ")
    at_key = at.startswith("`key` in ")
    path, hint, value = _resolve(raw, _PATH_PART.findall(at.removeprefix("`key` in ").strip("`")))
    if at_key:
        key_type, _ = get_args(_bare(hint))
        path += (next(k for k, v in value.items() if not _valid(k, key_type)),)
        return where.at_key(path, f"invalid rules: {message}")
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    if unknown:
        key = unknown[1]
        if path == ("traits",):
            hint_text = f"; declare it as user.{key} or account.{key}"
        else:
            fields = [field.encode_name for field in msgspec.structs.fields(_bare(hint))]
            hint_text = did_you_mean(key, fields)
        where_text = f"in {_table(path)}" if path else "at the top level"
        return where.at_key((*path, key), f"unknown key '{key}' {where_text}{hint_text}")
    missing = re.fullmatch(r"Object missing required field `(.*)`", message)
    if missing:
        owner = _table(path) if path else "the file"
        return where.at_key(path, f"{owner} needs the key '{missing[1]}'")
    options = get_args(_bare(hint)) if get_origin(_bare(hint)) is Literal else ()
    if options and message.startswith("Invalid enum value"):
        listed = ", ".join(repr(option) for option in options)
        message = f"{value!r} is not one of {listed}"
    return where.at_value(path, f"invalid rules: {message}")


def _resolve(raw: Any, parts: list[tuple[str, str]]) -> tuple[Path, Any, Any]:
    """Follow msgspec's path parts through the data: the concrete path, type and value."""
    path: Path = ()
    hint: Any = RulesSpec
    value = raw
    for field, index in parts:
        shape = _bare(hint)
        if field:
            hint = next(f.type for f in msgspec.structs.fields(shape) if f.encode_name == field)
            key: str | int = field
        elif index != "...":
            hint, key = get_args(shape)[0], int(index)
        else:
            key_type, hint = get_args(shape)
            key = next(k for k, v in value.items() if not (_valid(k, key_type) and _valid(v, hint)))
        path, value = (*path, key), value[key]
    return path, hint, value


def _bare(hint: Any) -> Any:
    """Return the type under ``Annotated[...]`` and ``X | None``: what a value must be."""
    if get_origin(hint) is Annotated:
        return _bare(get_args(hint)[0])
    if get_origin(hint) is UnionType:
        return _bare(next(arg for arg in get_args(hint) if arg is not type(None)))
    return hint


def _valid(value: Any, hint: Any) -> bool:
    try:
        msgspec.convert(value, hint)
    except msgspec.ValidationError:
        return False
    return True


def _table(path: Path) -> str:
    """Name a table as a reader finds it: ``[model.m.signals]``, ``[model.m.routes[0]]``."""
    spelled = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return f"[{spelled[1:]}]"
