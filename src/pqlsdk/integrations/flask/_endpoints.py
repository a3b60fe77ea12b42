"""The extension's blueprint: ``GET /moment`` and ``POST /outcome``, each checking its input."""

from __future__ import annotations

from functools import cached_property
from typing import Final

from flask import Blueprint, Response, g, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature
from jinja2 import BaseLoader, FileSystemLoader

from ..._exceptions import InvalidMessageError
from .. import _web
from ._csrf import CSRF_FIELD, CSRF_HEADER, _serializer
from ._state import _EXTENSION, _State, _state
from ._views import _SHOWN, _root

__all__: list[str] = []

_FORMS: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


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
