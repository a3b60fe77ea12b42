"""A Flask extension: feature gates on views, moments in templates, outcomes from the browser.

Usage:

```python
from pqlsdk.integrations.flask import PQLSDK

pqlsdk = PQLSDK()                       # one object, any number of apps

def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "..."    # signs pqlsdk's CSRF tokens
    app.config["PQLSDK_RULES"] = "rules/playbook.toml"
    pqlsdk.init_app(app)
    return app

@pqlsdk.user_id                         # optional: flask-login's current_user by default
def current_user_id() -> str | None:
    return session.get("uid")

@app.get("/settings/sso")
@pqlsdk.require_feature("sso")          # denied: a 403 page with the upgrade prompt
def sso_settings() -> str: ...
```

and ``{{ pqlsdk_moment() }}`` in a layout renders the user's moment (a trial
notice, an upgrade nudge) with its two buttons, which post to the extension's
blueprint (``/pqlsdk/outcome``) and come back.

Configuration, read from ``app.config`` by ``init_app`` (a mistake raises
``pqlsdk.ConfigError`` naming the key there, not on the first request):

- ``PQLSDK_RULES``: the rules file (a path or loaded ``Rules``); required
  unless the extension was given a ``client``. Loaded at ``init_app``.
- ``PQLSDK_STORE``: a store URL or a ``Store``; default ``sqlite:///pqlsdk.db``.
  A relative SQLite path is resolved in ``app.instance_path`` (as
  Flask-SQLAlchemy does), so the file lands beside the app's other instance files.
- ``PQLSDK_ENDPOINT`` and ``PQLSDK_WRITE_KEY``: the collector, if any.
- ``PQLSDK_STRICT``: a strict client, for tests (faults raise).
- ``PQLSDK_CLOCK``: a ``pqlsdk.Clock`` (``FixedClock`` in tests and demos).
- ``PQLSDK_UPGRADE_URL``: where a click on a moment's call to action goes
  (default ``"/"``); a dismissal goes back to the page it came from.
- ``PQLSDK_URL_PREFIX``: where the blueprint is mounted (default ``/pqlsdk``).
- ``PQLSDK_CSRF_MAX_AGE``: seconds a CSRF token stays valid (default a day).

The client is built on first use in each process, not at ``init_app``, so an
app created before ``gunicorn --preload`` forks opens nothing in the master;
a client that exists before a fork survives it anyway. It is never closed per
request: pqlsdk's own exit hooks apply, commit and deliver what it holds when
the interpreter exits. A ``client`` passed in is the host's to close.

The current user comes from a ``user_loader()`` returning an id or None (the
``user`` argument or the ``@ext.user_id`` decorator); without one, from
flask-login's ``current_user.get_id()`` when the app has a ``LoginManager``
and the user is authenticated. An ``account`` loader (or ``@ext.account_id``)
links the user to their account (a ``group`` call, once per user and account
per process), so account signals score.

CSRF: the outcome endpoint accepts a token signed with the app's
``SECRET_KEY`` (bound to the user's id, time-limited): the template's forms
carry it in a hidden field, and single-page apps send it as the header
``X-PQLSDK-CSRF`` (from ``{{ pqlsdk_csrf_token() }}``) with a JSON body
(Content-Type ``application/json``; anything else is refused). Flask-WTF's
``CSRFProtect``, when the host installs it, checks every POST first and does
not know pqlsdk's token: exempt the blueprint, which checks its own,
``csrf.exempt(app.blueprints["pqlsdk"])`` (single-page apps may instead send
both tokens).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import cached_property, wraps
from pathlib import Path
from typing import Any, Final, Literal, ParamSpec, TypeAlias, get_args
from urllib.parse import urlsplit

from cachetools import LRUCache

from .._client import DEFAULT_STORE, Client
from .._clock import Clock
from .._exceptions import ConfigError, InvalidMessageError
from .._lifecycle import watch
from .._moments import Moment
from ..rules import Rules, load
from ..stores import Store
from . import _web

try:
    from flask import (
        Blueprint,
        Flask,
        Response,
        abort,
        current_app,
        g,
        has_request_context,
        jsonify,
        redirect,
        render_template,
        request,
        url_for,
    )
    from flask.typing import ResponseReturnValue
    from itsdangerous import BadSignature, URLSafeTimedSerializer
    from jinja2 import BaseLoader, FileSystemLoader
    from markupsafe import Markup
except ImportError as exc:  # pragma: no cover - the test set-up installs every extra
    raise ImportError("pqlsdk.integrations.flask needs Flask: pip install 'pqlsdk[flask]'") from exc

try:
    import flask_login  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - the dev group installs flask-login
    flask_login = None

__all__ = [
    "BLOCKED_TEMPLATE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PQLSDK",
    "OnDenied",
    "pqlsdk_csrf_token",
    "pqlsdk_gate_moment",
    "pqlsdk_moment",
    "require_feature",
]

_P = ParamSpec("_P")

OnDenied: TypeAlias = Literal["prompt", "403", "redirect"]
"""What ``require_feature`` answers a denial with.

Added in version 0.1.0.
"""

Loader: TypeAlias = Callable[[], object]
"""A user or account loader: returns an id (a str, or anything ``str()`` makes one) or None."""

BLOCKED_TEMPLATE: Final = "pqlsdk/blocked.html"
"""The page a denied ``require_feature(..., on_denied="prompt")`` renders; override it.

Added in version 0.1.0.
"""

CSRF_FIELD: Final = "pqlsdk_csrf"
"""The hidden form field carrying the CSRF token.

Added in version 0.1.0.
"""

CSRF_HEADER: Final = "X-PQLSDK-CSRF"
"""The request header carrying the CSRF token of a JSON outcome.

Added in version 0.1.0.
"""

_EXTENSION: Final = "pqlsdk"
_SALT: Final = "pqlsdk-outcome"
_ACCOUNTS_REMEMBERED: Final = 10_000
_FORMS: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

# Memo keys in flask.g (one request).
_USER: Final = "_pqlsdk_user"
_SHOWN: Final = "_pqlsdk_shown"
_GATE: Final = "_pqlsdk_gate"


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


def require_feature(
    feature: str, *, on_denied: OnDenied = "prompt", redirect_to: str | None = None
) -> Callable[[Callable[_P, ResponseReturnValue]], Callable[_P, ResponseReturnValue]]:
    """Guard a view with ``client.gate(user, feature)``.

    Allowed: the view runs. Denied: ``"prompt"`` renders ``pqlsdk/blocked.html``
    with status 403 (with the blocked-feature moment when one is due; the gate
    has already recorded it as shown), ``"403"`` aborts with 403, and
    ``"redirect"`` redirects to ``redirect_to`` (default ``PQLSDK_UPGRADE_URL``).
    No current user: 401, or flask-login's ``unauthorized()`` when the app has
    a ``LoginManager``.

    Added in version 0.1.0.
    """
    if on_denied not in get_args(OnDenied):
        raise ConfigError(f"on_denied must be one of {list(get_args(OnDenied))}, got {on_denied!r}")
    if redirect_to is not None and on_denied != "redirect":
        raise ConfigError('redirect_to= needs on_denied="redirect"')

    def decorate(view: Callable[_P, ResponseReturnValue]) -> Callable[_P, ResponseReturnValue]:
        @wraps(view)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> ResponseReturnValue:
            state = _state()
            user = state.subject()
            if user is None:
                return _unauthorized()
            gate = state.client().gate(user, feature)
            if gate.allowed:
                result: ResponseReturnValue = current_app.ensure_sync(view)(*args, **kwargs)
                return result
            if on_denied == "403":
                abort(403)
            if on_denied == "redirect":
                return redirect(redirect_to or state.settings.upgrade_url)
            if gate.moment is not None:
                setattr(g, _GATE, (user, gate.moment))
                setattr(g, _SHOWN, True)  # one moment a page: pqlsdk_moment() adds none
            context = _web.blocked_context(
                gate,
                state.client().rules,
                prompt=pqlsdk_gate_moment(),
                upgrade_url=state.settings.upgrade_url,
                back_url=_root(),
            )
            page = render_template(BLOCKED_TEMPLATE, **context)
            return page, 403

        return guarded

    return decorate


def pqlsdk_moment() -> Markup:
    """Render the current user's moment (``client.decide``), or nothing (a template global).

    Decided once a request: a second call (or one on a page that already shows
    a gate moment) renders nothing, so a page never shows two moments. Outside
    a request, or without a user, it renders nothing.

    Added in version 0.1.0.
    """
    if not has_request_context() or g.get(_SHOWN, False):
        return Markup("")
    setattr(g, _SHOWN, True)
    state = _state()
    user = state.subject()
    if user is None:
        return Markup("")
    moment = state.client().decide(user)
    if moment is None:
        return Markup("")  # the common case: no page address or token to make
    return _render(user, moment, next_url=_here())


def pqlsdk_gate_moment() -> Markup:
    """Render the blocked-feature moment of a denied ``require_feature``, or nothing.

    For ``pqlsdk/blocked.html`` (a template global). After a dismissal the
    browser goes to the app's root, not back to the page it cannot use.

    Added in version 0.1.0.
    """
    shown: tuple[str, Moment] | None = g.get(_GATE) if has_request_context() else None
    if shown is None:
        return Markup("")
    return _render(*shown, next_url=_root())


def pqlsdk_csrf_token() -> str:
    """Return the CSRF token for the current user's outcome posts ("" without a user).

    For single-page apps: send it as the ``X-PQLSDK-CSRF`` header.

    Added in version 0.1.0.
    """
    if not has_request_context():
        return ""
    user = _state().user()
    return "" if user is None else _serializer().dumps(user)


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
        settings = self.settings
        store = settings.store
        if isinstance(store, str) and store.startswith("sqlite:///"):
            Path(store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return Client(
            store=store,
            rules=settings.rules,
            endpoint=settings.endpoint,
            write_key=settings.write_key,
            strict=settings.strict,
            clock=settings.clock,
        )

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


def _unauthorized() -> ResponseReturnValue:
    manager = getattr(current_app, "login_manager", None)
    if manager is not None:
        result: ResponseReturnValue = manager.unauthorized()
        return result
    abort(401)


# -- rendering ----------------------------------------------------------------------


def _render(user: str, moment: Moment, *, next_url: str) -> Markup:
    context = _web.template_context(
        moment,
        outcome_url=url_for("pqlsdk.outcome"),
        csrf_name=CSRF_FIELD,
        csrf_token=_serializer().dumps(user),
        next_url=next_url,
    )
    return Markup(render_template(_web.TEMPLATE, **context))  # noqa: S704 - autoescaped Jinja output


def _here() -> str:
    """Return the path and query of this page, to come back to after a dismissal."""
    query = request.query_string.decode("latin-1")
    path = request.script_root + request.path
    return f"{path}?{query}" if query else path


def _root() -> str:
    return request.script_root + "/"


def _serializer() -> URLSafeTimedSerializer:
    """Sign with SECRET_KEY; SECRET_KEY_FALLBACKS (Flask 3.1) still verify during rotation."""
    keys = [*(current_app.config.get("SECRET_KEY_FALLBACKS") or ()), current_app.secret_key]
    return URLSafeTimedSerializer(keys, salt=_SALT)


class _Blueprint(Blueprint):
    """The blueprint whose templates come after the host's: the shared folder and the prompt."""

    @cached_property
    def jinja_loader(self) -> BaseLoader | None:
        """Serve ``pqlsdk/moment.html`` and ``pqlsdk/blocked.html`` unless the host has its own."""
        return FileSystemLoader(_web.TEMPLATES)


def _blueprint() -> Blueprint:
    """Make a fresh blueprint per app, so each app mounts it at its own prefix."""
    blueprint = _Blueprint(_EXTENSION, __name__)
    blueprint.add_url_rule("/moment", "moment", _moment, methods=["GET"])
    blueprint.add_url_rule("/outcome", "outcome", _outcome, methods=["POST"])
    return blueprint


# -- endpoints ------------------------------------------------------------------------


def _moment() -> ResponseReturnValue:
    """``GET /moment``: the current user's moment as JSON (``{"moment": null}`` when none)."""
    state = _state()
    user = state.subject()
    if user is None:
        return _error(401, "no current user")
    setattr(g, _SHOWN, True)
    return jsonify(_web.moment_json(state.client().decide(user)))


def _outcome() -> ResponseReturnValue:
    """``POST /outcome``: record a click or a dismissal, from a form or from JSON."""
    state = _state()
    try:
        user, is_json, moment, outcome = _checked_outcome(state)
    except _RefusedError as refused:
        return _error(refused.status, str(refused))
    try:
        recorded = state.client().record(user, moment, outcome)
    except InvalidMessageError:  # a strict client's refusal of an unknown moment: input, not a bug
        recorded = False
    if is_json:
        return jsonify(recorded=recorded)
    if outcome == "clicked":
        return redirect(state.settings.upgrade_url, 303)
    return redirect(_web.safe_next(request.form.get("next"), _root()), 303)


class _RefusedError(Exception):
    """An outcome post refused with ``status``; the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _checked_outcome(state: _State) -> tuple[str, bool, str, str]:
    """Return ``(user, is_json, moment, outcome)`` of an acceptable post; else raise.

    Checks, in order: a current user (401), a declared body length within
    ``MAX_OUTCOME_BYTES`` (411, 413: nothing bigger is read), JSON or a form
    (415), the CSRF token bound to this user (400 missing, 403 bad, expired or
    another user's), the body (400).
    """
    user = state.user()
    if user is None:
        raise _RefusedError(401, "no current user")
    length = request.content_length
    if length is None:
        raise _RefusedError(411, "a Content-Length is required")
    if length > _web.MAX_OUTCOME_BYTES:
        raise _RefusedError(413, f"body larger than {_web.MAX_OUTCOME_BYTES} bytes")
    is_json = request.mimetype == "application/json"
    if not is_json and request.mimetype not in _FORMS:
        raise _RefusedError(415, "send application/json or a form")
    token = request.headers.get(CSRF_HEADER) if is_json else request.form.get(CSRF_FIELD)
    if not token:
        raise _RefusedError(400, "the CSRF token is missing")
    try:
        signed = _serializer().loads(token, max_age=state.settings.csrf_max_age)
    except BadSignature:  # SignatureExpired is one too
        raise _RefusedError(403, "the CSRF token is invalid or expired") from None
    if signed != user:
        raise _RefusedError(403, "the CSRF token is not this user's")
    try:
        moment, outcome = _web.parse_outcome(request.get_data() if is_json else request.form)
    except _web.OutcomeError as exc:
        raise _RefusedError(400, str(exc)) from None
    return user, is_json, moment, outcome


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status
