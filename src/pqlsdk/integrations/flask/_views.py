"""What a page shows: ``require_feature``, the moment template globals, the blocked page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Final, Literal, ParamSpec, TypeAlias, get_args

from flask import (
    abort,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from ..._exceptions import ConfigError
from ..._moments import Moment
from .. import _web
from ._csrf import CSRF_FIELD, _serializer
from ._state import _state

__all__ = [
    "BLOCKED_TEMPLATE",
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

BLOCKED_TEMPLATE: Final = "pqlsdk/blocked.html"
"""The page a denied ``require_feature(..., on_denied="prompt")`` renders; override it.

Added in version 0.1.0.
"""

# Memo keys in flask.g (one request).
_SHOWN: Final = "_pqlsdk_shown"
_GATE: Final = "_pqlsdk_gate"


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
