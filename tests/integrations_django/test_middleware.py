"""request.pqlsdk: lazy, cached per request, in sync and async stacks."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpResponse
from django.test import AsyncClient, AsyncRequestFactory, Client, RequestFactory
from django.test.utils import override_settings

from pqlsdk.integrations.django import PQLSDKMiddleware, RequestState, client, request_state

from .conftest import uid
from .project import PLAYBOOK

CALLS: list[Any] = []


def header_user(request: Any) -> object:
    """USER for API clients: the X-User header, counted."""
    CALLS.append(request)
    return request.headers.get("X-User")


def numeric_user(request: Any) -> object:
    return 7


def header_account(request: Any) -> object:
    return request.headers.get("X-Account")


def test_signed_in_user_is_their_primary_key_as_text(users: dict[str, Any]) -> None:
    browser = Client()
    browser.force_login(users["trial"])
    assert browser.get("/whoami/").json() == {"user": uid(users["trial"]), "account": None}


def test_anonymous_request_has_no_user() -> None:
    assert Client().get("/whoami/").json() == {"user": None, "account": None}


def test_a_request_that_asks_nothing_never_reads_the_setting() -> None:
    with override_settings(PQLSDK={"RULES": "/nowhere.toml"}):  # would fail any client()
        assert Client().get("/plain/").content == b"plain"


def test_user_resolver_runs_once_per_request() -> None:
    CALLS.clear()
    with override_settings(PQLSDK={"RULES": PLAYBOOK, "USER": f"{__name__}.header_user"}):
        request = RequestFactory().get("/", headers={"X-User": "u-9"})
        state = request_state(request)
        assert (state.user_id, state.user_id) == ("u-9", "u-9")
    assert len(CALLS) == 1


def test_user_resolver_may_return_any_id_or_nothing() -> None:
    with override_settings(PQLSDK={"RULES": PLAYBOOK, "USER": numeric_user}):
        assert request_state(RequestFactory().get("/")).user_id == "7"
    with override_settings(PQLSDK={"RULES": PLAYBOOK, "USER": header_user}):
        empty = RequestFactory().get("/", headers={"X-User": ""})
        assert request_state(empty).user_id is None


def test_account_comes_from_its_resolver() -> None:
    with override_settings(
        PQLSDK={"RULES": PLAYBOOK, "USER": header_user, "ACCOUNT": header_account}
    ):
        response = Client().get("/whoami/", headers={"X-User": "u", "X-Account": "acme"})
        state = request_state(RequestFactory().get("/", headers={"X-Account": "a-2"}))
        assert (state.account_id, state.account_id) == ("a-2", "a-2")
    assert response.json() == {"user": "u", "account": "acme"}


def test_state_is_attached_without_the_middleware() -> None:
    request = RequestFactory().get("/")
    state = request_state(request)
    assert isinstance(state, RequestState)
    assert request.pqlsdk is state
    assert request_state(request) is state
    assert state.client is client()


def test_gate_without_a_user_denies_and_tracks_nothing(pql: Any) -> None:
    before = pql.stats().recorded
    request = RequestFactory().get("/")
    request.user = None
    gate = request_state(request).gate("sso")
    assert (gate.allowed, gate.reason, gate.moment) == (False, "no signed-in user", None)
    assert pql.stats().recorded == before


def test_gates_are_answered_once_per_request(pql: Any, users: dict[str, Any]) -> None:
    request = RequestFactory().get("/")
    request.user = users["trial"]
    state = request_state(request)
    first = state.gate("sso")
    assert state.gate("sso") is first
    assert state.moment() is first.moment  # the denial's prompt is the request's moment
    user = pql.user(uid(users["trial"]))
    assert user.tracks == 1  # one premium_feature_attempted, not two
    assert [record.kind for record in user.moments] == ["blocked_feature"]


def test_middleware_is_sync_in_a_sync_stack() -> None:
    def view(request: Any) -> HttpResponse:
        return HttpResponse(type(request.pqlsdk).__name__)

    middleware = PQLSDKMiddleware(view)
    assert not iscoroutinefunction(middleware)
    assert middleware(RequestFactory().get("/")).content == b"RequestState"


def test_middleware_is_async_in_an_async_stack() -> None:
    async def view(request: Any) -> HttpResponse:
        return HttpResponse(type(request.pqlsdk).__name__)

    middleware = PQLSDKMiddleware(view)
    assert iscoroutinefunction(middleware)
    response = asyncio.run(middleware(AsyncRequestFactory().get("/")))
    assert response.content == b"RequestState"


def test_async_stack_resolves_the_signed_in_user(users: dict[str, Any]) -> None:
    browser = AsyncClient()
    browser.force_login(users["business"])
    response = asyncio.run(browser.get("/awhoami/"))
    assert response.json() == {"user": uid(users["business"])}


def test_async_anonymous_request_has_no_user() -> None:
    assert asyncio.run(AsyncClient().get("/awhoami/")).json() == {"user": None}


def test_async_user_resolver_runs_in_a_thread() -> None:
    with override_settings(PQLSDK={"RULES": PLAYBOOK, "USER": header_user}):
        response = asyncio.run(AsyncClient().get("/awhoami/", headers={"X-User": "u-a"}))
    assert response.json() == {"user": "u-a"}


def test_async_without_authentication_middleware_has_no_user() -> None:
    state = request_state(AsyncRequestFactory().get("/"))
    assert asyncio.run(state.auser_id()) is None
    assert asyncio.run(state.auser_id()) is None  # cached
