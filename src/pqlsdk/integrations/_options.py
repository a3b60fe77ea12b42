"""The integrations' options: one table, one reader, the same errors in Flask and Django.

Flask reads ``app.config["PQLSDK_STORE"]``, Django ``settings.PQLSDK["STORE"]``:
the same option under two spellings. Each framework hands ``read()`` the
options it found (by bare name: ``STORE``), says how its users spell a key,
and gets back the values and every problem, each message naming the key as
the user wrote it. So a mistake reads the same in both, an option added here
reaches both, and the configuration page's table is drawn from ``OPTIONS``
(``tests/docs/test_configuration.py`` checks that it is).

Nothing here imports a framework: the frameworks import this.
"""

from __future__ import annotations

import difflib
import pkgutil
from collections.abc import Callable, Mapping
from datetime import timedelta
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import attrs
import msgspec

from .. import DEFAULT_STORE, Client, Clock, Delivery
from .._exceptions import ConfigError, RulesError
from .._retry import RetryPolicy
from ..rules import Rules, load
from ..stores import Store

__all__ = ["OPTIONS", "Framework", "Option", "Problem", "Read", "open_client", "read"]

Framework = Literal["flask", "django"]
BOTH: Final[frozenset[Framework]] = frozenset({"flask", "django"})


class InvalidOptionError(Exception):
    """An option's value is wrong: ``code`` (Django's check id) and what to say after the key.

    Internal: ``read()`` turns each into a ``Problem``; users see ``ConfigError``.
    """

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@attrs.frozen
class Problem:
    """One mistake: Django's check id (``E004``) and the message, naming the key as spelled."""

    code: str
    message: str


@attrs.frozen
class Context:
    """What a value's reader may need besides the value."""

    base: Path
    """Where a relative SQLite path lands: Flask's instance folder, Django's ``BASE_DIR``."""


Reader = Callable[[object, Context], object]


@attrs.frozen
class Option:
    """One row of the table: the key's bare name, the ``Client`` keyword, how a value is read."""

    name: str
    keyword: str | None
    """The ``pqlsdk.Client`` keyword the value goes to; None for the integration's own."""
    accepts: str
    default: str
    meaning: str
    reader: Reader
    frameworks: frozenset[Framework] = BOTH
    missing: object = None
    """The value when the key is absent (a reader's input, like a given value)."""


# -- readers: the value in, the checked value out, or InvalidOptionError ----------


def _wrong(accepts: str, value: object) -> InvalidOptionError:
    return InvalidOptionError("E004", f" must be {accepts}, got {value!r}")


def _rules(value: object, context: Context) -> Rules:
    if isinstance(value, Rules):
        return value
    if value is None:
        raise InvalidOptionError("E005", " is required: the path of your rules file")
    if not isinstance(value, str | PathLike):
        raise _wrong(_RULES, value)
    path = Path(value)
    if not path.is_file():
        raise InvalidOptionError("E006", f": {str(path)!r} is not a file")
    try:
        return load(path)
    except (RulesError, OSError) as exc:
        raise InvalidOptionError("E007", f" does not load: {exc}") from exc


def _store(value: object, context: Context) -> str | Store:
    if isinstance(value, Store):
        return value
    if not isinstance(value, str):
        raise _wrong(_STORE, value)
    parts = urlsplit(value)
    if parts.scheme in ("redis", "rediss") or value == "memory://":
        return value
    if parts.scheme != "sqlite" or parts.netloc or len(parts.path) < 2:
        raise InvalidOptionError(
            "E010",
            f": {value!r} is not a store URL: write memory://, sqlite:///relative.db, "
            "sqlite:////absolute.db or redis://host:port/db (rediss:// for TLS)",
        )
    path = Path(parts.path[1:])
    return value if path.is_absolute() else f"sqlite:///{context.base.resolve() / path}"


def _endpoint(value: object, context: Context) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong("an http(s) URL or None", value)
    if urlsplit(value).scheme not in ("http", "https"):
        raise InvalidOptionError("E010", f" must be an http(s) URL, got {value!r}")
    return value


def _optional_text(value: object, context: Context) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise _wrong("a non-empty string or None", value)


def _text(value: object, context: Context) -> str:
    if isinstance(value, str) and value:
        return value
    raise _wrong("a non-empty string", value)


def _flag(value: object, context: Context) -> bool:
    if isinstance(value, bool):
        return value
    raise _wrong("True or False", value)


def _clock(value: object, context: Context) -> Clock | None:
    if value is None or isinstance(value, Clock):
        return value
    raise _wrong("a pqlsdk.Clock or None", value)


def _gate_fallback(value: object, context: Context) -> str:
    if value in ("allow", "deny"):
        return str(value)
    raise InvalidOptionError("E010", f' must be "allow" or "deny", got {value!r}')


def _retention(value: object, context: Context) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = timedelta(days=value)
    if not isinstance(value, timedelta):
        raise _wrong("a timedelta, a whole number of days or None", value)
    if value <= timedelta(0):
        raise InvalidOptionError("E010", f" must be positive or None, got {value!r}")
    return value


def _fields(given: Mapping[Any, Any], kind: type[msgspec.Struct], where: str) -> None:
    """Refuse a field ``kind`` does not have, suggesting the nearest (msgspec ignores them)."""
    known = kind.__struct_fields__
    for key in given:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise InvalidOptionError(
                "E010",
                f": {where}{key!r} is not a {kind.__name__} field{hint}; known: {', '.join(known)}",
            )


def _delivery(value: object, context: Context) -> Delivery | None:
    if value is None or isinstance(value, Delivery):
        return value
    if not isinstance(value, Mapping):
        raise _wrong("a pqlsdk.Delivery, a mapping of its fields or None", value)
    _fields(value, Delivery, "")
    retry = value.get("retry")
    if isinstance(retry, Mapping):
        _fields(retry, RetryPolicy, "retry: ")
    try:
        return msgspec.convert(dict(value), Delivery)
    except msgspec.ValidationError as exc:
        raise InvalidOptionError("E010", f": not a Delivery: {exc}") from exc


def _callable(value: object, context: Context) -> Callable[..., object] | None:
    if value is None:
        return None
    target = value
    if isinstance(value, str):
        try:
            target = pkgutil.resolve_name(value)
        except (ImportError, AttributeError, ValueError) as exc:
            raise InvalidOptionError("E008", f": cannot import {value!r}: {exc}") from exc
    if not callable(target):
        raise InvalidOptionError("E008", f": {value!r} is not callable")
    return target


def _url_prefix(value: object, context: Context) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidOptionError("E010", f" must be a path starting with '/', got {value!r}")
    return value.rstrip("/")


def _seconds(value: object, context: Context) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _wrong("a positive whole number of seconds", value)
    return value


_RULES: Final = "a path (str or Path) or loaded pqlsdk.Rules"
_STORE: Final = "a store URL or a pqlsdk.stores.Store"
_CALLABLE: Final = "a callable or a dotted path to one"

OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "RULES",
        "rules",
        _RULES,
        "required",
        "the rules file, loaded when the configuration is read (a broken file "
        "is reported with its file, line and column)",
        _rules,
    ),
    Option(
        "STORE",
        "store",
        _STORE,
        f"`{DEFAULT_STORE}`",
        "where state lives: `memory://`, `sqlite:///relative.db` (in Flask's instance "
        "folder, Django's `BASE_DIR`), `sqlite:////absolute.db`, `redis://host:port/db`",
        _store,
        missing=DEFAULT_STORE,
    ),
    Option(
        "ENDPOINT",
        "endpoint",
        "an http(s) URL or None",
        "`None`",
        "the collector; needs `WRITE_KEY`; without it nothing leaves the process",
        _endpoint,
    ),
    Option(
        "WRITE_KEY",
        "write_key",
        "a non-empty string or None",
        "`None`",
        "the collector's write key; needs `ENDPOINT`",
        _optional_text,
    ),
    Option(
        "STRICT",
        "strict",
        "True or False",
        "`False`",
        "raise run-time faults instead of logging them; for tests",
        _flag,
        missing=False,
    ),
    Option(
        "CLOCK",
        "clock",
        "a pqlsdk.Clock or None",
        "the system clock",
        "where every 'now' comes from: `FixedClock` in tests and demos",
        _clock,
    ),
    Option(
        "GATE_FALLBACK",
        "gate_fallback",
        '"allow" or "deny"',
        '`"allow"`',
        "what a gate answers when the store cannot be read (a Redis outage)",
        _gate_fallback,
        missing="allow",
    ),
    Option(
        "RETENTION",
        "retention",
        "a timedelta, a whole number of days or None",
        "400 days",
        "how long the raw message log keeps messages; `None` keeps them forever",
        _retention,
        missing=timedelta(days=400),
    ),
    Option(
        "DELIVERY",
        "delivery",
        "a pqlsdk.Delivery, a mapping of its fields or None",
        "`Delivery()`",
        'batching, retry and durability, e.g. `{"flush_at": 50, "retry": '
        '{"budget": 60}}`; [fields](#delivery)',
        _delivery,
    ),
    Option(
        "ON_ERROR",
        "on_error",
        f"{_CALLABLE}, or None",
        "`None`",
        "called with a `DeliveryError` when the collector refuses a batch",
        _callable,
    ),
    Option(
        "ON_TIER_CHANGE",
        "on_tier_change",
        f"{_CALLABLE}, or None",
        "`None`",
        "called with a `TierChange` when a user or account moves to another tier",
        _callable,
    ),
    Option(
        "UPGRADE_URL",
        None,
        "a non-empty string",
        '`"/"`',
        "where a clicked call to action goes (Django: also a URL name)",
        _text,
        missing="/",
    ),
    Option(
        "URL_PREFIX",
        None,
        "a path starting with '/'",
        '`"/pqlsdk"`',
        "where the blueprint is mounted (Django: where you `include()` the URLs)",
        _url_prefix,
        frozenset({"flask"}),
        missing="/pqlsdk",
    ),
    Option(
        "CSRF_MAX_AGE",
        None,
        "a positive whole number of seconds",
        "`86400` (a day)",
        "how long a CSRF token stays valid (Django: its own CSRF settings)",
        _seconds,
        frozenset({"flask"}),
        missing=86_400,
    ),
    Option(
        "USER",
        None,
        f"{_CALLABLE}, or None",
        "the signed-in user's primary key",
        "takes the request, returns the user's id or None (Flask: `PQLSDK(user=...)`)",
        _callable,
        frozenset({"django"}),
    ),
    Option(
        "ACCOUNT",
        None,
        f"{_CALLABLE}, or None",
        "`None`",
        "the same, for the user's account id (Flask: `PQLSDK(account=...)`)",
        _callable,
        frozenset({"django"}),
    ),
)
_BY_NAME: Final = {option.name: option for option in OPTIONS}


@attrs.frozen
class Read:
    """What ``read()`` found: the checked values by bare name, and every problem."""

    values: dict[str, Any]
    problems: list[Problem]

    def keywords(self) -> dict[str, Any]:
        """Return the ``pqlsdk.Client`` keywords (absent keys at their defaults)."""
        return {
            option.keyword: self.values[option.name]
            for option in OPTIONS
            if option.keyword is not None and option.name in self.values
        }

    def raise_errors(self) -> None:
        """Raise one ``ConfigError`` listing every problem, if there is one."""
        if self.problems:
            raise ConfigError("; ".join(problem.message for problem in self.problems))


def read(
    given: Mapping[str, object],
    *,
    framework: Framework,
    spell: Callable[[str], str],
    base: Path,
    client_given: bool = False,
) -> Read:
    """Check ``given`` (bare names to values) for ``framework``; collect every problem.

    ``spell`` turns a bare name into the key as the user wrote it
    (``PQLSDK_STORE``, ``PQLSDK['STORE']``). With ``client_given`` (Flask's
    ``PQLSDK(client=...)``) the client's options are not read: the host built it.
    """
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    mine = [option for option in OPTIONS if framework in option.frameworks]
    for key in given:
        option = _BY_NAME.get(key)
        if option is not None and framework in option.frameworks:
            continue
        if option is not None:
            (other,) = option.frameworks
            only = other.title()
            text = f"{spell(key)} is not a {framework.title()} option (only {only} reads it)"
        else:
            near = difflib.get_close_matches(str(key), [o.name for o in mine], n=1)
            hint = f" (did you mean {spell(near[0])}?)" if near else ""
            text = f"{spell(str(key))} is not an option{hint}"
        problems.append(Problem("E003", text))
    context = Context(base=base)
    for option in mine:
        if client_given and option.keyword is not None:
            continue
        try:
            values[option.name] = option.reader(given.get(option.name, option.missing), context)
        except InvalidOptionError as exc:
            problems.append(Problem(exc.code, f"{spell(option.name)}{exc.text}"))
    # Both or neither (the client's rule, checked here so it fails at setup, not on first use).
    if "ENDPOINT" in values and "WRITE_KEY" in values:
        endpoint, write_key = values["ENDPOINT"], values["WRITE_KEY"]
        if write_key is not None and endpoint is None:
            text = f"{spell('WRITE_KEY')} needs {spell('ENDPOINT')} (the collector's URL)"
            problems.append(Problem("E009", text))
        if endpoint is not None and write_key is None:
            text = f"{spell('ENDPOINT')} needs {spell('WRITE_KEY')} (the collector's write key)"
            problems.append(Problem("E009", text))
    return Read(values, problems)


def open_client(options: Read) -> Client:
    """Build the client the options describe; a SQLite file's folder is made first."""
    keywords = options.keywords()
    store = keywords["store"]
    if isinstance(store, str) and store.startswith("sqlite:///"):
        Path(store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return Client(**keywords)
