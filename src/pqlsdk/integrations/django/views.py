"""The two endpoints single-page apps and the default template's forms use.

``GET moment/`` answers the current user's moment as JSON (``_web.moment_json``);
``POST outcome/`` records a click or a dismissal, from JSON (with Django's
``X-CSRFToken`` header) or from the template's forms (with the
``csrfmiddlewaretoken`` field). Both need the current user (401 without one);
the outcome endpoint is protected by Django's own CSRF check and refuses
bodies past ``MAX_OUTCOME_BYTES`` (413) before anything reads them.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse  # type: ignore[import-untyped]
from django.shortcuts import redirect  # type: ignore[import-untyped]
from django.views.decorators.cache import never_cache  # type: ignore[import-untyped]
from django.views.decorators.csrf import (  # type: ignore[import-untyped]
    csrf_exempt,
    csrf_protect,
)
from django.views.decorators.http import (  # type: ignore[import-untyped]
    require_GET,
    require_POST,
)

from .._web import MAX_OUTCOME_BYTES, OutcomeError, moment_json, parse_outcome, safe_next
from ._settings import client, config
from .middleware import request_state

__all__ = ["moment", "outcome"]


def _no_user() -> Any:
    return JsonResponse({"error": "sign in first"}, status=401)


def _too_big() -> Any:
    return JsonResponse({"error": f"body larger than {MAX_OUTCOME_BYTES} bytes"}, status=413)


def _moment(request: Any) -> Any:
    state = request_state(request)
    if state.user_id is None:
        return _no_user()
    return JsonResponse(moment_json(state.moment()))


moment = require_GET(never_cache(_moment))
"""``GET moment/``: ``{"moment": {...} | null}``; deciding counts as showing, so never cached.

Added in version 0.1.0.
"""


def _outcome(request: Any) -> Any:
    user = request_state(request).user_id
    if user is None:
        return _no_user()
    is_json = request.content_type == "application/json"
    try:
        if is_json:
            body = request.body
            if len(body) > MAX_OUTCOME_BYTES:  # a body sent without Content-Length
                return _too_big()
            moment_id, told = parse_outcome(body)
        else:
            moment_id, told = parse_outcome(request.POST)
    except OutcomeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    recorded = client().record(user, moment_id, told)
    if is_json:
        return JsonResponse({"recorded": recorded})
    if told == "clicked":
        return redirect(config().upgrade_url)  # never a posted URL
    return redirect(safe_next(request.POST.get("next"), "/"))


def _limited(view: Any) -> Any:
    """Refuse a body larger than an outcome can be before the CSRF check reads it."""

    def limited(request: Any) -> Any:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"error": "unreadable Content-Length"}, status=400)
        return _too_big() if length > MAX_OUTCOME_BYTES else view(request)

    return limited


# CsrfViewMiddleware would parse a form body before any view code runs, so the
# middleware is told to skip this view and the same check runs inside, after
# the size check: csrf_protect is CsrfViewMiddleware as a decorator.
outcome = csrf_exempt(require_POST(_limited(csrf_protect(_outcome))))
"""``POST outcome/``: JSON answers ``{"recorded": bool}``; forms redirect.

Added in version 0.1.0.
"""
