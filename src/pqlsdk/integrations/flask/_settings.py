"""The extension's options: the ``PQLSDK_*`` keys of ``app.config``, checked at ``init_app``.

The keys and their checks are the integrations' one table
(``pqlsdk.integrations._options``), shared with Django; this module only
finds the keys in ``app.config`` and says how a Flask user spells them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from flask import Flask

from ..._exceptions import ConfigError
from .._options import Read, read

__all__: list[str] = []

_PREFIX: Final = "PQLSDK_"


class _Settings:
    """An app's ``PQLSDK_*`` settings, checked: the client's options and the extension's own."""

    def __init__(self, options: Read) -> None:
        self.options = options
        self.upgrade_url: str = options.values["UPGRADE_URL"]
        self.url_prefix: str = options.values["URL_PREFIX"]
        self.csrf_max_age: int = options.values["CSRF_MAX_AGE"]

    @classmethod
    def read(cls, app: Flask, *, given_client: bool) -> _Settings:
        """Read and check ``app.config``; raise ``ConfigError`` naming every key at fault."""
        config = app.config
        if not config.get("SECRET_KEY"):
            raise ConfigError("SECRET_KEY is not set: pqlsdk signs its CSRF tokens with it")
        given = {
            key.removeprefix(_PREFIX): value
            for key, value in config.items()
            if key.startswith(_PREFIX)
        }
        options = read(
            given,
            framework="flask",
            spell=_spell,
            base=Path(app.instance_path),
            client_given=given_client,
        )
        options.raise_errors()
        return cls(options)


def _spell(name: str) -> str:
    return f"{_PREFIX}{name}"
