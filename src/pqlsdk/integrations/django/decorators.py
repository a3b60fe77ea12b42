"""Feature gates on views: ``require_feature()`` and ``FeatureRequiredMixin``.

A denied gate is a buying moment, so the default answer is a page that says
so and shows the gate's moment (``on_denied="prompt"``: a 403 rendering
``pqlsdk/blocked.html``). ``"403"`` raises ``PermissionDenied`` (the host's
own 403 page) and ``"redirect"`` sends the user to ``redirect_to`` or the
configured ``UPGRADE_URL``. Without a user, browsers go to the login page and
other clients get 401: there is nobody to gate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar, get_args

import attrs
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.apps import apps  # type: ignore[import-untyped]
from django.core.exceptions import PermissionDenied  # type: ignore[import-untyped]
from django.http import JsonResponse  # type: ignore[import-untyped]
from django.shortcuts import redirect, resolve_url  # type: ignore[import-untyped]
from django.template.response import TemplateResponse  # type: ignore[import-untyped]
from django.urls import get_script_prefix  # type: ignore[import-untyped]
from django.utils.safestring import mark_safe  # type: ignore[import-untyped]

from ..._exceptions import ConfigError
from ..._gating import Gate
from .._web import blocked_context
from ._render import moment_html
from ._settings import config
from .middleware import request_state

__all__ = ["BLOCKED_TEMPLATE", "FeatureRequiredMixin", "OnDenied", "require_feature"]

OnDenied = Literal["prompt", "403", "redirect"]
"""What ``require_feature`` and ``FeatureRequiredMixin`` answer a denial with.

Added in version 0.1.0.
"""

BLOCKED_TEMPLATE: Final = "pqlsdk/blocked.html"
"""The page a denied ``on_denied="prompt"`` gate renders; a project overrides it by name.

Added in version 0.1.0.
"""

_View = TypeVar("_View", bound=Callable[..., Any])


@attrs.frozen
class _Rule:
    feature: str
    on_denied: OnDenied
    redirect_to: str | None


def _rule(feature: object, on_denied: object, redirect_to: object) -> _Rule:
    """Check a gate's options where the view is defined: mistakes fail at import."""
    if not isinstance(feature, str) or not feature:
        raise ConfigError(f"require_feature() needs a feature name, got {feature!r}")
    if on_denied not in get_args(OnDenied):
        raise ConfigError(f"on_denied must be one of {list(get_args(OnDenied))}, got {on_denied!r}")
    if redirect_to is not None and (on_denied != "redirect" or not isinstance(redirect_to, str)):
        raise ConfigError("redirect_to= is a URL, path or URL name, for on_denied='redirect'")
    return _Rule(feature, on_denied, redirect_to)  # type: ignore[arg-type]


def _anonymous(request: Any) -> Any:
    """Nobody signed in: browsers go to log in (Django's auth installed), others get 401."""
    if apps.is_installed("django.contrib.auth") and request.accepts("text/html"):
        from django.contrib.auth.views import (  # type: ignore[import-untyped]  # noqa: PLC0415 - needs the app registry ready
            redirect_to_login,
        )

        return redirect_to_login(request.get_full_path())
    return JsonResponse({"error": "sign in first"}, status=401)


def _denied(request: Any, gate: Gate, rule: _Rule) -> Any:
    """Answer a denied gate the way the view asked to."""
    if rule.on_denied == "403":
        raise PermissionDenied(gate.reason)
    if rule.on_denied == "redirect":
        return redirect(rule.redirect_to or config().upgrade_url)
    upgrade_url = resolve_url(config().upgrade_url)  # a path, a URL or a URL name
    context = blocked_context(
        gate,
        request_state(request).client.rules,
        prompt=mark_safe(moment_html(request)),  # noqa: S308 - the autoescaped moment template
        upgrade_url=upgrade_url,
        back_url=get_script_prefix(),
    )
    # Rendered by the handler (in a thread under ASGI), so an overriding template
    # may read request.user in an async view too.
    return TemplateResponse(request, BLOCKED_TEMPLATE, context, status=403)


def _guard(request: Any, rule: _Rule) -> Any:
    """Return the response that refuses this request, or None to let the view run."""
    state = request_state(request)
    if state.user_id is None:
        return _anonymous(request)
    gate = state.gate(rule.feature)
    return None if gate.allowed else _denied(request, gate, rule)


async def _aguard(request: Any, rule: _Rule) -> Any:
    """``_guard`` for async views: the user via ``auser()``, the gate in a worker thread."""
    state = request_state(request)
    if await state.auser_id() is None:
        return _anonymous(request)
    gate = await sync_to_async(state.gate, thread_sensitive=False)(rule.feature)
    return None if gate.allowed else _denied(request, gate, rule)


def require_feature(
    feature: str, *, on_denied: OnDenied = "prompt", redirect_to: str | None = None
) -> Callable[[_View], _View]:
    """Let a view run only for users whose plan includes ``feature``.

    Works on function views, async views, and class-based views through
    ``method_decorator(require_feature("sso"), name="dispatch")``. On an async
    class-based view decorate the handler (``name="get"``) or use
    ``FeatureRequiredMixin``: its ``dispatch`` is not a coroutine function, so
    the decorator could not tell that it must not read ``request.user``
    synchronously. A denial is tracked as a buying signal by the gate; see the
    module docstring for the answers.

    Added in version 0.1.0.
    """
    rule = _rule(feature, on_denied, redirect_to)

    def decorate(view: _View) -> _View:
        if iscoroutinefunction(view):

            async def gated_async(request: Any, *args: Any, **kwargs: Any) -> Any:
                refused = await _aguard(request, rule)
                return refused if refused is not None else await view(request, *args, **kwargs)

            return functools.wraps(view)(gated_async)  # type: ignore[return-value]

        def gated(request: Any, *args: Any, **kwargs: Any) -> Any:
            refused = _guard(request, rule)
            return refused if refused is not None else view(request, *args, **kwargs)

        return functools.wraps(view)(gated)  # type: ignore[return-value]

    return decorate


class FeatureRequiredMixin:
    """Class-based views: set ``required_feature`` (and ``on_denied``, ``redirect_to``).

    Put it first among the bases, as with Django's own access mixins. Async
    views (every handler ``async def``) are gated without blocking the loop.

    Added in version 0.1.0.
    """

    required_feature: str = ""
    on_denied: OnDenied = "prompt"
    redirect_to: str | None = None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        """Gate, then hand on to the view's own ``dispatch``.

        Added in version 0.1.0.
        """
        rule = _rule(self.required_feature, self.on_denied, self.redirect_to)
        parent = super().dispatch  # type: ignore[misc]
        if getattr(self, "view_is_async", False):
            return self._adispatch(parent, rule, request, *args, **kwargs)
        refused = _guard(request, rule)
        return refused if refused is not None else parent(request, *args, **kwargs)

    async def _adispatch(
        self, parent: Callable[..., Any], rule: _Rule, request: Any, *args: Any, **kwargs: Any
    ) -> Any:
        refused = await _aguard(request, rule)
        return refused if refused is not None else await parent(request, *args, **kwargs)
