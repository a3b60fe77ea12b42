"""Keys the collector accepts (write keys, feed keys), compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from .._exceptions import ConfigError

__all__ = ["Keys"]


class Keys:
    """A set of accepted keys; which one a caller gave is found without a timing leak."""

    def __init__(self, keys: Sequence[str], *, name: str = "write_keys") -> None:
        if isinstance(keys, str) or not keys or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError(f"{name} must be a non-empty list of non-empty strings")
        # Digests have one length, so comparing them reveals neither a key nor its length.
        self._digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def index(self, key: bytes) -> int | None:
        """Return the position of ``key`` among the accepted keys, or None."""
        digest = hashlib.sha256(key).digest()
        # Compare with every key, without stopping early: the time taken says nothing.
        matches = [hmac.compare_digest(digest, known) for known in self._digests]
        return matches.index(True) if any(matches) else None

    def check(self, authorization: str | None) -> bool:
        """Return whether ``authorization`` is HTTP Basic with a known key as the username."""
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except binascii.Error:
            return False
        return self.index(decoded.partition(b":")[0]) is not None
