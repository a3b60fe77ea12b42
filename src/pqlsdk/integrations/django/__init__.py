"""Django integration: gates on views, moments in templates, outcome endpoints.

Usage:

```python
# settings.py
INSTALLED_APPS += ["pqlsdk.integrations.django"]
MIDDLEWARE += ["pqlsdk.integrations.django.PQLSDKMiddleware"]  # after AuthenticationMiddleware
PQLSDK = {"RULES": BASE_DIR / "rules.toml", "UPGRADE_URL": "/billing/"}

# urls.py
path("pqlsdk/", include("pqlsdk.integrations.django.urls")),

# views.py
from pqlsdk.integrations.django import client, require_feature

@require_feature("sso")                  # denied: a 403 page with the gate's moment
def sso_settings(request): ...

# base.html
{% load pqlsdk %}{% pqlsdk_moment %}      # the current user's moment, if one is due
```

- ``settings.PQLSDK`` is the one place to configure it, with the keys Flask
  reads as ``PQLSDK_*`` (one table, one reader:
  ``pqlsdk.integrations._options``; the configuration reference shows it).
  ``RULES`` (a rules file) is required; ``STORE`` (default ``pqlsdk.db``
  beside ``BASE_DIR``, or in the working directory, where a relative SQLite
  path lands too), ``ENDPOINT`` and ``WRITE_KEY`` (the collector),
  ``STRICT``, ``CLOCK``, ``GATE_FALLBACK``, ``RETENTION``, ``DELIVERY`` (a
  ``Delivery`` or a dict of its fields), ``ON_ERROR`` and ``ON_TIER_CHANGE``
  go to the ``Client``; ``UPGRADE_URL`` (where a clicked call to action goes;
  a path, URL or URL name; default ``"/"``), ``USER`` and ``ACCOUNT``
  (callables, or dotted paths to them, taking the request and returning an id
  or None; ``USER`` defaults to the signed-in Django user's primary key) are
  the app's own. ``manage.py check`` reports every mistake with an id
  ``pqlsdk.E0nn``, in the words Flask uses for the same mistake.
- ``client()`` is the process's ``pqlsdk.Client``, opened on first use (not in
  ``AppConfig.ready()``, so ``check``, ``migrate`` and the other commands never
  open a store, and a broken rules file reaches you through ``check`` rather
  than as a crash at start-up).
- ``request.pqlsdk`` (``RequestState``, set by ``PQLSDKMiddleware``, sync and
  async): the user id, the request's moment and gates, each computed once and
  only when asked for.
- ``require_feature()`` for function, class-based (``method_decorator``) and
  async views, and ``FeatureRequiredMixin`` for class-based views.
- ``urls``: ``GET moment/`` (the moment as JSON, for single-page apps) and
  ``POST outcome/`` (JSON with ``X-CSRFToken``, or the default template's forms).
"""

from __future__ import annotations

# The one check for Django: every submodule's import runs this file first, so
# they import Django plainly and a missing extra is named here, once.
try:
    import django  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - the test set-up installs every extra
    raise ImportError(
        "pqlsdk.integrations.django needs Django: pip install 'pqlsdk[django]'"
    ) from exc

from ._settings import client, close
from .decorators import FeatureRequiredMixin, require_feature
from .middleware import PQLSDKMiddleware, RequestState, request_state

__all__ = [
    "FeatureRequiredMixin",
    "PQLSDKMiddleware",
    "RequestState",
    "client",
    "close",
    "request_state",
    "require_feature",
]
