"""One Django project for the unit tests: settings, views and URLs in one module.

Django is configured once per process (conftest.py); tests change what they
need with ``override_settings``. Every view here exists to exercise one way
a host uses the integration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import include, path
from django.utils.decorators import method_decorator
from django.views import View

from pqlsdk.integrations.django import FeatureRequiredMixin, require_feature

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
HERE = Path(__file__).resolve().parent


def settings(data: Path) -> dict[str, Any]:
    """The project's settings; ``data`` holds Django's own SQLite database."""
    return {
        "DEBUG": False,
        "SECRET_KEY": "tests-only-not-secret",
        "ALLOWED_HOSTS": ["testserver"],
        "BASE_DIR": data,
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "pqlsdk.integrations.django",
        ],
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "pqlsdk.integrations.django.PQLSDKMiddleware",
        ],
        "ROOT_URLCONF": "tests.integrations_django.project",
        "DATABASES": {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(data / "django.db")}
        },
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(HERE / "templates")],
                "APP_DIRS": True,
            }
        ],
        "PQLSDK": {"RULES": PLAYBOOK, "STRICT": True, "UPGRADE_URL": "/billing/"},
        "USE_TZ": True,
    }


def whoami(request: Any) -> JsonResponse:
    """Ask nothing but the user: what the middleware resolves."""
    return JsonResponse({"user": request.pqlsdk.user_id, "account": request.pqlsdk.account_id})


async def awhoami(request: Any) -> JsonResponse:
    return JsonResponse({"user": await request.pqlsdk.auser_id()})


def plain(request: Any) -> HttpResponse:
    """A page that never asks pqlsdk anything."""
    return HttpResponse("plain")


def page(request: Any) -> TemplateResponse:
    """A page whose template shows the moment (twice: it is decided once)."""
    return TemplateResponse(request, "page.html", {})


@require_feature("sso")
def sso(request: Any) -> HttpResponse:
    return HttpResponse("sso settings")


@require_feature("sso", on_denied="403")
def sso_403(request: Any) -> HttpResponse:
    return HttpResponse("sso settings")


@require_feature("sso", on_denied="redirect")
def sso_upgrade(request: Any) -> HttpResponse:
    return HttpResponse("sso settings")


@require_feature("sso", on_denied="redirect", redirect_to="/plans/")
def sso_plans(request: Any) -> HttpResponse:
    return HttpResponse("sso settings")


@require_feature("sso")
async def sso_async(request: Any) -> HttpResponse:
    return HttpResponse("async sso settings")


@require_feature("sso", on_denied="403")
async def sso_async_403(request: Any) -> HttpResponse:
    return HttpResponse("async sso settings")


@method_decorator(require_feature("audit_log"), name="dispatch")
class AuditLog(View):  # type: ignore[misc]
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("audit log")


class AuditLogAsync(View):  # type: ignore[misc]
    @method_decorator(require_feature("audit_log"))  # type: ignore[untyped-decorator]
    async def get(self, request: Any) -> HttpResponse:
        return HttpResponse("async audit log")


class MixinView(FeatureRequiredMixin, View):  # type: ignore[misc]
    required_feature = "sso"

    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("mixin sso")


class MixinAsyncView(FeatureRequiredMixin, View):  # type: ignore[misc]
    required_feature = "sso"
    on_denied = "redirect"

    async def get(self, request: Any) -> HttpResponse:
        return HttpResponse("async mixin sso")


class MixinUnset(FeatureRequiredMixin, View):  # type: ignore[misc]
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("never")


urlpatterns = [
    path("whoami/", whoami),
    path("awhoami/", awhoami),
    path("plain/", plain),
    path("page/", page),
    path("sso/", sso),
    path("sso-403/", sso_403),
    path("sso-upgrade/", sso_upgrade),
    path("sso-plans/", sso_plans),
    path("sso-async/", sso_async),
    path("sso-async-403/", sso_async_403),
    path("audit/", AuditLog.as_view()),
    path("audit-async/", AuditLogAsync.as_view()),
    path("mixin/", MixinView.as_view()),
    path("mixin-async/", MixinAsyncView.as_view()),
    path("mixin-unset/", MixinUnset.as_view()),
    path("pqlsdk/", include("pqlsdk.integrations.django.urls")),
]
