"""require_feature and FeatureRequiredMixin on function, class-based and async views."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.test.utils import override_settings

import pqlsdk
from pqlsdk.integrations.django import require_feature

from .conftest import uid
from .project import MixinUnset

PROMPT = "Single sign-on is on the Business plan"


def signed_in(user: Any, *, enforce_csrf: bool = False) -> Client:
    browser = Client(enforce_csrf_checks=enforce_csrf)
    browser.force_login(user)
    return browser


def async_signed_in(user: Any) -> AsyncClient:
    browser = AsyncClient()
    browser.force_login(user)
    return browser


@pytest.mark.usefixtures("pql")
def test_allowed_user_gets_the_view(users: dict[str, Any]) -> None:
    response = signed_in(users["business"]).get("/sso/")
    assert (response.status_code, response.content) == (200, b"sso settings")


@pytest.mark.usefixtures("pql")
def test_denied_user_gets_the_blocked_page_with_the_prompt(users: dict[str, Any]) -> None:
    response = signed_in(users["trial"]).get("/sso/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Single sign-on is not on your plan</h1>" in html
    assert 'data-pqlsdk-kind="blocked_feature"' in html
    assert PROMPT in html
    assert '<a href="/billing/">Compare plans</a>' in html


def test_blocked_page_without_a_due_prompt_has_no_moment(pql: Any, users: dict[str, Any]) -> None:
    browser = signed_in(users["trial"])
    first = browser.get("/sso/").content.decode()
    moment_id = first.split('data-pqlsdk-moment="')[1].split('"')[0]
    assert pql.record(uid(users["trial"]), moment_id, "dismissed")
    again = browser.get("/sso/")
    assert again.status_code == 403
    assert "data-pqlsdk-moment" not in again.content.decode()  # cooling down for 24 hours


@pytest.mark.usefixtures("pql")
def test_on_denied_403_raises_permission_denied(users: dict[str, Any]) -> None:
    response = signed_in(users["trial"]).get("/sso-403/")
    assert response.status_code == 403
    assert PROMPT not in response.content.decode()  # Django's own 403, no prompt


@pytest.mark.usefixtures("pql")
def test_on_denied_redirect_goes_to_the_upgrade_url(users: dict[str, Any]) -> None:
    response = signed_in(users["trial"]).get("/sso-upgrade/")
    assert (response.status_code, response["Location"]) == (302, "/billing/")


@pytest.mark.usefixtures("pql")
def test_on_denied_redirect_goes_to_redirect_to(users: dict[str, Any]) -> None:
    response = signed_in(users["trial"]).get("/sso-plans/")
    assert (response.status_code, response["Location"]) == (302, "/plans/")


def test_anonymous_browser_goes_to_log_in() -> None:
    response = Client().get("/sso/?tab=saml", headers={"Accept": "text/html"})
    assert (response.status_code, response["Location"]) == (
        302,
        "/accounts/login/?next=/sso/%3Ftab%3Dsaml",
    )


def test_anonymous_api_client_gets_401() -> None:
    response = Client().get("/sso/", headers={"Accept": "application/json"})
    assert (response.status_code, response.json()) == (401, {"error": "sign in first"})


def test_anonymous_without_django_auth_gets_401() -> None:
    view = require_feature("sso")(lambda request: HttpResponse("never"))
    request = RequestFactory().get("/sso/", headers={"Accept": "text/html"})
    with override_settings(
        INSTALLED_APPS=["django.contrib.contenttypes", "pqlsdk.integrations.django"]
    ):
        response = view(request)  # type: ignore[no-untyped-call]
    assert response.status_code == 401


@pytest.mark.usefixtures("pql")
def test_method_decorator_gates_a_class_based_view(users: dict[str, Any]) -> None:
    assert signed_in(users["business"]).get("/audit/").content == b"audit log"
    assert signed_in(users["trial"]).get("/audit/").status_code == 403


@pytest.mark.usefixtures("pql")
def test_mixin_gates_a_class_based_view(users: dict[str, Any]) -> None:
    assert signed_in(users["business"]).get("/mixin/").content == b"mixin sso"
    denied = signed_in(users["trial"]).get("/mixin/")
    assert denied.status_code == 403
    assert PROMPT in denied.content.decode()


def test_mixin_without_a_feature_is_a_setup_error(users: dict[str, Any]) -> None:
    request = RequestFactory().get("/")
    request.user = users["trial"]
    with pytest.raises(pqlsdk.ConfigError, match="needs a feature name"):
        MixinUnset.as_view()(request)


@pytest.mark.usefixtures("pql")
def test_async_view_allowed(users: dict[str, Any]) -> None:
    response = asyncio.run(async_signed_in(users["business"]).get("/sso-async/"))
    assert (response.status_code, response.content) == (200, b"async sso settings")


@pytest.mark.usefixtures("pql")
def test_async_view_denied_renders_the_prompt(users: dict[str, Any]) -> None:
    response = asyncio.run(async_signed_in(users["trial"]).get("/sso-async/"))
    assert response.status_code == 403
    assert PROMPT in response.content.decode()


@pytest.mark.usefixtures("pql")
def test_async_view_denied_with_403(users: dict[str, Any]) -> None:
    response = asyncio.run(async_signed_in(users["trial"]).get("/sso-async-403/"))
    assert response.status_code == 403
    assert PROMPT not in response.content.decode()


def test_async_view_anonymous_goes_to_log_in() -> None:
    response = asyncio.run(AsyncClient().get("/sso-async/", headers={"Accept": "text/html"}))
    assert (response.status_code, response["Location"]) == (
        302,
        "/accounts/login/?next=/sso-async/",
    )


@pytest.mark.usefixtures("pql")
def test_method_decorator_on_an_async_handler(users: dict[str, Any]) -> None:
    allowed = asyncio.run(async_signed_in(users["business"]).get("/audit-async/"))
    denied = asyncio.run(async_signed_in(users["trial"]).get("/audit-async/"))
    assert (allowed.content, denied.status_code) == (b"async audit log", 403)


@pytest.mark.usefixtures("pql")
def test_mixin_on_an_async_view(users: dict[str, Any]) -> None:
    allowed = asyncio.run(async_signed_in(users["business"]).get("/mixin-async/"))
    denied = asyncio.run(async_signed_in(users["trial"]).get("/mixin-async/"))
    assert allowed.content == b"async mixin sso"
    assert (denied.status_code, denied["Location"]) == (302, "/billing/")


@pytest.mark.usefixtures("pql")
def test_host_template_overrides_the_blocked_page(users: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "pqlsdk").mkdir()
    (tmp_path / "pqlsdk" / "blocked.html").write_text(
        "{% load pqlsdk %}<p>Ask your admin about {{ feature_name }} ({{ feature }}).</p>"
        "{% pqlsdk_moment %}"
    )
    engine = {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(tmp_path)],
        "APP_DIRS": True,
    }
    with override_settings(TEMPLATES=[engine]):
        html = signed_in(users["trial"]).get("/sso/").content.decode()
    assert html.startswith("<p>Ask your admin about Single sign-on (sso).</p>")
    assert PROMPT in html


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        (("",), {}, "needs a feature name"),
        (("sso",), {"on_denied": "404"}, "on_denied must be one of"),
        (("sso",), {"redirect_to": "/plans/"}, "redirect_to= is a URL"),
        (("sso",), {"on_denied": "redirect", "redirect_to": 3}, "redirect_to= is a URL"),
    ],
)
def test_bad_options_fail_where_the_view_is_defined(
    args: tuple[Any, ...], kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(pqlsdk.ConfigError, match=says):
        require_feature(*args, **kwargs)


def test_gates_need_entitlements_in_the_rules(tmp_path: Path, users: dict[str, Any]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[model.m]\ntiers = { cold = 0 }\n")
    with (
        override_settings(PQLSDK={"RULES": rules, "STORE": "memory://"}),
        pytest.raises(pqlsdk.ConfigError, match=r"no \[entitlements\]"),
    ):
        signed_in(users["trial"]).get("/sso/")
