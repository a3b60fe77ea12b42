"""Feed sessions: signing in with a feed key once, then a signed cookie.

A browser cannot be asked to put a key in a header, and a key typed into a URL
ends up in history and logs. So ``/login`` takes the key (and the rep's name,
which the feed shows beside the leads they mark contacted) from a form, and the
answer sets a session cookie: ``HttpOnly`` (scripts cannot read it),
``SameSite=Strict`` (no other site's page can send it) and ``Secure`` over HTTPS.

The cookie is ``payload.signature``: the payload says who and until when, the
signature is an HMAC whose secret is derived from the feed key used to sign
in. Every worker process with the same keys accepts it, nothing is stored, and
removing a key from the configuration ends the sessions it opened. Keys and
signatures are compared in constant time, against every key.

Forms that change data (marking a lead contacted) carry a CSRF token: an HMAC
of the session's random id, which only a page served to that session knows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Final

import msgspec

__all__ = ["COOKIE", "MAX_NAME", "SESSION_SECONDS", "Session", "Sessions"]

COOKIE: Final = "pqlsdk_feed"
SESSION_SECONDS: Final = 12 * 3600
"""How long a sign-in lasts: a working day."""
MAX_NAME: Final = 80
"""Longest rep name accepted at sign-in (characters)."""
_SALT: Final = b"pqlsdk feed session\x00"


class Session(msgspec.Struct, frozen=True):
    """A signed-in rep: their name, when the session ends, and its random id."""

    name: str
    expires: int
    """Unix time, seconds."""
    id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Issue and check session cookies and CSRF tokens for a set of feed keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        """Derive one signing secret per feed key (``keys`` were checked by ``Keys``)."""
        self._secrets = [hashlib.sha256(_SALT + key.encode()).digest() for key in keys]

    def issue(self, name: str, key: int, *, now: float | None = None) -> str:
        """Return the cookie value for ``name``, signed in with feed key number ``key``."""
        moment = time.time() if now is None else now
        session = Session(
            name=name, expires=int(moment) + SESSION_SECONDS, id=_b64(secrets.token_bytes(12))
        )
        payload = _b64(msgspec.json.encode(session))
        return f"{payload}.{_b64(self._sign(key, payload.encode()))}"

    def check(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """Return the session a cookie value holds, or None if it is forged, garbled or over."""
        payload, _, signature = (cookie or "").partition(".")
        try:
            given = _unb64(signature)
            session = msgspec.json.decode(_unb64(payload), type=Session)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            return None
        expected = [self._sign(i, payload.encode()) for i in range(len(self._secrets))]
        matches = [hmac.compare_digest(given, known) for known in expected]
        if not any(matches):
            return None
        return session if session.expires > (time.time() if now is None else now) else None

    def csrf(self, session: Session) -> str:
        """Return the CSRF token forms served to ``session`` carry."""
        return _b64(hmac.digest(self._secrets[0], b"csrf\x00" + session.id.encode(), "sha256"))

    def csrf_ok(self, session: Session, token: str) -> bool:
        """Return whether ``token`` is ``session``'s CSRF token (compared in constant time)."""
        return hmac.compare_digest(self.csrf(session).encode(), token.encode("utf-8", "replace"))

    def _sign(self, key: int, payload: bytes) -> bytes:
        return hmac.digest(self._secrets[key], payload, "sha256")
