"""The extension object: ``PQLSDK``, set up on each app with ``init_app``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from flask import Flask
from flask.typing import ResponseReturnValue

from ..._client import Client
from ..._exceptions import ConfigError
from ._endpoints import _blueprint
from ._settings import _Settings
from ._state import _EXTENSION, _State, _state
from ._views import (
    _P,
    OnDenied,
    pqlsdk_csrf_token,
    pqlsdk_gate_moment,
    pqlsdk_moment,
    require_feature,
)

__all__ = ["PQLSDK", "Loader"]

Loader: TypeAlias = Callable[[], object]
"""A user or account loader: returns an id (a str, or anything ``str()`` makes one) or None."""


class PQLSDK:
    """The Flask extension: one object may serve several apps (``init_app`` on each).

    ``client`` shares one ``pqlsdk.Client`` across the apps (the extension
    then reads no store, rules or delivery settings); without it each app gets
    its own client, built from its config on first use. ``user`` and
    ``account`` are loaders (see the module docstring).

    Added in version 0.1.0.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        client: Client | None = None,
        user: Loader | None = None,
        account: Loader | None = None,
    ) -> None:
        if client is not None and not isinstance(client, Client):
            raise ConfigError(f"client must be a pqlsdk.Client, got {type(client).__name__}")
        self._client = client
        self._user_loader = user
        self._account_loader = account
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check ``app.config``, mount the blueprint and add the template globals.

        Opens nothing: the client is built on first use. Raises ``ConfigError``
        naming the key for a missing or bad setting.

        Added in version 0.1.0.
        """
        if _EXTENSION in app.extensions:
            raise ConfigError(f"PQLSDK is already set up on app {app.name!r}")
        settings = _Settings.read(app, given_client=self._client is not None)
        app.extensions[_EXTENSION] = _State(self, settings, self._client)
        app.register_blueprint(_blueprint(), url_prefix=settings.url_prefix)
        app.add_template_global(pqlsdk_moment)
        app.add_template_global(pqlsdk_gate_moment)
        app.add_template_global(pqlsdk_csrf_token)

    def user_id(self, loader: Loader) -> Loader:
        """Register the function that returns the current user's id (a decorator).

        Added in version 0.1.0.
        """
        self._user_loader = loader
        return loader

    def account_id(self, loader: Loader) -> Loader:
        """Register the function that returns the current user's account id (a decorator).

        Added in version 0.1.0.
        """
        self._account_loader = loader
        return loader

    @staticmethod
    def require_feature(
        feature: str, *, on_denied: OnDenied = "prompt", redirect_to: str | None = None
    ) -> Callable[[Callable[_P, ResponseReturnValue]], Callable[_P, ResponseReturnValue]]:
        """``require_feature`` (the module function), reachable from the extension object.

        Added in version 0.1.0.
        """
        return require_feature(feature, on_denied=on_denied, redirect_to=redirect_to)

    @property
    def client(self) -> Client:
        """The current app's client, built on first use.

        Added in version 0.1.0.
        """
        return _state().client()

    def current_user_id(self) -> str | None:
        """Return the current request's user id, as the loader (or flask-login) gives it.

        Added in version 0.1.0.
        """
        return _state().user()

    def close(self, app: Flask, timeout: float | None = 10.0) -> None:
        """Close the client this extension built for ``app``, if it built one.

        Not needed in production (exit hooks deliver what is left); for tests
        and scripts that create many apps. A client passed in is left open.

        Added in version 0.1.0.
        """
        app.extensions[_EXTENSION].close(timeout)
