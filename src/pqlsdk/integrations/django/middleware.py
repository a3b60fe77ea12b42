"""``request.pqlsdk``: what pqlsdk knows about one request, computed only when asked.

The middleware attaches a ``RequestState`` and does nothing else, so a
request that never asks costs one small object. The user id, the moment and
each gate are computed on first use and kept for the rest of the request:
a template asking twice decides once (and counts one showing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from asgiref.sync import (
    iscoroutinefunction,
    markcoroutinefunction,
    sync_to_async,
)

from ..._client import Client
from ..._gating import Gate
from ..._moments import Moment
from ._settings import Resolver, client, config

__all__ = ["PQLSDKMiddleware", "RequestState", "request_state"]

_UNSET: Final = object()


def _as_id(value: object) -> str | None:
    """Ids are strings; None and "" mean nobody."""
    if value is None or value == "":
        return None
    return str(value)


def _default_user(user: Any) -> str | None:
    """Return the signed-in Django user's primary key; anonymous users have none."""
    if user is None or not user.is_authenticated:
        return None
    return _as_id(user.pk)


class RequestState:
    """pqlsdk's view of one request: the user, their moment, their gates.

    Every answer is computed once per request, on first use. In async views
    resolve the user with ``await auser_id()`` first (``require_feature``
    does): the synchronous ``user_id`` reads ``request.user``, which queries
    the database.

    Added in version 0.1.0.
    """

    __slots__ = ("_account", "_gates", "_moment", "_request", "_user")

    def __init__(self, request: Any) -> None:
        self._request = request
        self._user: object = _UNSET
        self._account: object = _UNSET
        self._moment: object = _UNSET
        self._gates: dict[str, Gate] = {}

    @property
    def client(self) -> Client:
        """The process's client (``pqlsdk.integrations.django.client()``).

        Added in version 0.1.0.
        """
        return client()

    @property
    def user_id(self) -> str | None:
        """The current user's id (``PQLSDK['USER']``, or the signed-in user's pk), or None.

        Added in version 0.1.0.
        """
        if self._user is _UNSET:
            resolve = config().user
            request = self._request
            self._user = (
                _default_user(getattr(request, "user", None))
                if resolve is None
                else _as_id(resolve(request))
            )
        return self._user  # type: ignore[return-value]

    async def auser_id(self) -> str | None:
        """``user_id`` for async code: Django's ``auser()``, or ``USER`` in a thread.

        Added in version 0.1.0.
        """
        if self._user is _UNSET:
            resolve: Resolver | None = config().user
            request = self._request
            if resolve is not None:
                value = _as_id(await sync_to_async(resolve)(request))
            elif hasattr(request, "auser"):
                value = _default_user(await request.auser())
            else:
                value = None  # no authentication middleware: nobody is signed in
            self._user = value
        return self._user  # type: ignore[return-value]

    @property
    def account_id(self) -> str | None:
        """The current account's id from ``PQLSDK['ACCOUNT']``, or None without one.

        Added in version 0.1.0.
        """
        if self._account is _UNSET:
            resolve = config().account
            self._account = None if resolve is None else _as_id(resolve(self._request))
        return self._account  # type: ignore[return-value]

    def moment(self) -> Moment | None:
        """Return the moment to show this user on this request (decided once), or None.

        After a denied gate that carries a moment, that moment is the
        request's: a blocked page shows the prompt, not a second moment.

        Added in version 0.1.0.
        """
        if self._moment is _UNSET:
            user = self.user_id
            self._moment = None if user is None else client().decide(user)
        return self._moment  # type: ignore[return-value]

    def gate(self, feature: str) -> Gate:
        """``client().gate(user, feature)``, once per feature per request.

        Without a user the answer is a denial with no moment (nothing is tracked).

        Added in version 0.1.0.
        """
        found = self._gates.get(feature)
        if found is None:
            user = self.user_id
            found = (
                Gate(feature, False, "no signed-in user", None, None)
                if user is None
                else client().gate(user, feature)
            )
            self._gates[feature] = found
            if found.moment is not None and self._moment is _UNSET:
                self._moment = found.moment
        return found


def request_state(request: Any) -> RequestState:
    """Return ``request.pqlsdk``, attaching it first when the middleware is not installed.

    Added in version 0.1.0.
    """
    state = getattr(request, "pqlsdk", None)
    if not isinstance(state, RequestState):
        state = request.pqlsdk = RequestState(request)
    return state


class PQLSDKMiddleware:
    """Attach ``request.pqlsdk`` (a lazy ``RequestState``); sync and async stacks alike.

    Put it after ``AuthenticationMiddleware``: the default user is ``request.user``.

    Added in version 0.1.0.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Attach the state and hand on; in an async stack, return the awaitable.

        Added in version 0.1.0.
        """
        if self._async:
            return self._acall(request)
        request.pqlsdk = RequestState(request)
        return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        request.pqlsdk = RequestState(request)
        response: Awaitable[Any] = self.get_response(request)
        return await response
