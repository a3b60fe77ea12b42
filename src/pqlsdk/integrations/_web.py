"""What the Flask and Django integrations share: moments as JSON, outcome requests, templates.

Both frameworks serve the same two endpoints to single-page apps (the current
user's moment; the outcome of a moment) and render the same default template,
so the shape of the JSON, the checks on a posted outcome and the template's
context live here once. Nothing here imports a web framework.

The default template (``templates/pqlsdk/moment.html`` beside this module) is
written in the subset of syntax Jinja2 and Django's template language share
(``{{ name }}``, ``{% if %}``, ``{% endif %}``), with autoescaping on in both,
so one file serves both frameworks and a host overrides it the way its
framework overrides any app template: a ``pqlsdk/moment.html`` of its own.
The page a denied gate renders (``pqlsdk/blocked.html``) is shared the same
way, with one context for both (``blocked_context``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from .._gating import Gate
from .._moments import Moment
from ..rules import Rules

__all__ = [
    "MAX_OUTCOME_BYTES",
    "TEMPLATE",
    "TEMPLATES",
    "WEB_OUTCOMES",
    "OutcomeError",
    "blocked_context",
    "moment_json",
    "parse_outcome",
    "safe_next",
    "template_context",
]

TEMPLATES: Final = Path(__file__).parent / "templates"
"""The folder holding ``pqlsdk/moment.html``: a template search path for either framework."""

TEMPLATE: Final = "pqlsdk/moment.html"

WEB_OUTCOMES: Final = frozenset({"clicked", "dismissed"})
"""Outcomes a browser may report; ``shown`` is recorded by deciding, ``converted`` by the host."""

MAX_OUTCOME_BYTES: Final = 4096
"""An outcome is two short strings; a bigger body is refused unread."""

_MAX_ID: Final = 200


class OutcomeError(ValueError):
    """A posted outcome that cannot be recorded; the message says why (answered with 400)."""


class _Outcome(msgspec.Struct, forbid_unknown_fields=False):
    moment: str
    outcome: str


def moment_json(moment: Moment | None) -> dict[str, Any]:
    """Return ``{"moment": ...}`` as the endpoints answer it: the moment's content, or null.

    The content is what the default template shows; the ``id`` goes back with
    the outcome. Nothing about the user (traits, score) is included.
    """
    if moment is None:
        return {"moment": None}
    return {
        "moment": {
            "id": moment.id,
            "kind": moment.kind,
            "title": moment.title,
            "body": moment.body,
            "cta": moment.cta,
            "feature": moment.feature,
            "days_left": moment.days_left,
            "at": moment.at.isoformat(),
        }
    }


def parse_outcome(body: bytes | Mapping[str, Any]) -> tuple[str, str]:
    """Return ``(moment, outcome)`` from a JSON body or a decoded form; raise ``OutcomeError``.

    ``moment`` is a ``Moment.id`` (or a kind) and ``outcome`` one of
    ``WEB_OUTCOMES``. Bodies past ``MAX_OUTCOME_BYTES`` are refused.
    """
    if isinstance(body, bytes | bytearray):
        if len(body) > MAX_OUTCOME_BYTES:
            raise OutcomeError(f"body larger than {MAX_OUTCOME_BYTES} bytes")
        try:
            parsed = msgspec.json.decode(body, type=_Outcome)
        except msgspec.DecodeError as exc:
            raise OutcomeError(f"expected {{'moment': str, 'outcome': str}}: {exc}") from None
        moment, outcome = parsed.moment, parsed.outcome
    else:
        given, told = body.get("moment"), body.get("outcome")
        if not isinstance(given, str) or not isinstance(told, str):
            raise OutcomeError("expected the fields 'moment' and 'outcome'")
        moment, outcome = given, told
    if not moment or len(moment) > _MAX_ID:
        raise OutcomeError(f"'moment' must be 1 to {_MAX_ID} characters")
    if outcome not in WEB_OUTCOMES:
        raise OutcomeError(f"'outcome' must be one of {sorted(WEB_OUTCOMES)}")
    return moment, outcome


def template_context(
    moment: Moment | None,
    *,
    outcome_url: str,
    csrf_name: str,
    csrf_token: str,
    next_url: str,
) -> dict[str, Any]:
    """Return what ``pqlsdk/moment.html`` renders: the moment and its two forms.

    The forms post to ``outcome_url`` (the integration's outcome endpoint) with
    the framework's CSRF field, then the endpoint redirects: to the configured
    upgrade page after a click on the call to action (never to a posted URL),
    back to ``next_url`` (checked by ``safe_next``) after a dismissal.
    They work without JavaScript and with the keyboard alone.
    """
    return {
        "moment": moment,
        "outcome_url": outcome_url,
        "csrf_name": csrf_name,
        "csrf_token": csrf_token,
        "next_url": next_url,
    }


def blocked_context(
    gate: Gate, rules: Rules | None, *, prompt: str, upgrade_url: str, back_url: str
) -> dict[str, Any]:
    """Return what ``pqlsdk/blocked.html`` renders for a denied gate, in either framework.

    ``feature`` is the id (for attributes and the host's own logic) and
    ``feature_name`` what people read: the rules' ``[entitlements] names``
    entry ("Single sign-on"), else the id. ``prompt`` is the gate's moment,
    already rendered (empty when none is due).
    """
    entitlements = None if rules is None else rules.entitlements
    return {
        "feature": gate.feature,
        "feature_name": gate.feature if entitlements is None else entitlements.name(gate.feature),
        "gate": gate,
        "prompt": prompt,
        "upgrade_url": upgrade_url,
        "back_url": back_url,
    }


def safe_next(url: object, default: str) -> str:
    """Return ``url`` if it is a path on this site, else ``default``: no open redirects.

    A posted ``next`` must start with one ``/`` and hold no backslash or scheme,
    so ``//evil.example`` and ``https://evil.example`` fall back to ``default``.
    """
    if (
        isinstance(url, str)
        and url.startswith("/")
        and not url.startswith("//")
        and "\\" not in url
        and len(url) <= 2048
    ):
        return url
    return default
