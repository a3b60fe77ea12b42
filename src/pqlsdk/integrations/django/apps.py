"""The Django app: ``INSTALLED_APPS += ["pqlsdk.integrations.django"]``.

``ready()`` registers the system checks and forgets the client when
``settings.PQLSDK`` changes; it opens nothing. The client opens on first use
(``client()``), so ``manage.py check``, ``migrate`` and friends never create
a store file or start a thread, and a broken rules file is reported by the
check (``pqlsdk.E007`` with file, line and column) instead of crashing every
command at start-up.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]
from django.core.signals import setting_changed  # type: ignore[import-untyped]

from .._web import TEMPLATES
from ._settings import close, problems

__all__ = ["PQLSDKConfig", "check_settings"]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Report every problem in ``settings.PQLSDK`` as ``pqlsdk.E0nn`` / ``pqlsdk.W0nn``.

    Added in version 0.1.0.
    """
    found, _ = problems()
    return [
        (checks.Error if problem.error else checks.Warning)(
            problem.message, hint=problem.hint, id=f"pqlsdk.{problem.id}"
        )
        for problem in found
    ]


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "PQLSDK":
        close()


class PQLSDKConfig(AppConfig):  # type: ignore[misc]
    """pqlsdk in Django: checks, template tags and templates.

    Added in version 0.1.0.
    """

    name = "pqlsdk.integrations.django"
    label = "pqlsdk"
    verbose_name = "pqlsdk"
    # The app's folder is the one whose templates/ the Flask and Django
    # integrations share (_web.TEMPLATES), so the app template loader finds
    # pqlsdk/moment.html without a copy. Template tags are found by module
    # name, so they still live in this package.
    path = str(TEMPLATES.parent)

    def ready(self) -> None:
        """Register the checks; open nothing.

        Added in version 0.1.0.
        """
        checks.register(check_settings, "pqlsdk")
        setting_changed.connect(_setting_changed, dispatch_uid="pqlsdk.settings")
