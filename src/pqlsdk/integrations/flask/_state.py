"""Per-app state: the app's client, built on first use, and the current request's user."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from cachetools import LRUCache
from flask import current_app, g

from ..._client import Client
from ..._exceptions import ConfigError
from ..._lifecycle import watch
from .._options import open_client
from ._settings import _Settings

if TYPE_CHECKING:
    from ._extension import PQLSDK

try:
    import flask_login  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - the dev group installs flask-login
    flask_login = None

__all__: list[str] = []

_EXTENSION: Final = "pqlsdk"
_ACCOUNTS_REMEMBERED: Final = 10_000

# Memo keys in flask.g (one request).
_USER: Final = "_pqlsdk_user"


class _State:
    """What one app holds in ``app.extensions["pqlsdk"]``: settings and its client."""

    def __init__(self, extension: PQLSDK, settings: _Settings, client: Client | None) -> None:
        self.extension = extension
        self.settings = settings
        self._client = client
        self._built: Client | None = None
        self._lock = threading.Lock()
        # user -> account already linked by this process: one group() each, not one a request.
        self._accounts: LRUCache[str, str] = LRUCache(maxsize=_ACCOUNTS_REMEMBERED)
        watch(self)

    def after_fork(self) -> None:
        """Take a fresh lock in a forked child: a request thread may have held it at the fork."""
        self._lock = threading.Lock()

    def client(self) -> Client:
        """Return the client given, or build this app's on first use in this process."""
        with self._lock:  # uncontended after the first call: tens of nanoseconds
            if self._client is None:
                self._client = self._built = self._build()
            return self._client

    def _build(self) -> Client:
        return open_client(self.settings.options)

    def close(self, timeout: float | None) -> None:
        """Close the client built for this app (a given one is the host's); rebuild on next use."""
        with self._lock:
            built, self._built = self._built, None
            if built is None:
                return
            self._client = None
        built.close(timeout)

    def user(self) -> str | None:
        """Return the current user's id, resolved once a request."""
        if _USER not in g:
            loader = self.extension._user_loader
            found = _flask_login_user() if loader is None else loader()
            setattr(g, _USER, None if found is None else str(found))
        user: str | None = g.get(_USER)
        return user

    def subject(self) -> str | None:
        """Return the current user's id, linking their account first when a loader gives one."""
        user = self.user()
        loader = self.extension._account_loader
        if user is None or loader is None:
            return user
        found = loader()
        if found is None:
            return user
        account = str(found)
        with self._lock:
            if self._accounts.get(user) == account:
                return user
            self._accounts[user] = account
        self.client().group(user, account)
        return user


def _state() -> _State:
    try:
        state: _State = current_app.extensions[_EXTENSION]
    except KeyError:
        raise ConfigError(
            f"PQLSDK is not set up on app {current_app.name!r}: call init_app(app)"
        ) from None
    return state


def _flask_login_user() -> str | None:
    """flask-login's authenticated user, when the app uses flask-login; else None."""
    if flask_login is None or getattr(current_app, "login_manager", None) is None:
        return None
    user = flask_login.current_user
    if not user.is_authenticated:
        return None
    found: str | None = user.get_id()
    return found
