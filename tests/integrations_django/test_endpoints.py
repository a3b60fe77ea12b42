"""GET moment/ and POST outcome/: JSON for single-page apps, forms for the template."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.test import AsyncClient, Client, RequestFactory
from django.test.utils import override_settings

from pqlsdk.integrations._web import MAX_OUTCOME_BYTES
from pqlsdk.integrations.django import views

from .conftest import uid

OUTCOME = "/pqlsdk/outcome/"


def browser_of(user: Any) -> Client:
    """A browser that enforces CSRF like a real one, signed in, holding a CSRF cookie."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.cookies.load({"csrftoken": "a" * 32})  # as a page with a form would have set
    return browser


def token(browser: Client) -> str:
    return str(browser.cookies["csrftoken"].value)


def moment_of(browser: Client) -> dict[str, Any]:
    moment: dict[str, Any] = browser.get("/pqlsdk/moment/").json()["moment"]
    return moment


def post_json(browser: Client, body: object, **headers: str) -> Any:
    return browser.post(OUTCOME, json.dumps(body), content_type="application/json", headers=headers)


@pytest.mark.usefixtures("pql")
def test_moment_endpoint_answers_the_users_moment(users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    response = browser.get("/pqlsdk/moment/")
    moment = response.json()["moment"]
    assert (moment["kind"], moment["title"], moment["days_left"]) == (
        "trial_ending",
        "Your trial ends in 2 days",
        2,
    )
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.usefixtures("pql")
def test_moment_endpoint_answers_null_when_nothing_is_due(users: dict[str, Any]) -> None:
    assert browser_of(users["business"]).get("/pqlsdk/moment/").json() == {"moment": None}


def test_moment_endpoint_needs_a_user() -> None:
    assert Client().get("/pqlsdk/moment/").status_code == 401


def test_moment_endpoint_is_get_only() -> None:
    assert Client().post("/pqlsdk/moment/").status_code == 405


def test_json_outcome_is_recorded(pql: Any, users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    moment = moment_of(browser)
    body = {"moment": moment["id"], "outcome": "dismissed"}
    response = post_json(browser, body, X_CSRFToken=token(browser))
    assert response.json() == {"recorded": True}
    (record,) = pql.user(uid(users["ending"])).moments
    assert list(record.outcomes) == ["dismissed"]


@pytest.mark.usefixtures("pql")
def test_json_outcome_for_an_unknown_moment_is_not_recorded(users: dict[str, Any]) -> None:
    browser = browser_of(users["business"])
    with override_settings(PQLSDK={**_settings(), "STRICT": False}):
        body = {"moment": "nope", "outcome": "clicked"}
        response = post_json(browser, body, X_CSRFToken=token(browser))
    assert response.json() == {"recorded": False}


def _settings() -> dict[str, Any]:
    from django.conf import settings  # noqa: PLC0415

    return dict(settings.PQLSDK)


@pytest.mark.usefixtures("pql")
def test_json_outcome_without_the_csrf_header_is_refused(users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    body = {"moment": moment_of(browser)["id"], "outcome": "dismissed"}
    assert post_json(browser, body).status_code == 403


@pytest.mark.usefixtures("pql")
def test_form_outcome_without_the_csrf_field_is_refused(users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    moment = moment_of(browser)
    response = browser.post(OUTCOME, {"moment": moment["id"], "outcome": "dismissed"})
    assert response.status_code == 403


@pytest.mark.usefixtures("pql")
def test_form_click_goes_to_the_upgrade_url(users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    form = {"moment": moment_of(browser)["id"], "outcome": "clicked", "next": "/elsewhere/"}
    response = browser.post(OUTCOME, {**form, "csrfmiddlewaretoken": token(browser)})
    assert (response.status_code, response["Location"]) == (302, "/billing/")


@pytest.mark.usefixtures("pql")
def test_form_dismissal_goes_back_to_next(users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    form = {"moment": moment_of(browser)["id"], "outcome": "dismissed", "next": "/page/?tab=2"}
    response = browser.post(OUTCOME, {**form, "csrfmiddlewaretoken": token(browser)})
    assert (response.status_code, response["Location"]) == (302, "/page/?tab=2")


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", None])
@pytest.mark.usefixtures("pql")
def test_form_dismissal_never_leaves_the_site(users: dict[str, Any], target: str | None) -> None:
    browser = browser_of(users["ending"])
    form = {"moment": moment_of(browser)["id"], "outcome": "dismissed"}
    if target is not None:
        form["next"] = target
    response = browser.post(OUTCOME, {**form, "csrfmiddlewaretoken": token(browser)})
    assert (response.status_code, response["Location"]) == (302, "/")


@pytest.mark.usefixtures("pql")
def test_outcome_needs_a_user() -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.cookies.load({"csrftoken": "b" * 32})
    response = post_json(browser, {"moment": "m", "outcome": "clicked"}, X_CSRFToken="b" * 32)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"moment": "m"}', b'{"moment": "m", "outcome": "converted"}', b"[]"],
)
@pytest.mark.usefixtures("pql")
def test_bad_json_bodies_are_refused(users: dict[str, Any], body: bytes) -> None:
    browser = browser_of(users["ending"])
    response = browser.post(
        OUTCOME, body, content_type="application/json", headers={"X-CSRFToken": token(browser)}
    )
    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.usefixtures("pql")
def test_bad_form_is_refused(users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    response = browser.post(OUTCOME, {"moment": "m", "csrfmiddlewaretoken": token(browser)})
    assert (response.status_code, response.json()) == (
        400,
        {"error": "expected the fields 'moment' and 'outcome'"},
    )


@pytest.mark.usefixtures("pql")
def test_too_big_body_is_refused_before_the_csrf_check(users: dict[str, Any]) -> None:
    browser = browser_of(users["ending"])
    big = {"moment": "m" * MAX_OUTCOME_BYTES, "outcome": "clicked"}  # and no CSRF field
    assert browser.post(OUTCOME, big).status_code == 413


def test_too_big_json_without_a_content_length_is_refused(users: dict[str, Any]) -> None:
    body = json.dumps({"moment": "m" * MAX_OUTCOME_BYTES, "outcome": "clicked"})
    request = RequestFactory().post(OUTCOME, body, content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request.user = users["ending"]
    request._dont_enforce_csrf_checks = True
    assert views.outcome(request).status_code == 413


def test_unreadable_content_length_is_refused(users: dict[str, Any]) -> None:
    request = RequestFactory().post(
        OUTCOME, "{}", content_type="application/json", CONTENT_LENGTH="many"
    )
    request.user = users["ending"]
    request._dont_enforce_csrf_checks = True
    assert views.outcome(request).status_code == 400


def test_outcome_is_post_only() -> None:
    assert Client().get(OUTCOME).status_code == 405


@pytest.mark.usefixtures("pql")
def test_endpoints_work_in_an_async_stack(users: dict[str, Any]) -> None:
    browser = AsyncClient()
    browser.force_login(users["ending"])
    response = asyncio.run(browser.get("/pqlsdk/moment/"))
    assert response.json()["moment"]["kind"] == "trial_ending"


def test_store_faults_never_reach_the_page(
    users: dict[str, Any], tmp_path: Path, pqlsdk_store: dict[str, Any]
) -> None:
    """A broken store: no moment, nothing recorded, gates allow; every answer still 200."""
    with override_settings(PQLSDK={**pqlsdk_store, "STRICT": False}):
        from pqlsdk.integrations.django import client  # noqa: PLC0415

        pql = client()
        pql.identify(uid(users["trial"]), {"plan": "trial"})
        pql.flush()
        assert pql.user(uid(users["trial"])) is not None
        conn = sqlite3.connect(tmp_path / "pqlsdk.db")
        conn.executescript("DROP TABLE users;")
        conn.close()
        pql.flush()  # the client's next commit sees another connection changed the file
        browser = browser_of(users["trial"])
        assert "data-pqlsdk" not in browser.get("/page/").content.decode()
        assert moment_of(browser) is None
        body = {"moment": "blocked_feature", "outcome": "clicked"}
        assert post_json(browser, body, X_CSRFToken=token(browser)).json() == {"recorded": False}
        assert browser.get("/sso/").content == b"sso settings"  # a fault must not lock out
        assert pql.stats().errors["store_error"] >= 3
