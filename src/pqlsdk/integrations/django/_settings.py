"""``settings.PQLSDK``: read once, checked in one place, and the client built from it.

``problems()`` is the single reader of the setting: the system check reports
what it finds, and ``config()`` raises it as a ``ConfigError`` when a request
needs the configuration anyway (a setup mistake fails loudly, never
silently). Both the configuration and the client are kept until the setting
changes (``override_settings`` in tests) or ``close()`` is called.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Final

import attrs
from django.conf import settings  # type: ignore[import-untyped]

from ..._client import Client
from ..._exceptions import ConfigError
from ...rules import Rules
from .._options import OPTIONS, Read, open_client, read

__all__ = ["KEYS", "Config", "Problem", "client", "close", "config", "problems"]

Resolver = Callable[[Any], object]
"""``USER`` and ``ACCOUNT``: the request in, an id (or None) out."""

KEYS: Final = frozenset(option.name for option in OPTIONS if "django" in option.frameworks)
_HINT: Final = "See the configuration reference (docs/configuration.md) for every key."


@attrs.frozen
class Problem:
    """One finding of the check: an id (``E001``, ``W001``), what is wrong, how to fix it."""

    id: str
    message: str
    hint: str = _HINT

    @property
    def error(self) -> bool:
        """Errors stop the client from being built; warnings do not."""
        return self.id.startswith("E")


@attrs.frozen
class Config:
    """``settings.PQLSDK`` after every check passed: the client's options and the app's own."""

    options: Read
    upgrade_url: str
    user: Resolver | None
    account: Resolver | None


def _base() -> Path:
    """Where a relative SQLite path lands: ``BASE_DIR``, else the working directory."""
    base = getattr(settings, "BASE_DIR", None)
    return Path(base) if isinstance(base, str | PathLike) else Path.cwd()


def _spell(name: str) -> str:
    return f"PQLSDK[{name!r}]"


def problems() -> tuple[list[Problem], Config | None]:
    """Check ``settings.PQLSDK``; return every problem and, without errors, the config.

    Loads the rules file (that is the only way to know it loads), so a
    ``RulesError`` shows here with its file, line and column.
    """
    if not hasattr(settings, "PQLSDK"):
        return [
            Problem(
                "E001",
                "settings.PQLSDK is missing",
                "Add PQLSDK = {'RULES': BASE_DIR / 'rules.toml'} to your settings.",
            )
        ], None
    given = settings.PQLSDK
    if not isinstance(given, Mapping):
        return [
            Problem("E002", f"settings.PQLSDK must be a dict, got {type(given).__name__}")
        ], None
    _hints = {"E007": f"`pqlsdk check {given.get('RULES')}` checks the file alone."}
    options = read(given, framework="django", spell=_spell, base=_base())
    found = [
        Problem(problem.code, problem.message, _hints.get(problem.code, _HINT))
        for problem in options.problems
    ]
    rules: Rules | None = options.values.get("RULES")
    if rules is not None:
        if rules.entitlements is None:
            found.append(
                Problem(
                    "W001",
                    f"{rules.origin} has no [entitlements]: require_feature() and gates will fail",
                )
            )
        if rules.moments is None:
            found.append(
                Problem(
                    "W002",
                    f"{rules.origin} has no [moment.*] tables: "
                    "{% pqlsdk_moment %} and moment/ will fail",
                )
            )
    if any(problem.error for problem in found):
        return found, None
    return found, Config(
        options=options,
        upgrade_url=options.values["UPGRADE_URL"],
        user=options.values["USER"],
        account=options.values["ACCOUNT"],
    )


class _Held:
    """The process's configuration and client, replaced together under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config: Config | None = None
        self.client: Client | None = None


_held = _Held()


def config() -> Config:
    """Return the checked configuration; raise ``ConfigError`` listing every error."""
    found = _held.config
    if found is None:
        with _held.lock:
            if _held.config is None:  # pragma: no branch - else: another thread built it first
                listed, _held.config = problems()
                if _held.config is None:
                    errors = "; ".join(f"pqlsdk.{p.id}: {p.message}" for p in listed if p.error)
                    raise ConfigError(f"settings.PQLSDK: {errors} (manage.py check lists them)")
            found = _held.config
    return found


def client() -> Client:
    """Return the process's ``pqlsdk.Client``, built from ``settings.PQLSDK`` on first use.

    Added in version 0.1.0.
    """
    found = _held.client
    if found is None:
        settings_ = config()
        with _held.lock:
            if _held.client is None:  # pragma: no branch - else: another thread built it first
                _held.client = open_client(settings_.options)
            found = _held.client
    return found


def close(timeout: float | None = 10.0) -> None:
    """Close the client (delivering what is pending) and forget it and the configuration.

    The next ``client()`` reads ``settings.PQLSDK`` again and opens a new
    client. Called when the setting changes; call it yourself when a command
    hands the store to another process.

    Added in version 0.1.0.
    """
    with _held.lock:
        closing, _held.client, _held.config = _held.client, None, None
    if closing is not None:
        closing.close(timeout)
