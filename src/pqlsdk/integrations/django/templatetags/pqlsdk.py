"""``{% load pqlsdk %}{% pqlsdk_moment %}``: the current user's moment, if one is due.

Renders ``pqlsdk/moment.html`` (the template the Flask and Django
integrations share; override it with your own) with the request's moment,
the outcome endpoint and Django's CSRF token. Without a request, a user or
a moment due it renders nothing and costs no template.
"""

from __future__ import annotations

from typing import Any

from django import template  # type: ignore[import-untyped]

from .._render import moment_html

register = template.Library()


def pqlsdk_moment(context: Any) -> str:
    """Render the request's moment (``request.pqlsdk.moment()``), or nothing."""
    request = getattr(context, "request", None)
    return "" if request is None else moment_html(request)


register.simple_tag(takes_context=True, name="pqlsdk_moment")(pqlsdk_moment)
