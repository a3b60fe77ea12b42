"""CSRF: the token a moment's buttons post back, signed with the app's ``SECRET_KEY``.

Bound to the user's id and time-limited; forms carry it in ``CSRF_FIELD``, JSON
posts in the ``CSRF_HEADER`` header.
"""

from __future__ import annotations

from typing import Final

from flask import current_app
from itsdangerous import URLSafeTimedSerializer

__all__ = ["CSRF_FIELD", "CSRF_HEADER"]

CSRF_FIELD: Final = "pqlsdk_csrf"
"""The hidden form field carrying the CSRF token.

Added in version 0.1.0.
"""

CSRF_HEADER: Final = "X-PQLSDK-CSRF"
"""The request header carrying the CSRF token of a JSON outcome.

Added in version 0.1.0.
"""

_SALT: Final = "pqlsdk-outcome"


def _serializer() -> URLSafeTimedSerializer:
    """Sign with SECRET_KEY; SECRET_KEY_FALLBACKS (Flask 3.1) still verify during rotation."""
    keys = [*(current_app.config.get("SECRET_KEY_FALLBACKS") or ()), current_app.secret_key]
    return URLSafeTimedSerializer(keys, salt=_SALT)
