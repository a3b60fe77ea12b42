"""The moment as HTML: the shared template, the outcome endpoint, Django's CSRF token."""

from __future__ import annotations

from typing import Any, Final

from django.middleware.csrf import get_token  # type: ignore[import-untyped]
from django.template.loader import render_to_string  # type: ignore[import-untyped]
from django.urls import reverse  # type: ignore[import-untyped]

from .._web import TEMPLATE, template_context
from .middleware import request_state

__all__ = ["CSRF_NAME", "moment_html"]

CSRF_NAME: Final = "csrfmiddlewaretoken"
"""The form field Django's CSRF protection reads."""


def moment_html(request: Any) -> str:
    """Render ``pqlsdk/moment.html`` for the request's moment; "" when none is due.

    Nothing is rendered (and no CSRF token is asked for, which would add
    ``Vary: Cookie``) when there is no moment.
    """
    moment = request_state(request).moment()
    if moment is None:
        return ""
    context = template_context(
        moment,
        outcome_url=reverse("pqlsdk:outcome"),
        csrf_name=CSRF_NAME,
        csrf_token=get_token(request),
        next_url=request.get_full_path(),
    )
    html: str = render_to_string(TEMPLATE, context)
    return html
