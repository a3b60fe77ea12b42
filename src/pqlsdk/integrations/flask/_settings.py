"""The extension's options: the ``PQLSDK_*`` keys of ``app.config``, checked at ``init_app``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from ..._client import DEFAULT_STORE
from ..._clock import Clock
from ..._exceptions import ConfigError
from ...rules import Rules, load
from ...stores import Store

__all__: list[str] = []


# -- configuration and per-app state ----------------------------------------------


class _Settings:
    """An app's ``PQLSDK_*`` settings, checked."""

    def __init__(
        self,
        *,
        store: str | Store,
        rules: Rules | None,
        endpoint: str | None,
        write_key: str | None,
        strict: bool,
        clock: Clock | None,
        upgrade_url: str,
        url_prefix: str,
        csrf_max_age: int,
    ) -> None:
        self.store = store
        self.rules = rules
        self.endpoint = endpoint
        self.write_key = write_key
        self.strict = strict
        self.clock = clock
        self.upgrade_url = upgrade_url
        self.url_prefix = url_prefix
        self.csrf_max_age = csrf_max_age

    @classmethod
    def read(cls, app: Flask, *, given_client: bool) -> _Settings:
        """Read and check ``app.config``; raise ``ConfigError`` naming the key at fault."""
        config = app.config
        if not config.get("SECRET_KEY"):
            raise ConfigError("SECRET_KEY is not set: pqlsdk signs its CSRF tokens with it")
        rules: Rules | None = None
        store: str | Store = DEFAULT_STORE
        endpoint = write_key = None
        strict = False
        clock = None
        if not given_client:
            rules = _rules(config.get("PQLSDK_RULES"))
            store = _store(config.get("PQLSDK_STORE", DEFAULT_STORE), app.instance_path)
            endpoint = _optional_str(config, "PQLSDK_ENDPOINT")
            write_key = _optional_str(config, "PQLSDK_WRITE_KEY")
            if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
                raise ConfigError(f"PQLSDK_ENDPOINT must be an http(s) URL, got {endpoint!r}")
            if write_key is not None and endpoint is None:
                raise ConfigError("PQLSDK_WRITE_KEY needs PQLSDK_ENDPOINT (the collector's URL)")
            strict = _bool(config, "PQLSDK_STRICT")
            clock = config.get("PQLSDK_CLOCK")
            if clock is not None and not isinstance(clock, Clock):
                raise ConfigError(f"PQLSDK_CLOCK must be a pqlsdk.Clock, got {clock!r}")
        upgrade_url = _optional_str(config, "PQLSDK_UPGRADE_URL") or "/"
        prefix = _optional_str(config, "PQLSDK_URL_PREFIX") or "/pqlsdk"
        if not prefix.startswith("/"):
            raise ConfigError(f"PQLSDK_URL_PREFIX must start with '/', got {prefix!r}")
        max_age = config.get("PQLSDK_CSRF_MAX_AGE", 86_400)
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
            raise ConfigError(f"PQLSDK_CSRF_MAX_AGE must be positive seconds, got {max_age!r}")
        return cls(
            store=store,
            rules=rules,
            endpoint=endpoint,
            write_key=write_key,
            strict=strict,
            clock=clock,
            upgrade_url=upgrade_url,
            url_prefix=prefix.rstrip("/"),
            csrf_max_age=max_age,
        )


def _rules(value: object) -> Rules:
    if value is None:
        raise ConfigError("PQLSDK_RULES is not set: give the rules file's path (or pass client=)")
    if isinstance(value, Rules):
        return value
    if not isinstance(value, str | Path):
        raise ConfigError(f"PQLSDK_RULES must be a path or Rules, got {type(value).__name__}")
    try:
        return load(value)
    except ConfigError as exc:
        raise ConfigError(f"PQLSDK_RULES: {exc}") from exc


def _store(value: object, instance_path: str) -> str | Store:
    if isinstance(value, Store):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"PQLSDK_STORE must be a URL or a Store, got {type(value).__name__}")
    if value == "memory://":
        return value
    parts = urlsplit(value)
    if parts.scheme != "sqlite" or parts.netloc or len(parts.path) < 2:
        raise ConfigError(
            f"PQLSDK_STORE {value!r}: write memory://, sqlite:///relative.db "
            "(in the app's instance folder) or sqlite:////absolute.db"
        )
    path = Path(parts.path[1:])
    if path.is_absolute():
        return value
    return f"sqlite:///{Path(instance_path) / path}"


def _optional_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or (isinstance(value, str) and value):
        return value
    raise ConfigError(f"{key} must be a non-empty string, got {value!r}")


def _bool(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be True or False, got {value!r}")
    return value
