"""Outcomes: the conversions a replay measures rules against.

An outcomes file is CSV (with a header row) or JSON Lines (one object a line),
optionally gzipped, with these columns or fields:

- ``user`` (or ``user_id``, ``userId``) *or* ``account`` (or ``account_id``,
  ``groupId``): who converted; exactly one of the two on each row;
- ``time`` (or ``timestamp``): when, ISO-8601 with a timezone;
- ``value`` (optional): revenue, a number; empty or missing means none.

A subject with several rows converted at its earliest time; its values add up
(the revenue it brought). Loading keeps one entry per converted subject, so
memory grows with converters, not rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs

from .._clock import micros
from .._exceptions import ConfigError

__all__ = ["Conversion", "load_outcomes"]

_USER_KEYS: Final = ("user", "user_id", "userId")
_ACCOUNT_KEYS: Final = ("account", "account_id", "groupId")
_TIME_KEYS: Final = ("time", "timestamp")


@attrs.define
class Conversion:
    """One subject's conversion: when it first converted and the revenue of all its rows.

    Added in version 0.1.0.
    """

    subject: str
    """``"user"`` or ``"account"``."""
    id: str
    at: int
    """The earliest conversion time (µs since the epoch)."""
    value: float | None = None
    """Summed revenue, or None when no row gave a value."""


def load_outcomes(path: Path) -> dict[tuple[str, str], Conversion]:
    """Read an outcomes file into conversions keyed by (subject, id); ``ConfigError`` if bad.

    Added in version 0.1.0.
    """
    conversions: dict[tuple[str, str], Conversion] = {}
    for where, row in _rows(path):
        subject, subject_id, at, value = _parse(where, row)
        key = (subject, subject_id)
        found = conversions.get(key)
        if found is None:
            conversions[key] = Conversion(subject, subject_id, at, value)
            continue
        found.at = min(found.at, at)
        if value is not None:
            found.value = value + (found.value or 0.0)
    return conversions


def _rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield (``path:line``, row) for every row of a CSV or JSON Lines file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read outcomes {str(path)!r}: {exc.strerror}") from exc
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read outcomes {str(path)!r}: {exc}") from exc
    if text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{number}: expected a JSON object")
            yield f"{path}:{number}", row
        return
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        yield f"{path}:{reader.line_num}", row


def _pick(row: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((row[key] for key in keys if row.get(key) not in (None, "")), None)


def _parse(where: str, row: Mapping[str, Any]) -> tuple[str, str, int, float | None]:
    user, account = _pick(row, _USER_KEYS), _pick(row, _ACCOUNT_KEYS)
    if (user is None) == (account is None):
        raise ConfigError(f"{where}: give exactly one of 'user' and 'account'")
    subject, subject_id = ("user", user) if user is not None else ("account", account)
    when = _pick(row, _TIME_KEYS)
    try:
        at = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ConfigError(f"{where}: 'time' must be ISO-8601 with a timezone, not {when!r}")
    value = _pick(row, ("value",))
    if value is not None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or isinstance(row.get("value"), bool):
            raise ConfigError(f"{where}: 'value' must be a number, not {row.get('value')!r}")
    return subject, str(subject_id), micros(at), value
