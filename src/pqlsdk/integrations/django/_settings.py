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
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from ..._client import Client
from ..._exceptions import ConfigError, RulesError
from ...rules import Rules, load

__all__ = ["KEYS", "Config", "Problem", "client", "close", "config", "problems"]

Resolver = Callable[[Any], object]
"""``USER`` and ``ACCOUNT``: the request in, an id (or None) out."""

# key -> (accepted types, how to say it); None means "may be None".
_TYPES: Final[dict[str, tuple[tuple[type, ...], str]]] = {
    "RULES": ((str, PathLike), "a path (str or Path)"),
    "STORE": ((str,), "a store URL string"),
    "ENDPOINT": ((str, type(None)), "a URL string or None"),
    "WRITE_KEY": ((str, type(None)), "a string or None"),
    "UPGRADE_URL": ((str,), "a path, URL or URL name"),
    "STRICT": ((bool,), "True or False"),
    "USER": ((str, type(None)), "a dotted path, a callable or None"),
    "ACCOUNT": ((str, type(None)), "a dotted path, a callable or None"),
}
KEYS: Final = frozenset(_TYPES)
_CALLABLES: Final = ("USER", "ACCOUNT")
_HINT: Final = "See the docstring of pqlsdk.integrations.django for every key."


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
    """``settings.PQLSDK`` after every check passed."""

    rules: Rules
    store: str
    endpoint: str | None
    write_key: str | None
    upgrade_url: str
    strict: bool
    user: Resolver | None
    account: Resolver | None


def _default_store() -> str:
    base = getattr(settings, "BASE_DIR", None)
    folder = Path(base) if isinstance(base, str | PathLike) else Path.cwd()
    return f"sqlite:///{folder.resolve() / 'pqlsdk.db'}"


def _resolver(key: str, given: object, found: list[Problem]) -> Resolver | None:
    if given is None:
        return None
    target = given
    if isinstance(given, str):
        try:
            target = import_string(given)
        except ImportError as exc:
            found.append(Problem("E008", f"PQLSDK[{key!r}]: cannot import {given!r}: {exc}"))
            return None
    if not callable(target):
        found.append(Problem("E008", f"PQLSDK[{key!r}]: {given!r} is not callable"))
        return None
    return target


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
    found: list[Problem] = []
    unknown = sorted(str(key) for key in given if key not in KEYS)
    if unknown:
        found.append(
            Problem(
                "E003",
                f"unknown key(s) in settings.PQLSDK: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(KEYS))}",
            )
        )
    for key, (types, wanted) in _TYPES.items():
        value = given.get(key)
        if (
            key in given
            and not isinstance(value, types)
            and not (key in _CALLABLES and callable(value))
        ):
            found.append(
                Problem("E004", f"PQLSDK[{key!r}] must be {wanted}, got {type(value).__name__}")
            )
    if any(problem.id == "E004" for problem in found):
        return found, None
    resolvers = {key: _resolver(key, given.get(key), found) for key in _CALLABLES}
    if given.get("WRITE_KEY") is not None and given.get("ENDPOINT") is None:
        found.append(
            Problem("E009", "PQLSDK['WRITE_KEY'] needs PQLSDK['ENDPOINT'] (the collector)")
        )
    rules = _rules(given, found)
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
    if rules is None or any(problem.error for problem in found):
        return found, None
    return found, Config(
        rules=rules,
        store=given.get("STORE", _default_store()),
        endpoint=given.get("ENDPOINT"),
        write_key=given.get("WRITE_KEY"),
        upgrade_url=given.get("UPGRADE_URL", "/"),
        strict=given.get("STRICT", False),
        user=resolvers["USER"],
        account=resolvers["ACCOUNT"],
    )


def _rules(given: Mapping[str, Any], found: list[Problem]) -> Rules | None:
    if "RULES" not in given:
        found.append(Problem("E005", "PQLSDK['RULES'] is required: the path of your rules file"))
        return None
    path = Path(given["RULES"])
    if not path.is_file():
        found.append(Problem("E006", f"PQLSDK['RULES']: {str(path)!r} is not a file"))
        return None
    try:
        return load(path)
    except (RulesError, OSError) as exc:
        found.append(
            Problem(
                "E007",
                f"PQLSDK['RULES'] does not load: {exc}",
                f"`pqlsdk check {path}` checks the file alone.",
            )
        )
        return None


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
                _held.client = Client(
                    store=settings_.store,
                    rules=settings_.rules,
                    endpoint=settings_.endpoint,
                    write_key=settings_.write_key,
                    strict=settings_.strict,
                )
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
